"""Corollary 1: thrashing below the working set, none from K_b = W on."""

from __future__ import annotations

import numpy as np
import torch

from ...core.simulate import simulate
from ...core.traces import zipf_traces
from .config import BoundsConfig, entry, tick


def first_in_phase(traces: torch.Tensor, shift: int, M: int) -> np.ndarray:
    """bool [B, T]: request t is its block's first request in its phase (t // shift)."""
    arr = traces.numpy().astype(np.int64)
    B, T = arr.shape
    keys = (np.arange(T) // shift)[None, :] * M + arr
    out = np.zeros((B, T), dtype=bool)
    for b in range(B):
        _, idx = np.unique(keys[b], return_index=True)
        out[b, idx] = True
    return out


def corollary1(cfg: BoundsConfig, progress=None):
    fractions = (0.25, 0.5, 0.75, 0.875, 1.0, 1.25, 1.5, 2.0)
    rows = []
    for W in (8, 16, 32):
        if W > cfg.M:
            continue
        for alpha in (0.0, 1.2):
            params = cfg.zipf(alpha, W)
            tr = zipf_traces(params, cfg.seeds(), None)
            first = first_in_phase(tr, params.shift, params.M)
            Ks = sorted({max(1, round(f * W)) for f in fractions} | {W - 1, W})
            for K in Ks:
                for pol in ("lru", "belady"):
                    res = simulate(tr, pol, K, seed=cfg.seeds(), return_hits=True)
                    repeat = int(((~res.hits.numpy()) & ~first).sum())
                    rows.append(dict(W=W, alpha=alpha, K=K, K_over_W=K / W, policy=pol,
                                     fault_rate=float(res.fault_rate.mean()),
                                     repeat_faults=repeat, repeat_fault_rate=repeat / (cfg.lanes * cfg.T)))
        tick(progress)
    below = [r for r in rows if r["K"] < r["W"]]
    above = [r for r in rows if r["K"] >= r["W"]]
    # K >= W never thrashes (every alpha); K < W must thrash under uniform access, where all W blocks matter.
    knee_fail = [r for r in rows if (r["K"] >= r["W"] and r["repeat_faults"])
                 or (r["K"] < r["W"] and r["alpha"] == 0 and not r["repeat_faults"])]
    at_knee = [r for r in rows if r["K"] == r["W"] - 1 and r["policy"] == "lru" and r["alpha"] == 0]
    knees = {f"W={W} alpha={a} {pol}": min(r["K"] for r in rows if r["W"] == W and r["alpha"] == a
                                           and r["policy"] == pol and not any(
                                               q["repeat_faults"] for q in rows if q["W"] == W and q["alpha"] == a
                                               and q["policy"] == pol and q["K"] >= r["K"]))
             for W, a, pol in dict.fromkeys((r["W"], r["alpha"], r["policy"]) for r in rows)}
    return entry(
        "corollary1",
        "With K_b < W (the working set) the system thrashes: blocks fault again within their phase; with K_b >= W "
        "only each phase's first requests fault.",
        "repeat faults = 0 iff K_b >= W",
        {"max_repeat_rate_above_knee": max(r["repeat_fault_rate"] for r in above),
         "min_repeat_rate_at_K_W_minus_1_uniform": min(r["repeat_fault_rate"] for r in at_knee),
         "knee_K": knees,
         "max_repeat_rate_below": max(r["repeat_fault_rate"] for r in below)},
        min(r["repeat_fault_rate"] for r in at_knee), not knee_fail,
        counterexample=(knee_fail or [None])[0], rows=rows,
        note="knee_K is the smallest K_b from which no repeat fault occurs. A repeat fault is a fault on a block already requested in the same phase; the knee is sharp for "
             "uniform access (alpha = 0) and soft for Zipf (alpha = 1.2), where the rare ranks rarely thrash.")
