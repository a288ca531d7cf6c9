"""PPO fine-tunes of a cloned controller, side by side: the sampled rollout's CR against the greedy
validation CR, the validation gap to the best baseline, and the policy's entropy per iteration.

    python scripts/plot_ppo_finetune.py --out docs/figures/ppo_finetune_k8.png LABEL=train_log.csv ...
"""

from __future__ import annotations

import argparse

from gpupage.controller.trainlog import read_log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("runs", nargs="+", help="LABEL=path/to/train_log.csv")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, spec in enumerate(args.runs):
        label, path = spec.split("=", 1)
        rows = [r for r in read_log(path) if r["stage"] == "ppo"]
        color = f"C{i}"
        it = [r for r in rows if r["rollout_cr"]]
        val = [r for r in rows if r["val_cr"]]
        axes[0].plot([int(r["step"]) for r in it], [float(r["rollout_cr"]) for r in it], ":", color=color,
                     label=f"{label}: rollout (sampled)")
        axes[0].plot([int(r["step"]) for r in val], [float(r["val_cr"]) for r in val], "o-", color=color,
                     label=f"{label}: greedy, validation")
        axes[1].errorbar([int(r["step"]) for r in val], [float(r["val_gap"]) for r in val],
                         yerr=[float(r["val_gap_se"]) for r in val], fmt="o-", color=color, capsize=3, label=label)
        axes[2].plot([int(r["step"]) for r in it], [float(r["entropy"]) for r in it], "-", color=color, label=label)
    axes[0].set(xlabel="PPO iteration", ylabel="competitive ratio (faults / Belady)", title="sampled vs greedy")
    axes[0].legend(fontsize=7)
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set(xlabel="PPO iteration", ylabel="CR - adaptive's CR (paired, ± s.e.)",
                title="greedy validation gap (seeds 20000-20031)")
    axes[1].legend(fontsize=7)
    axes[2].set(xlabel="PPO iteration", ylabel="entropy (nats)", title="sampling policy's entropy")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
