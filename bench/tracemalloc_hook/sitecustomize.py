"""Loaded into the operator by `python -m bench.memory --tracemalloc` (via PYTHONPATH).

On SIGUSR2 the operator writes its largest Python allocations, by file and by line, to the file
named by ECSROLE_TRACEMALLOC_OUT. Not part of the operator or its image.
"""

import gc
import os
import signal
import tracemalloc

OUT = os.environ.get("ECSROLE_TRACEMALLOC_OUT")
#: Frames kept per allocation (ECSROLE_TRACEMALLOC_FRAMES): more say who allocated, and cost more.
FRAMES = int(os.environ.get("ECSROLE_TRACEMALLOC_FRAMES", "1"))


def _dump(_signum: int, _frame: object) -> None:
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    with open(OUT or os.devnull, "w") as out:
        out.write(f"== traced now {current / 1e6:.1f} MB, peak since start {peak / 1e6:.1f} MB\n")
        for key in ("filename", "lineno"):
            stats = snapshot.statistics(key)
            out.write(f"== top by {key}: {sum(s.size for s in stats) / 1e6:.1f} MB traced\n")
            for stat in stats[:30]:
                out.write(f"{stat.size / 1e6:8.2f} MB {stat.count:8d}  {stat.traceback}\n")
        if FRAMES > 1:
            out.write(f"== top by traceback ({FRAMES} frames)\n")
            for stat in snapshot.statistics("traceback")[:15]:
                out.write(f"{stat.size / 1e6:8.2f} MB {stat.count:8d}\n")
                for line in stat.traceback.format():
                    out.write(f"      {line}\n")


if OUT:
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR2, _dump)
