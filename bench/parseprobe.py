"""How long one bulk read of a large account stalls an event loop in another thread.

    .venv/bin/python -m bench.parseprobe [--roles 5000] [--rounds 4]

Creates `roles` roles in a moto server (one account, the operator's tags, trust policy and
managed policy), then reads them with the operator's adapter (`read_roles_bulk`) in a worker
thread while the main thread's event loop asks for a timer every 5 ms. Rounds alternate
between feeding expat the whole response at once (botocore's way) and in XML_SLICE_BYTES
slices (the operator's), and print the loop's worst stalls and when the XML parse of the
largest page ran. moto returns GetAccountAuthorizationDetails in one page whatever MaxItems says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ecsrole.aws import clients as clients_module
from ecsrole.aws.clients import AccountAccess, ClientFactory
from ecsrole.aws.iam import IamAdapter
from tests.stack.moto import MotoServer
from tests.stack.resources import SEED_POLICY, SEED_TRUST

ACCOUNT = "100000000000"


def _create(moto: MotoServer, roles: int) -> None:
    iam = moto.client("iam", ACCOUNT)
    for i in range(roles):  # one at a time: moto's IAM is not safe for concurrent writes
        name = f"probe-{i}"
        tags = {"ecsrole.dev/cluster": "bench", "ecsrole.dev/namespace": "bench"}
        tags |= {"ecsrole.dev/name": name, "ecsrole.dev/uid": f"uid-{i:08d}"}
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(SEED_TRUST),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        iam.attach_role_policy(RoleName=name, PolicyArn=SEED_POLICY)


def _round(adapter: IamAdapter, parses: list[tuple[float, float, int]]) -> dict[str, Any]:
    stalls: list[tuple[float, float]] = []

    async def run() -> float:
        loop = asyncio.get_running_loop()
        reading = loop.run_in_executor(None, adapter.read_roles_bulk, "/")
        began = time.perf_counter()
        while not reading.done():
            asked = time.perf_counter() + 0.005
            await asyncio.sleep(0.005)
            stalls.append((asked - began, time.perf_counter() - asked))
        await reading
        return began

    parses.clear()
    began = asyncio.run(run())
    biggest = max(parses, key=lambda p: p[2])
    worst = sorted(stalls, key=lambda s: -s[1])[:5]
    return {
        "largest_page_mb": round(biggest[2] / 1e6, 2),
        "xml_parse_seconds_from_start": [
            round(biggest[0] - began, 3),
            round(biggest[1] - began, 3),
        ],
        "worst_stalls_ms_at_seconds": [(round(s[1] * 1000), round(s[0], 3)) for s in worst],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parseprobe")
    parser.add_argument("--roles", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    parses: list[tuple[float, float, int]] = []
    parse = clients_module.CooperativeQueryParser._parse_xml_string_to_dom

    def timed(self: Any, xml: bytes) -> Any:
        started = time.perf_counter()
        try:
            return parse(self, xml)
        finally:
            parses.append((started, time.perf_counter(), len(xml)))

    clients_module.CooperativeQueryParser._parse_xml_string_to_dom = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="ecsrole-parseprobe-") as folder:
        moto = MotoServer(Path(folder)).start()
        try:
            _create(moto, args.roles)
            os.environ.update(moto.aws_env())
            factory = ClientFactory(region="us-east-1", session_name="parseprobe")
            role_arn = f"arn:aws:iam::{ACCOUNT}:role/probe"
            adapter = IamAdapter(factory.for_account(AccountAccess(ACCOUNT, role_arn, None, 1e6)))
            sliced = clients_module.XML_SLICE_BYTES
            for n in range(args.rounds):
                clients_module.XML_SLICE_BYTES = sliced if n % 2 else 1 << 40
                feed = "sliced" if n % 2 else "whole"
                print(json.dumps({"feed": feed, **_round(adapter, parses)}), flush=True)
        finally:
            moto.stop()


if __name__ == "__main__":
    main()
