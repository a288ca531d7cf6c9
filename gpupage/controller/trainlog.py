"""The training log: ``train_log.csv`` (one row per behaviour-cloning round or PPO iteration) and its plot."""

from __future__ import annotations

from ..core.results import atomic_path

COLUMNS = {
    "stage": "'bc' (a behaviour-cloning round) or 'ppo' (an iteration)",
    "step": "the DAgger round (from 0), or the PPO iterations done (0: the starting point, validated only)",
    "seconds": "training time so far",
    "samples": "decisions trained on (bc: in the pool; ppo: every decision of the iteration's episodes)",
    "loss": "bc: the behaviour-cloning loss",
    "agreement": "bc: share of the round's new states where the learner picked a Belady-optimal slot",
    "requests": "ppo: requests of every lane's episode (each iteration plays whole traces)",
    "fault_rate": "ppo: the sampled policy's faults / requests, both summed over every lane",
    "rollout_cr": "ppo: the sampled policy's faults / Belady's faults on the same traces, both summed",
    "pg_loss": "ppo: clipped surrogate loss, mean over the iteration's minibatch updates",
    "v_loss": "ppo: value loss, likewise",
    "entropy": "ppo: policy entropy (nats), likewise",
    "approx_kl": "ppo: approximate KL from the rollout's policy, likewise",
    "clipfrac": "ppo: share of samples whose ratio left the clip range, likewise",
    "epochs": "ppo: epochs run (the target-KL stop ends them early)",
    "val_cr": "where validated: the greedy policy's competitive ratio (faults / Belady), mean over validation seeds",
    "val_gap": "where validated: mean per-seed CR minus the best baseline's CR on the same seed",
    "val_gap_se": "where validated: standard error of val_gap",
    "val_baseline": "where validated: the baseline with the lowest mean CR on the validation seeds",
}


def check_fresh(out, resume=None, log_dir=None) -> None:
    """Refuse to replace an earlier run's checkpoint or log: a fresh run's ``out`` must not exist and its log dir
    (default: beside ``out``) must hold no ``train_log.csv``; a resumed run may write only over its own checkpoint."""
    from pathlib import Path

    out = Path(out)
    if out.exists() and (resume is None or out.resolve() != Path(resume).resolve()):
        raise ValueError(f"{out} exists; remove it or choose another --out" if resume else
                         f"{out} exists; remove it, choose another --out, or continue it with --resume {out}")
    log = Path(log_dir or out.parent) / "train_log.csv"
    if resume is None and log.exists():
        raise ValueError(f"{log} holds an earlier run's log; give this run another --log-dir (or remove it)")


def write_log(rows: list[dict], path) -> None:
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def read_log(path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(rows, key):
    return [float(r[key]) for r in rows]


def plot_log(rows: list[dict], path) -> None:
    """Cloning agreement per round; PPO's rollout CR per iteration; greedy validation CR and its gap to the
    best baseline (iteration 0: the cloned controller)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    bc = [r for r in rows if r["stage"] == "bc"]
    if bc:
        axes[0].plot(_num(bc, "step"), _num(bc, "agreement"), "o-")
    axes[0].set(title="behaviour cloning", xlabel="DAgger round", ylabel="agreement with Belady\n(new states)")
    pp = [r for r in rows if r["stage"] == "ppo" and str(r.get("rollout_cr", "")) not in ("", "nan")]
    if pp:
        axes[1].plot(_num(pp, "step"), _num(pp, "rollout_cr"), "-", label="rollout (sampling)")
    validated = [r for r in rows if str(r.get("val_cr", "")) not in ("", "nan")]
    # the cloned controller's validation (on the last cloning round's row) is PPO's iteration 0
    val = [(0, r) for r in validated if r["stage"] == "bc"][-1:] + [(int(r["step"]), r) for r in validated
                                                                    if r["stage"] == "ppo"]
    if val:
        xs = [x for x, _ in val]
        axes[1].plot(xs, [float(r["val_cr"]) for _, r in val], "o-", label="greedy, validation seeds")
        gap, se = [float(r["val_gap"]) for _, r in val], [float(r["val_gap_se"]) for _, r in val]
        axes[2].errorbar(xs, gap, yerr=se, fmt="o-", capsize=3)
        axes[2].axhline(0, color="grey", lw=0.8)
        axes[2].set(ylabel=f"CR - {val[-1][1]['val_baseline']} CR (paired, ± s.e.)")
    axes[1].set(title="PPO", xlabel="iteration", ylabel="competitive ratio")
    if pp or val:
        axes[1].legend(fontsize=8)
    axes[2].set(title="greedy validation gap to the best baseline", xlabel="iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rounds(runs: dict, path) -> None:
    """The ``learned`` trainer's rounds (:func:`gpupage.controller.slotnet.train`'s report, kept in every checkpoint
    it writes), one line per run of ``runs`` (name -> report): the exported network's faults over the best
    baseline's on the validation lanes, the kept round circled, where the run validated (a star: the export chosen
    on those lanes afterwards, ``report["export_val_excess_pct"]``, at the kept round); the loss in every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for i, (name, report) in enumerate(runs.items()):
        rounds, color = report["rounds"], f"C{i}"
        xs = [r["round"] for r in rounds]
        axes[1].plot(xs, [r["loss"] for r in rounds], "-", color=color, label=name)
        kept = report.get("kept_round")
        if all("val_excess_pct" in r for r in rounds):
            axes[0].plot(xs, [r["val_excess_pct"] for r in rounds], ".-", color=color, label=name)
            if kept is not None:
                axes[0].plot([kept], [rounds[kept]["val_excess_pct"]], "o", ms=12, mfc="none", color=color)
        if "export_val_excess_pct" in report:
            axes[0].plot([xs[-1] if kept is None else kept], [report["export_val_excess_pct"]], "*", ms=12,
                         color=color, label=f"{name}: export chosen")
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set_yscale("symlog", linthresh=1)  # early rounds can be tens of % off; the kept ones are within 1 %
    axes[0].set(title="validation lanes (o: the round kept, *: the export chosen)", xlabel="DAgger round",
                ylabel="faults over the best baseline's (%),\nmean over the nine variants")
    axes[1].set(title="listwise loss", xlabel="DAgger round", ylabel="loss", yscale="log")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
