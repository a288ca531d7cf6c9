"""Throughput of the ``learned`` policy on the CPU path, against LRU measured in the same run.

Two workloads (CPU backend: numba, lanes in parallel over the cores):

* **decisions/s**: App. B Zipf traces (defaults) at K = 4, 8, 16, ``--lanes`` lanes; a decision is a
  fault on a full cache (faults - K per lane), each scoring every resident slot.
* **a real trace**: the whole ``cloudPhysicsIO.txt`` (one lane) at each ``--trace-K``, scoring every
  slot and scoring the ``--candidates`` least recently used, with the non-compulsory faults of each.

Each timing is the best of ``--repeats`` runs after a warm-up (compilation excluded); LRU runs through
the same ``gpupage.simulate`` entry point on the same lanes and backend.  Multiply-adds per decision
are the network's (see :meth:`gpupage.zoo.learned.LearnedNet.macs_per_decision`).  ``--backend
triton`` times the kernels on a CUDA device instead (synchronised; K > 64 runs the chunked kernel,
which scores only the candidates).

    python scripts/bench_learned.py [--checkpoint checkpoints/learned_v1.pt] [--lanes 1024] [--backend cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numba
import torch

from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.zoo.learned import load_network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOUD = os.path.join(ROOT, "..", "shared", "traces", "cloudPhysicsIO.txt")


def best_of(fn, repeats: int):
    """(best wall-clock seconds, last result) of ``repeats`` calls."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def zipf_rows(net, lanes: int, repeats: int, backend: str) -> list[dict]:
    dev = "cuda" if backend == "triton" else "cpu"
    traces = zipf_traces(ZipfParams(), seed=list(range(lanes))).to(dev)
    options = {"checkpoint": net}
    for K in (4, 8, 16):  # compile (every kernel shape)
        simulate(traces[:2], "learned", K, options=options, backend=backend)
        simulate(traces[:2], "lru", K, backend=backend)
    rows = []
    for K in (4, 8, 16):
        secs, res = best_of(lambda: simulate(traces, "learned", K, options=options, backend=backend), repeats)
        lru_secs, _ = best_of(lambda: simulate(traces, "lru", K, backend=backend), repeats)
        decisions = int(res.faults.sum()) - K * lanes
        rows.append({"workload": "zipf", "K": K, "lanes": lanes, "decisions": decisions, "seconds": secs,
                     "decisions_per_s": decisions / secs, "requests_per_s": traces.numel() / secs,
                     "lru_seconds": lru_secs, "x_lru": secs / lru_secs, "macs_per_decision": net.macs_per_decision(K)})
    return rows


def trace_rows(net, Ks: list[int], candidates: int, repeats: int, backend: str) -> list[dict]:
    from gpupage.core.io import read_trace

    trace = read_trace(CLOUD)
    ids = torch.from_numpy(trace.ids).to("cuda" if backend == "triton" else "cpu")
    rows = []
    for K in Ks:
        lru_secs, lru = best_of(lambda: simulate(ids, "lru", K, backend=backend), repeats)
        for cand in (None, candidates):
            options = {"checkpoint": net, "candidates": cand}
            secs, res = best_of(lambda: simulate(ids, "learned", K, options=options, backend=backend), repeats)
            rows.append({"workload": "cloudPhysicsIO", "K": K, "candidates": cand or "all", "seconds": secs,
                         "non_compulsory_faults": int(res.faults[0]) - trace.distinct,
                         "lru_non_compulsory_faults": int(lru.faults[0]) - trace.distinct,
                         "lru_seconds": lru_secs, "x_lru": secs / lru_secs,
                         "decisions": int(res.faults[0]) - K})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "checkpoints", "learned_v1.pt"))
    ap.add_argument("--lanes", type=int, default=1024)
    ap.add_argument("--trace-K", default="64,256,1024,4096")
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", choices=("cpu", "triton"), default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.backend == "triton" and not torch.cuda.is_available():
        ap.error("--backend triton needs a CUDA device")
    net = load_network(args.checkpoint)
    rows = zipf_rows(net, args.lanes, args.repeats, args.backend)
    if os.path.exists(CLOUD):
        rows += trace_rows(net, [int(k) for k in args.trace_K.split(",")], args.candidates, args.repeats, args.backend)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        elif row["workload"] == "zipf":
            print(f"zipf K={row['K']:<3} {row['decisions']} decisions in {row['seconds']:.3f}s: "
                  f"{row['decisions_per_s']:.3g} decisions/s, {row['requests_per_s']:.3g} requests/s, "
                  f"{row['x_lru']:.1f}x LRU's time ({row['macs_per_decision']} MACs/decision)")
        else:
            print(f"cloudPhysicsIO K={row['K']:<5} candidates={row['candidates']:<4} {row['seconds']:.2f}s "
                  f"({row['x_lru']:.0f}x LRU's {row['lru_seconds']:.3f}s), non-compulsory faults "
                  f"{row['non_compulsory_faults']} (LRU {row['lru_non_compulsory_faults']})")
    where = torch.cuda.get_device_name() if args.backend == "triton" else f"{numba.get_num_threads()} numba threads"
    print(f"# {args.backend}: {where}, {os.cpu_count()} CPUs", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
