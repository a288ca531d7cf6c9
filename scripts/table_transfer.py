"""How far a hit-density ranking goes on a trace: fitted on it in hindsight, carried from another, or online.

The ``hit_density`` teacher ranks blocks by LHD's table (count class x L(age), ``hit_density.bagged``). Fitted on
the very requests it is judged on, the table is a hindsight figure (no online policy has it); fitted on another
trace (by default the Mooncake training calls 0..6399, all that ``llm_k*.pt`` saw) and frozen, it is what a
teacher trained elsewhere could pass on; ``hit_density.online_rollout`` estimates the hindsight table's mean over
sizes as the trace runs, from shadow caches (no training). Non-compulsory faults of the three beside LFU and the best
baseline:

    python scripts/table_transfer.py [--trace F --format txt] [--other G --other-format mooncake] [--K 64,4096]
        [--sample-rate 0.125]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from gpupage.controller import hit_density
from gpupage.controller.evaluate import BASELINES
from gpupage.controller.slotnet import TrainConfig, training_part
from gpupage.core import shards
from gpupage.core.io import read_trace
from gpupage.core.simulate import simulate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(ROOT, "..", "shared", "traces")


def table_rows(ids: np.ndarray, other: np.ndarray, Ks: list[int], sizes: int = 5,
               sample_rate: float = 1.0) -> list[dict]:
    """Per K: the best baseline's name and non-compulsory faults, LFU's, and the table policy's with the table
    fitted on ``ids`` itself (``hindsight``) and on ``other`` (``transfer``), and the ``online`` estimate's."""
    lanes = torch.from_numpy(ids).expand(len(Ks), -1)
    Kt = torch.tensor(Ks)
    base = {b: simulate(lanes, b, Kt).non_compulsory for b in BASELINES}
    rows = []
    for i, K in enumerate(Ks):
        best = min(BASELINES, key=lambda b: int(base[b][i]))
        rows.append({"K": K, "best": best, "best_faults": int(base[best][i]), "lfu": int(base["lfu"][i]),
                     "hindsight": hit_density.rollout(ids, K, hit_density.bagged(ids, K, sizes))[0],
                     "transfer": hit_density.rollout(ids, K, hit_density.bagged(other, K, sizes))[0],
                     "online": hit_density.online_rollout(ids, K, sizes, sample_rate=sample_rate)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default=os.path.join(TRACES, "cloudPhysicsIO.txt"))
    ap.add_argument("--format", default="auto")
    ap.add_argument("--other", default=os.path.join(TRACES, "mooncake_conversation_train.jsonl"))
    ap.add_argument("--other-format", default="mooncake")
    ap.add_argument("--K", default="64,256,1024,4096")
    ap.add_argument("--sizes", type=int, default=5, help="tables estimated at K, 2K, ... averaged (--density-sizes)")
    ap.add_argument("--sample-rate", type=float, default=1.0,
                    help="the online shadows see this share of the blocks (a SHARDS sample, as gpupage mrc's)")
    args = ap.parse_args(argv)
    try:
        shards.check_rate(args.sample_rate)  # the bound gpupage mrc --sample-rate checks
    except ValueError:
        raise SystemExit(f"Error: --sample-rate must be in (0, 1], got {args.sample_rate}") from None
    ids = np.asarray(read_trace(args.trace, args.format).ids, dtype=np.int64)
    other = np.asarray(training_part(TrainConfig(trace_file=args.other, trace_format=args.other_format))[0],
                       dtype=np.int64)
    print(f"{os.path.basename(args.trace)}: non-compulsory faults (ratio to the best baseline); the other trace's "
          f"first 80% of calls: {os.path.basename(args.other)}")
    print("| K | best baseline | LFU | table fitted on this trace (hindsight) | table fitted on the other (transfer) "
          "| online, from shadow caches |")
    print("|---|---|---|---|---|---|")
    for r in table_rows(ids, other, [int(k) for k in args.K.split(",")], args.sizes, args.sample_rate):
        b = r["best_faults"]
        print(f"| {r['K']} | {r['best']} {b:,} | {r['lfu']:,} ({r['lfu'] / b:.3f}) | "
              f"{r['hindsight']:,} ({r['hindsight'] / b:.3f}) | {r['transfer']:,} ({r['transfer'] / b:.3f}) | "
              f"{r['online']:,} ({r['online'] / b:.3f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
