"""Emulated AWS: a real moto server (IAM, STS, SQS) over HTTP on 127.0.0.1.

The operator reaches it only through standard AWS configuration (AWS_ENDPOINT_URL, static
credentials, region), exactly as it would reach AWS. AWS managed policies are loaded so the
seed AmazonECSTaskExecutionRolePolicy exists, as in a real account.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from tests.stack.processes import ChildProcess, free_port, wait_until

# moto's default account; credentials are fake and only ever sent to 127.0.0.1.
DEFAULT_ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - moto's fake key


class MotoServer:
    """A moto server child process and the environment that points AWS SDKs at it."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.child: ChildProcess | None = None

    def aws_env(self) -> dict[str, str]:
        """Standard AWS SDK settings for this server; nothing ecsrole-specific."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # Never let an SDK look for real credentials or the EC2 metadata service.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def client(self, service: str, account_id: str = DEFAULT_ACCOUNT_ID) -> Any:
        """A boto3 client for this server; other accounts are reached through AssumeRole."""
        env = self.aws_env()
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        if account_id != DEFAULT_ACCOUNT_ID:
            creds = session.client("sts", endpoint_url=self.url).assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/ecsrole-tests", RoleSessionName="tests"
            )["Credentials"]
            session = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=env["AWS_DEFAULT_REGION"],
            )
        return session.client(service, endpoint_url=self.url)

    def start(self, timeout: float = 60.0) -> MotoServer:
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "PYTHONUNBUFFERED": "1"}
        self.child = ChildProcess(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            self.workdir / "moto.log",
            env=env,
        ).start()
        try:
            wait_until(self._ready, timeout=timeout, what="moto server")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        assert self.child is not None
        self.child.ensure_alive()
        with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
