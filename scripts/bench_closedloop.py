"""Closed-loop simulation throughput, and `gpupage bounds` wall time (target: under 120 s on 2 cores).

Ratios are against references measured in the same run: the numba path against the plain Python
reference (``naive_closed_loop``), and the Triton kernel (CUDA only) against the numba path.
Usage: python scripts/bench_closedloop.py [--no-bounds]
"""

import subprocess
import sys
import tempfile
import time

import torch

from gpupage.core import rng
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.experiments.closedloop import ClosedLoopParams, association_graph, closed_loop, naive_closed_loop


def best(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    params = ClosedLoopParams(ZipfParams(T=5000), sigma=0.3)
    B, K = 256, 8
    closed_loop(params, "lru", K, seed=0, batch=2)  # compile
    cpu = best(lambda: closed_loop(params, "lru", K, seed=0, batch=B))
    exo, assoc, key = zipf_traces(params.zipf, 0, 1)[0].tolist(), association_graph(params, 0, 1)[0].tolist(), int(
        rng.lane_keys(0, 1)[0])
    ref = best(lambda: naive_closed_loop(exo, assoc, params.degree, params.sigma, "lru", K, key), repeat=1)
    req = B * params.zipf.T
    print(f"numba closed loop: {req / cpu / 1e6:8.2f} M requests/s = {ref * B / cpu:8.0f} x the Python reference")
    if torch.cuda.is_available():
        closed_loop(params, "lru", K, seed=0, batch=B, backend="triton")
        Bg = 16384
        gpu = best(lambda: (closed_loop(params, "lru", K, seed=0, batch=Bg, backend="triton"),
                            torch.cuda.synchronize()))
        print(f"triton closed loop: {Bg * params.zipf.T / gpu / 1e6:8.2f} M requests/s = "
              f"{(Bg * params.zipf.T / gpu) / (req / cpu):6.1f} x numba (host trace generation included)")
    if "--no-bounds" not in sys.argv:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gpupage", "bounds", "--out", out, "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
        print(f"gpupage bounds (defaults): {wall:6.1f} s = {wall / 120:.2f} x the 120 s target")


if __name__ == "__main__":
    main()
