"""The prefetch controller's tables of the README (issue 13) on held-out seeds, paired per seed with s.e.

    python scripts/prefetch_table.py [--seeds 1000-1039] [--checkpoint checkpoints/prefetch_blackbox_k8.pt]
        [--no-hints-checkpoint checkpoints/prefetch_nohints_k8.pt]

Per eps in {0.1, 0, 1}: every policy's mean cost (never / follow_hint x lru, lfu, fifo, adaptive, the
lookahead oracle, OPT, the controller) and the controller minus each, per seed (mean +- s.e., wins); the
same controller with adaptive choosing its victims (is the victim head better than adaptive's victims?);
at eps = 1, the controller against the same recipe trained without hints (a victim-only controller).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from gpupage.controller.prefetch_train import load_prefetch_controller
from gpupage.experiments.prefetch_controller import lane_costs, settings


def _paired(a, b) -> str:
    d = np.asarray(a) - np.asarray(b)
    se = d.std(ddof=1) / math.sqrt(len(d))
    return f"{d.mean():+.1f} +- {se:.1f} ({100 * d.sum() / np.sum(b):+.2f}%), wins {(d < 0).sum()}/{len(d)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000-1039")
    ap.add_argument("--checkpoint", default="checkpoints/prefetch_blackbox_k8.pt")
    ap.add_argument("--no-hints-checkpoint", default=None)
    ap.add_argument("--eps", default="0.1,0,1")
    args = ap.parse_args()
    a, b = (int(x) for x in args.seeds.split("-"))
    seeds = list(range(a, b + 1))
    model, ck = load_prefetch_controller(args.checkpoint)
    ablation = dict(ck, settings=dict(ck["settings"], eviction="adaptive"))
    for eps in (float(e) for e in args.eps.split(",")):
        s = settings(ck, eps=eps)
        lanes = lane_costs(model, ck, seeds, s)
        ctl = lanes.pop("controller")["cost"]
        lanes["controller (adaptive victims)"] = lane_costs(model, ablation, seeds, s, heuristics=False)["controller"]
        if args.no_hints_checkpoint:
            m2, ck2 = load_prefetch_controller(args.no_hints_checkpoint)
            lanes["no-hints controller"] = lane_costs(m2, ck2, seeds, s, heuristics=False)["controller"]
        print(f"\n### eps = {eps:g} ({len(seeds)} seeds {a}-{b}, K={s['K']} L={s['L']} "
              f"lambda_fetch={s['lam_fetch']:g})\ncontroller: cost {ctl.mean():.1f}\n")
        print("| policy | cost | controller - policy, per seed (+- s.e.) | controller / policy |\n|---|---|---|---|")
        for name, v in sorted(lanes.items(), key=lambda kv: kv[1]["cost"].mean()):
            print(f"| {name} | {v['cost'].mean():.1f} | {_paired(ctl, v['cost'])} | "
                  f"{ctl.sum() / v['cost'].sum():.3f} |")


if __name__ == "__main__":
    main()
