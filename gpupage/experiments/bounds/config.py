"""Settings of the bounds report, and the helpers every section shares."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...core import limits
from ...core.simulate import simulate
from ...core.traces import ZipfParams


HEURISTICS = ("lru", "fifo", "lfu", "random")


@dataclass
class BoundsConfig:
    """Settings of the bounds report; the defaults finish in about a minute on 2 cores."""

    lanes: int = 10
    """Independent traces (seeds seed..seed+lanes-1 as lanes) per setting."""
    seed: int = 0
    """Base seed."""
    T: int = 5000
    """Trace length (paper: 5000)."""
    M: int = 64
    """Blocks in external memory (paper: 64)."""
    K: int = 8
    """The paper's cache size for single-K sections."""
    Ks: tuple = (2, 4, 8, 16, 32, 64)
    """Cache sizes of the Lemma 1a sweep."""
    localities: tuple = ((2.0, 8), (1.2, 16), (0.6, 32), (0.0, 64))
    """(alpha, W) locality levels, strongest first; (0, M) is uniform access."""
    betas: tuple = (0.02, 0.1)
    """Perturbation fractions d / T of Lemma 1a."""
    rhos: tuple = (0.95, 0.9, 0.8, 0.7, 0.5)
    """Retrieval recalls of Lemma 1b."""
    sigmas: tuple = (0.0, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
    """Closed-loop strengths of Theorem 4."""
    degree: int = 4
    """Association-graph degree of the closed-loop traces."""
    cyclic_T: tuple = (100, 1000, 10000, 100000)
    """Horizons of Theorem 3's exact finite-T ratio."""
    search_Ks: tuple = (2, 3, 4, 5)
    """Cache sizes of the Lemma 1a counterexample search."""
    search_iters: int = 1500
    """Hill-climbing steps per restart of the counterexample search."""
    search_lengths: tuple = (16, 32, 64)
    """Trace lengths of the counterexample-growth search (K = 3)."""
    exhaustive_len: int = 9
    """Longest trace of the exhaustive minimality check (K = 2, 4 blocks)."""
    prop6_q: tuple = (0.5, 0.8, 0.95)
    """Probability that the noisy-Belady policy follows Belady (Prop. 6 fallback)."""
    etas: tuple = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    """Prediction-noise scales of the eta plot (learning-augmented baselines)."""
    replaces: tuple = (0.0, 0.1, 0.25, 0.5, 1.0)
    """Shares of predictions replaced by a random arrival (second panel of the eta plot)."""
    checkpoint: str | None = None
    """Controller checkpoint for Prop. 6 (default: checkpoints/pagecontroller_k{K}.pt if it exists, else a noisy-Belady
    policy)."""
    prefetch_checkpoint: str | None = None
    """Prefetch controller for Lemma 2 (default: checkpoints/prefetch_blackbox_k{K}.pt if it exists, else
    follow-the-hint alone)."""

    def __post_init__(self):
        limits.check_int("lanes", self.lanes, 1)
        limits.check_int("T", self.T, 2, limits.MAX_REQUESTS)
        limits.check_int("K", self.K, 1, self.T)  # every section needs evictions: a cache of T blocks has none
        limits.check_int("M", self.M, 2, limits.MAX_BLOCKS)
        # the lanes take seeds seed .. seed + lanes - 1, the counterexample search seed + 1
        limits.check_int("seed", self.seed, -2**63, limits.INT64_MAX - self.lanes - 1)
        for name, vals, lo, hi in (("sigma", self.sigmas, 0, 1), ("rho", self.rhos, 0, 1), ("beta", self.betas, 0, 1),
                                   ("replace", self.replaces, 0, 1), ("eta", self.etas, 0, None)):
            for v in vals:
                limits.check_number(name, v, lo, hi)
        if any(k < 1 for k in tuple(self.Ks) + tuple(self.search_Ks)):
            raise ValueError("cache sizes must be >= 1")

    @classmethod
    def quick(cls, **kw) -> "BoundsConfig":
        """Small settings for tests and smoke runs (seconds)."""
        base = dict(lanes=3, T=800, Ks=(2, 4, 8), localities=((1.2, 16), (0.0, 64)), betas=(0.05,), rhos=(0.9, 0.5),
                    sigmas=(0.0, 0.2, 0.5), cyclic_T=(100, 1000), search_Ks=(2, 3), search_iters=300,
                    search_lengths=(16,), exhaustive_len=8, prop6_q=(0.8,), etas=(0.0, 1.0), replaces=(0.0, 0.5))
        base.update(kw)
        return cls(**base)

    def zipf(self, alpha=1.2, W=16, shift=500) -> ZipfParams:
        return ZipfParams(M=self.M, alpha=alpha, W=min(W, self.M), shift=shift, T=self.T)

    def seeds(self, offset=0) -> list[int]:
        return [self.seed + offset + i for i in range(self.lanes)]


def cpu_faults(traces, policy, K, seeds, options=None) -> np.ndarray:
    return simulate(traces, policy, K, backend="cpu", seed=seeds, options=options).faults.numpy()


def entry(id_, statement, bound, measured, slack, holds, counterexample=None, **details):
    return {"id": id_, "statement": statement, "bound": bound, "measured": measured, "slack": slack,
            "holds": bool(holds), "counterexample": counterexample if not holds else None, "details": details}


def tick(progress):
    if progress is not None:
        progress()


def default_checkpoint(K: int) -> str:
    """The shipped black-box controller for cache size K (run from the repository root)."""
    return os.path.join("checkpoints", f"pagecontroller_k{K}.pt")


def checkpoint_path(cfg: BoundsConfig) -> str | None:
    if cfg.checkpoint:
        return cfg.checkpoint
    path = default_checkpoint(cfg.K)
    return path if os.path.isfile(path) else None
