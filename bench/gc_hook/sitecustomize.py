"""Loaded into the operator by `python -m bench.fleet --gc-log FILE` (via PYTHONPATH).

Appends one line per garbage collection of the oldest generation, and per collection of any
generation longer than 5 ms, to the file named by ECSROLE_GC_LOG: wall time, generation,
duration, objects collected and the thread that triggered it (it holds the GIL meanwhile, so
the event loop waits whichever thread it is). Not part of the operator or its image.
"""

import gc
import os
import threading
import time

OUT = os.environ.get("ECSROLE_GC_LOG")
_started: dict[str, float] = {}


def _timed(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started["at"] = time.perf_counter()
        return
    seconds = time.perf_counter() - _started.get("at", time.perf_counter())
    if info["generation"] == 2 or seconds > 0.005:
        with open(OUT or os.devnull, "a") as out:
            out.write(
                f"{time.time():.3f} gen{info['generation']} {seconds * 1000:.1f}ms "
                f"collected={info['collected']} thread={threading.current_thread().name}\n"
            )


if OUT:
    gc.callbacks.append(_timed)
