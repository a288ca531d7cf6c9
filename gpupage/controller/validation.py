"""Greedy validation during training: a controller's competitive ratio on a fixed seed set, paired
per seed with the best baseline's.  The baselines run once; each call rolls out the controller."""

from __future__ import annotations

import math

import torch

VAL_SEEDS = tuple(range(20000, 20032))
"""Validation seeds: disjoint from the training seeds (10000 on, PPO's after cloning's, below 20000 for
any run the README shows) and from the held-out evaluation seeds (1000-1039, 42-51)."""
BASELINES = ("lru", "lfu", "fifo", "clock", "arc", "adaptive")


class Validation:
    """``Validation(K, zipf, mode)(model)`` -> {val_cr, val_gap, val_gap_se, val_baseline}.

    val_cr is the greedy controller's faults / Belady's, mean over the seeds; val_gap is the mean of
    its per-seed CR minus the CR of the baseline whose mean CR is lowest on these seeds (computed
    once), with its standard error val_gap_se."""

    def __init__(self, K: int, zipf: dict, mode: str = "blackbox", seeds=VAL_SEEDS, baselines=BASELINES,
                 device="cpu"):
        from ..core.simulate import simulate
        from ..core.traces import ZipfParams, zipf_traces

        self.seeds = [int(s) for s in seeds]
        if len(self.seeds) < 2:
            raise ValueError(f"validation needs at least 2 seeds (for a standard error), got {len(self.seeds)}")
        self.K, self.device = K, device
        self.traces, latent = zipf_traces(ZipfParams(**zipf), seed=self.seeds, return_latent=True)
        self.latent = latent if mode == "whitebox" else None
        self.opt = simulate(self.traces, "belady", K).faults.double()
        crs = {name: simulate(self.traces, name, K, seed=self.seeds[0]).faults.double() / self.opt
               for name in baselines}
        self.baseline = min(crs, key=lambda name: float(crs[name].mean()))
        self.baseline_cr = crs[self.baseline]

    @torch.no_grad()
    def __call__(self, model) -> dict:
        from .evaluate import controller_rollout

        training = model.training
        faults, _ = controller_rollout(model.eval(), self.traces, self.K, self.latent, self.device)
        model.train(training)
        cr = faults.double() / self.opt
        gap = cr - self.baseline_cr
        return {"val_cr": float(cr.mean()), "val_gap": float(gap.mean()),
                "val_gap_se": float(gap.std()) / math.sqrt(len(self.seeds)), "val_baseline": self.baseline}
