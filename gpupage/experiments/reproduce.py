"""The paper's synthetic validation (§6, App. B), end to end: tables, summary.json and Figures 4-5."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.results import atomic_path, claim_dir, write_text_atomic
from ..core.simulate import first_touches, simulate
from ..core.traces import ZipfParams, hamming_count, perturb, zipf_traces

PAPER_POLICIES = ("belady", "lru", "lfu", "fifo", "random")
# Published figures at K_b = 8 (§6.2-6.3); None where the paper gives no number.
PAPER_AT_K8 = {
    "fault_rate": {"belady": (0.121, 0.003), "lru": (0.226, 0.007), "fifo": (0.276, None),
                   "random": (0.280, None), "lfu": (0.577, None)},
    "competitive_ratio": {"lru": (1.86, 0.04), "lfu": (4.8, None)},
    "cascade_factor": 1.13,
}


@dataclass
class ReproduceConfig:
    params: ZipfParams = field(default_factory=ZipfParams)
    seeds: list[int] = field(default_factory=lambda: list(range(42, 52)))
    Ks: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10, 12, 16])
    policies: tuple[str, ...] = PAPER_POLICIES + ("fixed",)
    betas: list[float] = field(default_factory=lambda: [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    beta_K: int = 8
    device: str = "cpu"


def _mean_sd(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else 0.0}


def fault_table(cfg: ReproduceConfig, progress=None) -> list[dict]:
    """One row per (policy, K, seed); all (seed, K) pairs run as lanes of one batch per policy."""
    base = zipf_traces(cfg.params, cfg.seeds).to(cfg.device)
    S, nK = len(cfg.seeds), len(cfg.Ks)
    traces = base.repeat(nK, 1)  # lane = k_index * S + seed_index
    Ks = torch.tensor(cfg.Ks, dtype=torch.int64).repeat_interleave(S)
    seeds = cfg.seeds * nK
    faults = {}
    for name in ("belady",) + tuple(p for p in cfg.policies if p != "belady"):
        faults[name] = simulate(traces, name, Ks.to(cfg.device), seed=seeds).faults.cpu().numpy()
        if progress is not None:
            progress.update(1)
    compulsory = first_touches(base).tolist()  # per seed
    rows = []
    for name in cfg.policies:
        for lane in range(S * nK):
            f = int(faults[name][lane])
            rows.append(dict(policy=name, K=int(Ks[lane]), seed=seeds[lane], faults=f,
                             non_compulsory_faults=f - compulsory[lane % S], fault_rate=f / cfg.params.T,
                             competitive_ratio=f / int(faults["belady"][lane])))
    return rows


def beta_sweep(cfg: ReproduceConfig, progress=None) -> list[dict]:
    """Fault stability (Lemma 1a, Fig. 5a) and Theorem 4 with c = K_b (Fig. 5b) for LRU."""
    K, T = cfg.beta_K, cfg.params.T
    base = zipf_traces(cfg.params, cfg.seeds)
    f0 = simulate(base.to(cfg.device), "lru", K).faults.cpu().numpy()
    out = []
    for beta in cfg.betas:
        pert = perturb(base, beta, cfg.params.M, cfg.seeds).to(cfg.device)
        fb = simulate(pert, "lru", K).faults.cpu().numpy()
        fopt = simulate(pert, "belady", K).faults.cpu().numpy()
        d = hamming_count(beta, T)
        delta = np.abs(fb - f0)
        c = K
        bound = c * fopt + (c + 1) * (K + 1) * d
        out.append(dict(
            beta=beta, beta_T=d,
            delta_faults_mean=float(delta.mean()), delta_faults_sd=_mean_sd(delta)["sd"],
            lemma1a_bound=(K + 1) * d, lemma1a_holds=bool((delta <= (K + 1) * d).all()),
            lru_faults_mean=float(fb.mean()), lru_faults_sd=_mean_sd(fb)["sd"],
            opt_faults_mean=float(fopt.mean()),
            theorem4_bound=float(bound.mean()), theorem4_bound_sd=_mean_sd(bound)["sd"],
            theorem4_holds=bool((fb <= bound).all()),
            theorem4_slack_min=float((bound - fb).min()),
        ))
        if progress is not None:
            progress.update(1)
    return out


def _config(cfg: ReproduceConfig) -> dict:
    """What determines the numbers (the device does not: backends agree), as summary.json records it."""
    return {"params": cfg.params.to_dict(), "seeds": list(cfg.seeds), "K": list(cfg.Ks), "beta_K": cfg.beta_K,
            "policies": list(cfg.policies), "betas": list(cfg.betas),
            "sd": "sample standard deviation over seeds (ddof=1)"}


def summarize(rows: list[dict], sweep: list[dict], cfg: ReproduceConfig) -> dict:
    fr: dict = {}
    cr: dict = {}
    for name in cfg.policies:
        fr[name], cr[name] = {}, {}
        for K in cfg.Ks:
            sel = [r for r in rows if r["policy"] == name and r["K"] == K]
            fr[name][str(K)] = _mean_sd([r["fault_rate"] for r in sel])
            cr[name][str(K)] = _mean_sd([r["competitive_ratio"] for r in sel])
    small = [s for s in sweep if 0 < s["beta"] <= 0.15 and s["beta_T"] > 0]
    cascade = float(np.mean([s["delta_faults_mean"] / s["beta_T"] for s in small])) if small else None
    return {
        "config": _config(cfg),
        "fault_rate": fr,
        "competitive_ratio": cr,
        "beta_sweep": sweep,
        "cascade_factor": cascade,
        "paper_at_K8": PAPER_AT_K8,
    }


def comparison_rows(summary: dict, K: int = 8) -> list[tuple[str, str, str]]:
    """(metric, ours, paper) lines for the printed table and the README."""
    def fmt(ms, digits=3):
        return f"{ms['mean']:.{digits}f} ± {ms['sd']:.{digits}f}"

    def paper(v):
        if v is None:
            return "-"
        m, sd = v
        return f"{m}" if sd is None else f"{m} ± {sd}"

    out = []
    for name in PAPER_POLICIES:
        if name in summary["fault_rate"]:
            out.append((f"fault rate {name} (K={K})", fmt(summary["fault_rate"][name][str(K)]),
                        paper(PAPER_AT_K8["fault_rate"].get(name))))
    for name in ("lru", "lfu"):
        if name in summary["competitive_ratio"]:
            out.append((f"competitive ratio {name} (K={K})", fmt(summary["competitive_ratio"][name][str(K)], 2),
                        paper(PAPER_AT_K8["competitive_ratio"].get(name))))
    if summary["cascade_factor"] is not None:
        out.append(("cascade factor (beta <= 0.15)", f"{summary['cascade_factor']:.2f}", str(PAPER_AT_K8["cascade_factor"])))
    out.append(("Theorem 4 holds (all beta, all seeds)", str(all(s["theorem4_holds"] for s in summary["beta_sweep"])), "True"))
    return out


def _write_csv(path: str, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def plot(summary: dict, cfg: ReproduceConfig, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ks = cfg.Ks
    paths = []

    def save(fig, ax, name, xlabel, ylabel, title):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        p = os.path.join(out_dir, name)
        fig.tight_layout()
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
        paths.append(p)

    for key, name, ylabel in (("fault_rate", "fig4a_fault_rate.png", "fault rate"),
                              ("competitive_ratio", "fig4b_competitive_ratio.png", "competitive ratio F_A / F_opt")):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for pol in PAPER_POLICIES:
            ms = [summary[key][pol][str(K)] for K in Ks]
            ax.errorbar(Ks, [m["mean"] for m in ms], yerr=[m["sd"] for m in ms], marker="o", capsize=3, label=pol)
        if key == "competitive_ratio":
            ax.plot(Ks, Ks, "k--", label="worst case K_b (Thm 3)")
            ax.set_yscale("log")
        save(fig, ax, name, "cache size K_b (blocks)", ylabel,
             f"{'(a)' if key == 'fault_rate' else '(b)'} non-stationary Zipf, M={cfg.params.M}, T={cfg.params.T}, "
             f"{len(cfg.seeds)} seeds")

    sw = summary["beta_sweep"]
    bT = np.array([s["beta_T"] for s in sw])
    K = cfg.beta_K
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.errorbar(bT, [s["delta_faults_mean"] for s in sw], yerr=[s["delta_faults_sd"] for s in sw], marker="o",
                capsize=3, label="|F_LRU(r^β) − F_LRU(r^0)|")
    ax.plot(bT, bT, "k:", label="βT")
    ax.plot(bT, (K + 1) * bT, "r--", label="(K_b+1)βT (Lemma 1a)")
    save(fig, ax, "fig5a_fault_stability.png", "βT = d_H(r^0, r^β)", "fault difference", f"(a) fault stability, K_b={K}")

    fig, ax = plt.subplots(figsize=(6, 4.2))
    betas = [s["beta"] for s in sw]
    ax.errorbar(betas, [s["lru_faults_mean"] for s in sw], yerr=[s["lru_faults_sd"] for s in sw], marker="o",
                capsize=3, color="tab:orange", label="F_LRU(r^β)")
    ax.errorbar(betas, [s["theorem4_bound"] for s in sw], yerr=[s["theorem4_bound_sd"] for s in sw], fmt="--",
                color="tab:red", capsize=3, label="c·F_opt + (c+1)(K_b+1)βT, c=K_b")
    ax.set_yscale("log")
    save(fig, ax, "fig5b_theorem4.png", "β", "faults", f"(b) Theorem 4, K_b={K}")
    return paths


OUTPUTS = ("fault_rates.csv", "beta_sweep.csv", "summary_by_policy_K.csv", "summary.json", "fig4a_fault_rate.png",
           "fig4b_competitive_ratio.png", "fig5a_fault_stability.png", "fig5b_theorem4.png")
"""Every file :func:`reproduce` writes into its directory."""


def reproduce(out_dir: str, cfg: ReproduceConfig | None = None, progress_factory=None, device: str | None = None,
              overwrite: bool = False) -> dict:
    """Run everything and write tables, summary.json and the four figures (:data:`OUTPUTS`) into ``out_dir``.

    A directory that already holds this run's complete output (every file, and a summary of the same
    configuration) is kept and its summary returned, with ``"kept": True``, as a finished sweep rerun does
    nothing; one holding any other of these files is refused.  ``overwrite`` recomputes and replaces."""
    cfg = cfg or ReproduceConfig()
    if device is not None:
        cfg.device = device
    if not overwrite and all(os.path.isfile(os.path.join(out_dir, n)) for n in OUTPUTS):
        try:
            with open(os.path.join(out_dir, "summary.json")) as f:
                done = json.load(f)
        except (OSError, ValueError):
            done = None
        if isinstance(done, dict) and done.get("config") == json.loads(json.dumps(_config(cfg))):
            return {**done, "kept": True}
    claim_dir(out_dir, OUTPUTS, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    steps = len(cfg.policies) + len(cfg.betas) + 1
    progress = progress_factory(steps) if progress_factory else None
    try:
        rows = fault_table(cfg, progress)
        _write_csv(os.path.join(out_dir, "fault_rates.csv"), rows)
        sweep = beta_sweep(cfg, progress)
        _write_csv(os.path.join(out_dir, "beta_sweep.csv"), sweep)
        summary = summarize(rows, sweep, cfg)
        _write_csv(os.path.join(out_dir, "summary_by_policy_K.csv"), [
            dict(policy=p, K=K, fault_rate_mean=summary["fault_rate"][p][str(K)]["mean"],
                 fault_rate_sd=summary["fault_rate"][p][str(K)]["sd"],
                 competitive_ratio_mean=summary["competitive_ratio"][p][str(K)]["mean"],
                 competitive_ratio_sd=summary["competitive_ratio"][p][str(K)]["sd"])
            for p in cfg.policies for K in cfg.Ks])
        write_text_atomic(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2))
        summary["plots"] = plot(summary, cfg, out_dir)
        if progress is not None:
            progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    return summary
