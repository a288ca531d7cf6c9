"""Proposition 6: the learned controller's bound F <= F_opt + (1 - p) D_f T, checked per lane on
integers (:func:`gpupage.controller.evaluate.prop6`); without a checkpoint, on a noisy-Belady policy."""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from ...core import rng
from ...core.cpu import NEVER, evict, place
from ...core.traces import zipf_traces
from .config import BoundsConfig, checkpoint_path, default_checkpoint, entry, tick


@njit(cache=True)
def _noisy_belady(trace, nxt, K, thr, skey, M, victims):
    """Evict Belady's victim when draw(2t) < thr, else a uniform slot (draw(2t+1)); returns the faults
    and writes each eviction's victim into ``victims`` (-1 elsewhere)."""
    slot_of = np.full(M, -1, dtype=np.int64)
    blk = np.empty(K, dtype=np.int64)
    nu = np.empty(K, dtype=np.int64)
    n = 0
    faults = 0
    for t in range(trace.shape[0]):
        x = trace[t]
        victims[t] = -1
        s = slot_of[x]
        if s >= 0:
            nu[s] = nxt[t]
            continue
        faults += 1
        if n < K:
            s = n
            n += 1
        else:
            if rng.draw(skey, 2 * t) < thr:
                s = 0
                for i in range(1, K):
                    if nu[i] > nu[s]:
                        s = i
            else:
                s = rng.uniform_below(rng.draw(skey, 2 * t + 1), K)
            victims[t] = evict(slot_of, blk, s)
        place(slot_of, blk, s, x)
        nu[s] = nxt[t]
    return faults


def _next_uses(trace: np.ndarray) -> np.ndarray:
    nxt = np.full(trace.shape[0], NEVER, dtype=np.int64)
    seen = {}
    for t in range(trace.shape[0] - 1, -1, -1):
        nxt[t] = seen.get(int(trace[t]), NEVER)
        seen[int(trace[t])] = t
    return nxt


def noisy_belady(traces: torch.Tensor, K: int, q: float, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(faults [B], victims [B, T]) of the policy that follows Belady with probability q, else evicts a
    uniform resident block (draws from each lane's ``STREAM_RANDOM_POLICY``)."""
    arr = traces.numpy().astype(np.int64)
    keys = rng.lane_keys(seeds, arr.shape[0])
    victims = np.empty(arr.shape, dtype=np.int64)
    faults = np.array([_noisy_belady(arr[b], _next_uses(arr[b]), K, rng.probability_threshold(q),
                                     rng.stream_key(int(keys[b]), rng.STREAM_RANDOM_POLICY), int(arr.max()) + 1,
                                     victims[b]) for b in range(arr.shape[0])])
    return faults, victims


STATEMENT6 = ("If the controller picks an optimal victim with accuracy p and each wrong eviction costs at most D_f "
              "faults, E[F] <= F_opt + (1 - p) D_f T.")
BOUND6 = ("F_opt + (1 - p) D_f T with D_f = 1, T = number of evictions, p = share of evictions whose victim had the "
          "farthest next use at the visited state (never used again included)")
NOTE6 = ("checked per lane on integers by gpupage.controller.evaluate.prop6 (stronger than the expectation): "
         "a non-Belady eviction raises the optimal cost-to-go by at most one, so D_f = 1 is exact.")


def _prop6_entry(runs: dict, policy: str):
    """runs: label -> evaluate.prop6 output; one entry over all of them."""
    rows = [dict(q=label, lane=i, p=out["p"][i], T_evictions=out["T"][i], F=out["F_learned"][i],
                 F_opt=out["F_opt"][i], bound=out["bound"][i], holds=out["F_learned"][i] <= out["bound"][i])
            for label, out in runs.items() for i in range(len(out["p"]))]
    summary = [dict(q=label, p=out["p_mean"], F=out["F_learned_total"] / len(out["p"]),
                    bound=out["bound_total"] / len(out["p"])) for label, out in runs.items()]
    fails = [r for r in rows if not r["holds"]]
    slack = min((r["bound"] - r["F"]) / r["bound"] for r in rows)
    return entry("prop6", STATEMENT6, BOUND6, {"summary": summary}, slack, not fails,
                 counterexample=(fails or [None])[0], rows=rows, policy=policy, note=NOTE6)


def prop6(cfg: BoundsConfig, progress=None):
    from ...controller.evaluate import prop6 as check

    try:
        learned = _learned_prop6(cfg, check)
    except (ImportError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        if cfg.checkpoint:
            raise
        learned, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = f"no controller checkpoint ({default_checkpoint(cfg.K)})"
    tick(progress)
    if learned is not None:
        return learned
    tr = zipf_traces(cfg.zipf(), cfg.seeds(), None)
    runs = {}
    for q in cfg.prop6_q:
        faults, victims = noisy_belady(tr, cfg.K, q, cfg.seeds())
        runs[q] = check(tr, cfg.K, torch.from_numpy(victims))
        if runs[q]["F_learned"] != faults.tolist():
            raise RuntimeError("Prop. 6 replay disagrees with the noisy-Belady rollout")
    return _prop6_entry(runs, "noisy Belady (follows Belady with probability q, else evicts a uniform resident "
                              f"block); the learned controller was not evaluated ({why})")


def _learned_prop6(cfg: BoundsConfig, check):
    """The controller's Prop. 6 entry on its own rollouts, or None without a checkpoint."""
    path = checkpoint_path(cfg)
    if path is None:
        return None
    from ...controller.evaluate import controller_rollout
    from ...controller.network import load_controller

    model, meta = load_controller(path)
    K = int(meta.get("K", cfg.K))
    tr, latent = zipf_traces(cfg.zipf(), cfg.seeds(), None, return_latent=True)
    _, victims = controller_rollout(model, tr, K, latent)
    return _prop6_entry({"controller": check(tr, K, victims)},
                        f"learned controller {path} (K_b = {K}), evaluated by gpupage.controller.evaluate.prop6")
