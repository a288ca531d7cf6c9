"""Throughput beside one competing CPU-bound process, against the same work without it.

Each case runs alternately quiet and beside a Python busy loop (a second process
that takes one core), ``--repeat`` times.  The script prints the median seconds of
each and the share of its quiet throughput a case keeps: the median over the
adjacent (quiet, busy) pairs of quiet / busy, which cancels most of the drift in
whatever else the machine runs.  0.5 is what a fair share of a 2-core machine
gives; 1 would mean the case never needed the second core.  The load average
before each case says how quiet "quiet" was.  CPU seconds (all threads) show
what the wall-clock cannot on a shared machine: threads that spin while they
wait burn more CPU when busy, threads that sleep do not.  Cases, each in its
own process with default settings:

* ``simulate``: ``gpupage.simulate`` LRU on 1000 lanes x 5000 requests (K = 8),
  timed inside the process after a warm-up call (median of 5 calls);
* ``evaluate``: ``gpupage evaluate --checkpoint checkpoints/pagecontroller_k8.pt`` on one
  2000-request trace file, wall-clock of the whole command;
* ``reproduce``: ``gpupage reproduce``, wall-clock of the whole command.

Run it from the root of the tree measured (its processes import ``gpupage`` from
the working directory first)::

    PYTHONPATH=. python scripts/bench_busy.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SIMULATE = """
import time, gpupage
tr = gpupage.zipf_traces(gpupage.ZipfParams(T=5000), seed=list(range(1000)))
gpupage.simulate(tr[:4], "lru", 8)
ts = []
for _ in range(5):
    t0, c0 = time.perf_counter(), time.process_time()
    gpupage.simulate(tr, "lru", 8)
    ts.append((time.perf_counter() - t0, time.process_time() - c0))
print(*sorted(ts)[2])
"""


def run_case(case: str, tmp: str, env: dict) -> tuple[float, float]:
    """(seconds, CPU seconds) the case took: its median call for simulate, the whole command otherwise."""
    if case == "simulate":
        out = subprocess.run([sys.executable, "-c", SIMULATE], env=env, check=True, capture_output=True, text=True)
        wall, cpu = out.stdout.split()[-2:]
        return float(wall), float(cpu)
    if case == "evaluate":
        cmd = ["evaluate", "--checkpoint", "checkpoints/pagecontroller_k8.pt", "--trace-file", os.path.join(tmp, "t.txt"),
               "--K", "8", "--json"]
    else:
        cmd = ["reproduce", "--out", os.path.join(tmp, "reproduce"), "--quiet", "--overwrite"]  # each repeat recomputes
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "gpupage", *cmd], env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="simulate,evaluate,reproduce")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the measured processes")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a killed run kills its busy loop too
    env = dict(os.environ, **dict(kv.split("=", 1) for kv in args.env))
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        import gpupage

        trace = gpupage.zipf_traces(gpupage.ZipfParams(T=2000), seed=[7])[0].numpy()
        np.savetxt(os.path.join(tmp, "t.txt"), trace, fmt="%d")
        print(f"{'case':<10} {'load':>5} {'quiet s':>8} {'busy s':>8} {'kept':>5} {'CPU s quiet':>12} {'busy':>6}   "
              "runs, s (quiet/busy)")
        for case in args.cases.split(","):
            run_case(case, tmp, env)  # warm the numba cache and the file system
            load = os.getloadavg()[0]
            quiet, busy = [], []
            for _ in range(args.repeat):
                quiet.append(run_case(case, tmp, env))
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                try:
                    time.sleep(0.5)
                    busy.append(run_case(case, tmp, env))
                finally:
                    hog.kill()
                    hog.wait()
            kept = statistics.median(q[0] / b[0] for q, b in zip(quiet, busy))
            med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
            runs = " ".join(f"{q[0]:.2f}/{b[0]:.2f}" for q, b in zip(quiet, busy))
            print(f"{case:<10} {load:>5.1f} {med(quiet, 0):>8.2f} {med(busy, 0):>8.2f} {kept:>5.2f} "
                  f"{med(quiet, 1):>12.2f} {med(busy, 1):>6.2f}   {runs}", flush=True)


if __name__ == "__main__":
    main()
