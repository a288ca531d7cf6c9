"""Quality of a ``learned`` checkpoint: competitive ratios on held-out Zipf seeds, paired per seed
against the baselines, and non-compulsory faults on a real trace.

* App. B defaults (M=64, alpha=1.2, W=16, shift=500, T=5000), K = 4, 8, 16, seeds 1000-1039 (never
  trained or tuned on): CR = faults / Belady's faults, mean ± standard error, and the paired
  per-seed difference learned - baseline, mean ± standard error.
* ``cloudPhysicsIO.txt`` (a zero-shot test: never trained on) at K = 64, 256, 1024, 4096: faults
  beyond the compulsory first touches, for every slot scored and for the ``--candidates`` least
  recently used.

    python scripts/eval_learned.py [--checkpoint checkpoints/learned_v1.pt] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOUD = os.path.join(ROOT, "..", "shared", "traces", "cloudPhysicsIO.txt")
BASELINES = ("lru", "lfu", "arc", "adaptive")


def mean_se(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std() / len(x) ** 0.5)


def zipf_table(checkpoint: str, seeds: list[int], Ks: list[int]) -> list[dict]:
    traces = zipf_traces(ZipfParams(), seed=seeds)
    rows = []
    for K in Ks:
        opt = simulate(traces, "belady", K).faults.double()
        mine = simulate(traces, "learned", K, options={"checkpoint": checkpoint}).faults.double() / opt
        row = {"K": K, "learned": mean_se(mine)}
        for name in BASELINES:
            cr = simulate(traces, name, K, seed=seeds).faults.double() / opt
            row[name] = mean_se(cr)
            row[f"learned-{name}"] = mean_se(mine - cr)
        rows.append(row)
    return rows


def trace_table(checkpoint: str, Ks: list[int], candidates: int, baselines=("lru", "lfu", "arc")) -> list[dict]:
    """Non-compulsory faults on ``cloudPhysicsIO.txt`` per K: learned (C = ``candidates`` and all
    slots), each of ``baselines`` and Belady."""
    from gpupage.core.io import read_trace

    trace = read_trace(CLOUD)
    lanes = torch.from_numpy(trace.ids).expand(len(Ks), -1)
    Kt = torch.tensor(Ks)
    runs = {f"learned (C={candidates})": simulate(lanes, "learned", Kt, options={"checkpoint": checkpoint,
                                                                                "candidates": candidates}),
            "learned": simulate(lanes, "learned", Kt, options={"checkpoint": checkpoint})}
    for name in (*baselines, "belady"):
        runs[name] = simulate(lanes, name, Kt)
    return [{"K": K, **{name: int(res.faults[i]) - trace.distinct for name, res in runs.items()}}
            for i, K in enumerate(Ks)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "checkpoints", "learned_v1.pt"))
    ap.add_argument("--seeds", default="1000-1039", help="first-last, inclusive")
    ap.add_argument("--K", default="4,8,16")
    ap.add_argument("--trace-K", default="64,256,1024,4096")
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    lo, hi = (int(v) for v in args.seeds.split("-"))
    zrows = zipf_table(args.checkpoint, list(range(lo, hi + 1)), [int(k) for k in args.K.split(",")])
    trows = trace_table(args.checkpoint, [int(k) for k in args.trace_K.split(",")], args.candidates) \
        if os.path.exists(CLOUD) else []
    if args.json:
        print(json.dumps({"zipf": zrows, "cloudPhysicsIO": trows}))
        return 0
    print(f"CR on seeds {args.seeds} (mean ± s.e.); paired learned - baseline (mean ± s.e.)")
    for r in zrows:
        cells = [f"learned {r['learned'][0]:.3f} ± {r['learned'][1]:.3f}"]
        cells += [f"{b} {r[b][0]:.3f} ({r[f'learned-{b}'][0]:+.3f} ± {r[f'learned-{b}'][1]:.3f})" for b in BASELINES]
        print(f"K={r['K']:<3} " + " | ".join(cells))
    if trows:
        print("cloudPhysicsIO non-compulsory faults")
        for r in trows:
            print(f"K={r['K']:<5} " + " ".join(f"{k}={v}" for k, v in r.items() if k != "K"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
