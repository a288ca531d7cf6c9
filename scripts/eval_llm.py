"""The ``learned`` policy on the Mooncake trace's future: non-compulsory faults on validation calls.

The shared Mooncake file has 8000 calls: the first 80% (0..6399) are the only ones training
reads; calls 6400..7999 are replayed here as a trace of their own, from an empty cache (the
stand-in for the service's later calls).  Every baseline, Belady and the checkpoint(s) at each K;
each policy's ratio to the best baseline at that K (target: the learned one <= 0.95).

    python scripts/eval_llm.py [--checkpoint checkpoints/llm_k1024.pt] [--candidates C] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from gpupage.controller.evaluate import BASELINES
from gpupage.core.io import read_trace
from gpupage.core.simulate import simulate
from gpupage.core.traces import call_slice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOONCAKE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation_train.jsonl")


def validation_table(trace, Ks: list[int], checkpoints: dict, candidates: int) -> dict:
    """{K: {policy: non-compulsory faults}} on ``trace`` (a FileTrace); ``checkpoints`` name -> path."""
    lanes = torch.from_numpy(trace.ids).expand(len(Ks), -1)
    Kt = torch.tensor(Ks)
    runs = {name: simulate(lanes, name, Kt).faults for name in BASELINES + ("belady",)}
    for name, path in checkpoints.items():
        opts = {"checkpoint": path, **({"candidates": candidates} if candidates else {})}
        runs[name] = simulate(lanes, "learned", Kt, options=opts).faults
    return {K: {name: int(f[i]) - trace.distinct for name, f in runs.items()} for i, K in enumerate(Ks)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", default=None,
                    help="learned checkpoint (repeatable) [default: checkpoints/llm_k1024.pt and llm_k4096.pt]")
    ap.add_argument("--trace", default=MOONCAKE)
    ap.add_argument("--calls", default="6400-7999", help="first-last validation call, inclusive")
    ap.add_argument("--K", default="1024,4096")
    ap.add_argument("--candidates", type=int, default=0, help="C least recently accessed slots scored (0: every slot)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    paths = args.checkpoint or [os.path.join(ROOT, "checkpoints", f"llm_k{k}.pt") for k in (1024, 4096)]
    ckpts = {os.path.basename(p).removesuffix(".pt"): p for p in paths if os.path.exists(p)}
    lo, hi = (int(v) for v in args.calls.split("-"))
    trace = call_slice(read_trace(args.trace, "mooncake"), lo, hi + 1)
    table = validation_table(trace, [int(k) for k in args.K.split(",")], ckpts, args.candidates)
    if args.json:
        print(json.dumps({str(k): v for k, v in table.items()}))
        return 0
    print(f"calls {lo}-{hi}: {trace.requests} requests, {trace.distinct} distinct; non-compulsory faults "
          f"(ratio to the best baseline); learned with candidates={args.candidates}")
    for K, row in table.items():
        best = min(row[b] for b in BASELINES)
        print(f"K={K}: best baseline {min(BASELINES, key=row.get)} {best}")
        for name, v in sorted(row.items(), key=lambda kv: kv[1]):
            print(f"  {name:<12} {v:>7} {v / max(best, 1):6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
