"""The PNG plots of the bounds report, drawn from the entries alone (matplotlib, Agg)."""

from __future__ import annotations

import os

import numpy as np

from ...core.results import atomic_path
from .config import HEURISTICS


def make_plots(entries, etas, cfg, out_dir) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {e["id"]: e for e in entries}
    figs = {}

    def save(fig, name):
        fig.tight_layout()
        with atomic_path(os.path.join(out_dir, name)) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        figs[name.split(".")[0]] = name

    # Lemma 1a: cascade factor against K
    rows = by["lemma1a"]["details"]["zipf"]
    levels = sorted({(r["alpha"], r["W"]) for r in rows}, reverse=True)
    fig, axes = plt.subplots(1, len(HEURISTICS), figsize=(4 * len(HEURISTICS), 3.6), sharey=True)
    Ks = np.array(sorted({r["K"] for r in rows}))
    beta = min(r["beta"] for r in rows)
    for ax, pol in zip(axes, HEURISTICS):
        for a, W in levels:
            sel = sorted((r for r in rows if r["policy"] == pol and r["alpha"] == a and r["W"] == W
                          and r["beta"] == beta), key=lambda r: r["K"])
            # zeros (K_b >= W: nothing left to perturb) are left off the log axis
            ax.plot([r["K"] for r in sel], [r["mean_factor"] or np.nan for r in sel], "o-", label=f"alpha={a}, W={W}")
        ax.plot(Ks, Ks + 1, "k--", label="K_b + 1 (Lemma 1a)")
        ax.plot(Ks, np.log2(Ks) + 1, "k:", label="log2 K_b + 1")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(pol.upper())
        ax.set_xlabel("K_b")
    axes[0].set_ylabel(f"|dF| / d   (d = {beta} T)")
    axes[0].legend(fontsize=7)
    save(fig, "lemma1a_cascade.png")

    # Lemma 1b
    rows = by["lemma1b"]["details"]["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for pol in HEURISTICS + ("belady",):
        sel = sorted((r for r in rows if r["policy"] == pol), key=lambda r: r["rho"])
        ax.plot([1 - r["rho"] for r in sel], [r["mean_extra"] for r in sel], "o-", label=pol)
    xs = np.array(sorted({1 - r["rho"] for r in rows}))
    ax.plot(xs, xs * cfg.T, "k--", label="(1 - rho) T")
    ax.set_xlabel("1 - rho")
    ax.set_ylabel(f"extra faults (K_b = {cfg.K})")
    ax.legend(fontsize=8)
    save(fig, "lemma1b_noise.png")

    # Lemma 2: fault-rate gap to eps = 0 against the bound eps
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_lemma2(ax, by["lemma2"]["details"]["rows"], cfg.K)
    save(fig, "lemma2_hints.png")

    # Theorem 3
    rows = by["theorem3"]["details"]["rows"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    Tmax = max(cfg.cyclic_T)
    sel = sorted((r for r in rows if r["T"] == Tmax), key=lambda r: r["K"])
    Kx = [r["K"] for r in sel]
    ax.plot(Kx, Kx, "k--", label="K_b (Theorem 3)")
    ax.plot(Kx, [r["exact_ratio"] for r in sel], "k-", lw=3, alpha=0.3, label=f"exact ratio, T = {Tmax}")
    for key, mk in (("lru_ratio", "o"), ("fifo_ratio", "x"), ("random_ratio", "s")):
        ax.plot(Kx, [r[key] for r in sel], mk, label=key.split("_")[0].upper())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("K_b")
    ax.set_ylabel("F_A / F_opt on the cyclic trace")
    ax.legend(fontsize=8)
    save(fig, "theorem3_cyclic.png")

    # Theorem 4: beta-hat vs sigma, and LRU against its bounds
    e4 = by["theorem4"]["details"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    b = e4["beta"]
    sig = [r["sigma"] for r in b]
    axes[0].errorbar(sig, [r["beta_lru_fifo"] for r in b], [r["beta_lru_fifo_sd"] for r in b], fmt="o-",
                     label="d_H(LRU, FIFO) / T")
    axes[0].errorbar(sig, [r["beta_max"] for r in b], [r["beta_max_sd"] for r in b], fmt="s-",
                     label="max over baseline pairs")
    axes[0].set_xlabel("sigma (closed-loop strength)")
    axes[0].set_ylabel("beta-hat")
    axes[0].legend(fontsize=8)
    lr = sorted((r for r in e4["rows"] if r["A"] == "lru" and r["pi"] == "lru"), key=lambda r: r["sigma"])
    axes[1].plot(sig, [r["F_A"] for r in lr], "o-", label="F_LRU(r^LRU)")
    axes[1].plot(sig, [r["F_opt"] for r in lr], "o-", label="F_opt(r^LRU)")
    axes[1].plot(sig, [r["bound_cemp"] for r in lr], "--", label=f"bound, c = {e4['empirical_c']['lru']:.2f}")
    axes[1].plot(sig, [r["bound_cK"] for r in lr], ":", label=f"bound, c = K_b = {cfg.K}")
    axes[1].axhline(cfg.T, color="gray", lw=1, label="T (any bound above is vacuous)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("sigma")
    axes[1].set_ylabel("faults")
    axes[1].legend(fontsize=8)
    save(fig, "theorem4_closed_loop.png")

    # Corollary 1
    rows = by["corollary1"]["details"]["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, alpha in zip(axes, (0.0, 1.2)):
        for W in sorted({r["W"] for r in rows}):
            sel = sorted((r for r in rows if r["W"] == W and r["alpha"] == alpha and r["policy"] == "lru"),
                         key=lambda r: r["K"])
            ax.plot([r["K_over_W"] for r in sel], [r["fault_rate"] for r in sel], "o-", label=f"LRU W={W}")
            sel = sorted((r for r in rows if r["W"] == W and r["alpha"] == alpha and r["policy"] == "belady"),
                         key=lambda r: r["K"])
            ax.plot([r["K_over_W"] for r in sel], [r["fault_rate"] for r in sel], "x:", label=f"Belady W={W}")
        ax.axvline(1.0, color="k", ls="--")
        ax.set_title(f"alpha = {alpha}")
        ax.set_xlabel("K_b / W")
    axes[0].set_ylabel("fault rate")
    axes[0].legend(fontsize=7)
    save(fig, "corollary1_thrashing.png")

    # instance-dependent ratio
    rows = by["instance_ratio"]["details"]["rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    Kx = sorted({r["K"] for r in rows})
    for dist in dict.fromkeys(r["dist"] for r in rows):
        sel = sorted((r for r in rows if r["dist"] == dist and r["policy"] == "lru"), key=lambda r: r["K"])
        ax.errorbar([r["K"] for r in sel], [r["mean"] for r in sel], [r["sd"] for r in sel], fmt="o-", label=dist)
    ax.plot(Kx, Kx, "k--", label="worst case K_b")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("K_b")
    ax.set_ylabel("LRU: F / F_opt")
    ax.legend(fontsize=7)
    save(fig, "instance_ratio.png")

    if etas:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for ax, x, other in ((axes[0], "eta", "replace"), (axes[1], "replace", "eta")):
            for pol in dict.fromkeys(r["policy"] for r in etas):
                sel = sorted((r for r in etas if r["policy"] == pol and r[other] == 0), key=lambda r: r[x])
                ax.plot([r[x] for r in sel], [r["ratio"] for r in sel], "o-", label=pol)
            ax.axhline(1.0, color="k", ls="--", label="Belady")
            ax.set_xlabel("lognormal noise scale eta" if x == "eta" else "share of predictions replaced at random")
        axes[0].set_ylabel(f"F / F_opt (K_b = {cfg.K})")
        axes[0].legend(fontsize=8)
        save(fig, "eta_ratio.png")
    return figs


def plot_lemma2(ax, rows, K):
    """Lemma 2's gaps per policy against eps, with the bound (also drawn by scripts/lemma2_prefetch.py)."""
    for pol in dict.fromkeys(r["policy"] for r in rows):
        sel = sorted((r for r in rows if r["policy"] == pol), key=lambda r: r["eps"])
        ax.errorbar([r["eps"] for r in sel], [r["mean_gap"] for r in sel], [r["se"] for r in sel], fmt="o-", label=pol)
    xs = np.array(sorted({r["eps"] for r in rows}))
    ax.plot(xs, xs, "k--", label="eps (Lemma 2)")
    ax.set_xlabel("hint noise eps")
    ax.set_ylabel(f"fault-rate gap to eps = 0 (K_b = {K})")
    ax.legend(fontsize=8)
