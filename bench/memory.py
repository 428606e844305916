"""Where the operator's memory goes at 1,000 resources: the probe behind the profiling notes in
docs/performance-analysis.md.

    .venv/bin/python -m bench.memory [--size 1000] [--tracemalloc [--frames N]]

Starts the benchmark stack, applies `size` resources at once and prints, while they become
Ready, the peak resident memory and the peak number of the operator's TCP connections; then
both once a minute for three minutes. With --tracemalloc the operator runs with tracemalloc
(bench/tracemalloc_hook) and writes its largest allocations to bench/results/tracemalloc.txt
(tracemalloc roughly doubles memory: read the shares, not the totals); --frames N keeps N
frames per allocation and adds the largest allocations by call stack (who holds the memory).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.stack import IMAGE_ENV, Stack, manifest, process_rss_mb

HOOK = Path(__file__).resolve().parent / "tracemalloc_hook"
SNAPSHOT = Path("bench/results/tracemalloc.txt")


def connections(pid: int) -> Counter[str]:
    """The process's TCP connections by remote port (ss from iproute2)."""
    lines = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    return Counter(
        line.split()[4].rsplit(":", 1)[1] for line in lines.splitlines() if f"pid={pid}," in line
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--frames", type=int, default=1, help="frames per allocation traced")
    args = parser.parse_args()
    if args.tracemalloc:
        IMAGE_ENV.update(
            PYTHONPATH=str(HOOK),
            ECSROLE_TRACEMALLOC_OUT=str(SNAPSHOT.resolve()),
            ECSROLE_TRACEMALLOC_FRAMES=str(args.frames),
        )
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ecsrole-memory-") as tmp:
        stack = Stack.start(Path(tmp), interval="30s", events_queue=True)
        try:
            pid = stack.operator.child.pid
            print(f"idle: {process_rss_mb(pid):.1f} MB", flush=True)
            peak = {"rss_mb": 0.0, "connections": 0}
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak["rss_mb"] = max(peak["rss_mb"], process_rss_mb(pid))
                    peak["connections"] = max(peak["connections"], sum(connections(pid).values()))
                    time.sleep(0.3)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            prefix = f"m{uuid.uuid4().hex[:5]}"
            stack.apply(manifest(i, prefix) for i in range(args.size))
            seconds = stack.wait_ready(args.size, timeout=120 + args.size * 0.2)
            done.set()
            sampler.join()
            print(f"all Ready after {seconds:.1f} s; during the burst: {peak}", flush=True)
            for minute in range(1, 4):
                time.sleep(60)
                print(
                    f"+{minute} min: {process_rss_mb(pid):.1f} MB, connections by remote port "
                    f"{dict(connections(pid))}",
                    flush=True,
                )
            if args.tracemalloc:
                os.kill(pid, signal.SIGUSR2)
                time.sleep(20)
                print(f"allocations: {SNAPSHOT}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
