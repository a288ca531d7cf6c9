"""Lemma 2 on held-out seeds: the lemma2 entry of `gpupage bounds` over more lanes, its table and plot.

    python scripts/lemma2_prefetch.py [--seeds 1000-1039] [--checkpoint checkpoints/prefetch_blackbox_k8.pt]
        [--out docs/prefetch/lemma2_hints.png]
"""

from __future__ import annotations

import argparse
import os

from gpupage.core.results import atomic_path
from gpupage.experiments.bounds.config import BoundsConfig
from gpupage.experiments.bounds.lemma2 import lemma2
from gpupage.experiments.bounds.plots import plot_lemma2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000-1039")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="docs/prefetch/lemma2_hints.png")
    args = ap.parse_args()
    a, b = (int(x) for x in args.seeds.split("-"))
    cfg = BoundsConfig(lanes=b - a + 1, seed=a, prefetch_checkpoint=args.checkpoint)
    e = lemma2(cfg)
    print("| policy | eps | bound | gap (mean) | s.e. | worst lane | holds |\n|---|---|---|---|---|---|---|")
    for r in e["details"]["rows"]:
        print(f"| {r['policy']} | {r['eps']:g} | {r['bound']:g} | {100 * r['mean_gap']:+.2f} pp | "
              f"{100 * r['se']:.2f} pp | {100 * r['max_gap']:+.2f} pp | {'yes' if r['holds'] else '**no**'} |")
    print(f"checkpoint: {e['details']['checkpoint']}; holds: {e['holds']}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_lemma2(ax, e["details"]["rows"], cfg.K)
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
