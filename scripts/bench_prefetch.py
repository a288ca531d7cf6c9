"""Prefetching throughput (issue 13), as ratios against references timed in the same run.

CPU: ``simulate_prefetch`` (follow_hint, hints at eps = 0.1) against ``gpupage.simulate`` of the same
eviction on the same lanes (demand paging, no hints), the lookahead oracle (L = 4) against Belady, and the
hint generation alone.  With CUDA: the
Triton kernel against the CPU path.  Best of 3 rounds each.
Usage: NUMBA_NUM_THREADS=1 python scripts/bench_prefetch.py [--lanes 2000]
"""

import argparse

import torch
from bench_simulate import timed  # also puts the repository on sys.path

import gpupage
from gpupage.core.prefetch import make_hints, simulate_prefetch


def best(fn, sync=False) -> float:
    """Best wall-clock seconds of 3 calls."""
    return timed(fn, sync=sync, repeat=3)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lanes", type=int, default=2000)
    args = ap.parse_args()
    params = gpupage.ZipfParams()
    traces, latent = gpupage.zipf_traces(params, seed=0, batch=args.lanes, return_latent=True)
    req = traces.numel()
    hints = make_hints(traces, 4, 0.1, params.M, seed=0)
    t_hints = best(lambda: make_hints(traces, 4, 0.1, params.M, seed=0))
    print(f"make_hints: {req / t_hints / 1e6:8.1f} M hints/s")
    for ev in ("lru", "lfu", "fifo", "adaptive"):
        simulate_prefetch(traces[:2], 8, "follow_hint", ev, hints=hints[:2], L=4)  # compile
        gpupage.simulate(traces[:2], ev, 8, backend="cpu")
        ref = best(lambda: gpupage.simulate(traces, ev, 8, backend="cpu"))
        cpu = best(lambda: simulate_prefetch(traces, 8, "follow_hint", ev, hints=hints, L=4, backend="cpu"))
        print(f"follow_hint {ev:8s} CPU: {req / cpu / 1e6:8.1f} M req/s = {ref / cpu:5.2f} x simulate {ev} "
              f"({req / ref / 1e6:.1f} M req/s) in the same run")
        if torch.cuda.is_available():
            dt, dh = traces.cuda(), hints.cuda()
            simulate_prefetch(dt, 8, "follow_hint", ev, hints=dh, L=4)
            gpu = best(lambda: simulate_prefetch(dt, 8, "follow_hint", ev, hints=dh, L=4), sync=True)
            print(f"follow_hint {ev:8s} Triton: {req / gpu / 1e6:8.1f} M req/s = {cpu / gpu:6.1f} x the CPU path")
    # the lookahead oracle (L = 4, with the working sets' ranks) against Belady, the other next-use policy
    simulate_prefetch(traces[:2], 8, "lookahead", None, L=4)
    gpupage.simulate(traces[:2], "belady", 8, backend="cpu")
    ref = best(lambda: gpupage.simulate(traces, "belady", 8, backend="cpu"))
    cpu = best(lambda: simulate_prefetch(traces, 8, "lookahead", None, L=4, latent=latent, backend="cpu"))
    print(f"lookahead oracle CPU: {req / cpu / 1e6:8.1f} M req/s = {ref / cpu:5.2f} x simulate belady "
          f"({req / ref / 1e6:.1f} M req/s) in the same run")
    if torch.cuda.is_available():
        dt = traces.cuda()
        simulate_prefetch(dt, 8, "lookahead", None, L=4, latent=latent)
        gpu = best(lambda: simulate_prefetch(dt, 8, "lookahead", None, L=4, latent=latent), sync=True)
        print(f"lookahead oracle Triton: {req / gpu / 1e6:8.1f} M req/s = {cpu / gpu:6.1f} x the CPU path")

if __name__ == "__main__":
    main()
