"""The learned policy's training curves from its checkpoints (each keeps its trainer's per-round report).

    python scripts/plot_learned.py                       # the shipped networks -> docs/figures/learned_rounds.png
    python scripts/plot_learned.py --checkpoint MINE.pt --out mine.png
"""

from __future__ import annotations

import argparse
import os

import torch

from gpupage.controller.trainlog import plot_rounds
from gpupage.core.results import atomic_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ["learned_k4.pt", "learned_k8.pt", "learned_k16.pt", "llm_k1024.pt", "llm_k4096.pt"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", help="repeatable [default: the shipped learned networks]")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "figures", "learned_rounds.png"))
    args = ap.parse_args(argv)
    paths = args.checkpoint or [os.path.join(ROOT, "checkpoints", n) for n in SHIPPED]
    runs = {}
    for p in paths:
        meta = torch.load(p, weights_only=True)["meta"]
        export = {"export_val_excess_pct": meta["export"]["val_excess_pct"]} if "export" in meta else {}
        runs[os.path.basename(p).removesuffix(".pt")] = {**meta["report"], **export}
    with atomic_path(args.out) as tmp:  # as plot_log's caller does
        plot_rounds(runs, tmp)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
