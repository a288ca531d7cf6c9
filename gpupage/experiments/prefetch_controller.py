"""The PPO prefetch controller against every heuristic, the lookahead oracle and OPT (issue 13, part 2).

Behind ``gpupage evaluate --checkpoint <prefetch checkpoint>`` and the ``lemma2`` entry of ``gpupage bounds``.
Lanes are the App. B Zipf family, one per seed, each with its own seed's hints, so every policy is paired per
lane with every other.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..controller.prefetch_train import load_prefetch_controller, run_controller
from ..core.prefetch import check_costs, check_hint_options, make_hints, opt, simulate_prefetch
from ..core.simulate import simulate
from ..core.traces import ZipfParams, zipf_traces

EVICTIONS = ("lru", "lfu", "fifo", "adaptive")
BEST_HEURISTIC = "follow_hint_adaptive"


def settings(ck: dict, **overrides) -> dict:
    """The checkpoint's evaluation settings (K, L, eps, lam_fetch, lam_evict), each overridden unless None."""
    s = {k: ck["settings"][k] for k in ("K", "L", "eps", "lam_fetch", "lam_evict")}
    s.update({k: v for k, v in overrides.items() if v is not None})
    check_costs(s["lam_fetch"], s["lam_evict"], 1)
    check_hint_options(s["L"], s["eps"])
    if isinstance(s["K"], bool) or not isinstance(s["K"], int) or s["K"] < 1:
        raise ValueError(f"K must be an integer >= 1, got {s['K']}")
    return s


def _stats(x) -> dict:
    a = np.asarray(x, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def lane_costs(model, ck: dict, seeds: list[int], s: dict, params: ZipfParams = ZipfParams(),
               heuristics: bool = True) -> dict:
    """Per-lane float64 cost and int faults / prefetches of each policy, as numpy arrays: {policy: {...}}."""
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    hints = make_hints(traces, s["L"], s["eps"], params.M, seed=seeds)
    w = dict(lam_fetch=s["lam_fetch"], lam_evict=s["lam_evict"])
    out = {}

    def put(name, f, p, e):
        out[name] = {"faults": f.numpy(), "prefetches": p.numpy(),
                     "cost": (f.double() + w["lam_fetch"] * p.double() + w["lam_evict"] * e.double()).numpy()}

    seen = hints if ck["config"].get("hints", True) else torch.full_like(hints, -1)  # a no-hints controller
    c = run_controller(model, traces, seen, s["L"], s["K"], mode=ck["net"]["mode"], latent=latent,
                       victims=ck["settings"]["eviction"], **w)
    put("controller", c["faults"], c["prefetches"], c["evictions"])
    if heuristics:
        for ev in EVICTIONS:
            for rule in ("never", "follow_hint"):
                r = simulate_prefetch(traces, s["K"], rule, ev, hints=hints, L=s["L"], **w)
                put(f"{rule}_{ev}", r.faults, r.prefetches, r.evictions)
        r = simulate_prefetch(traces, s["K"], "lookahead", None, L=s["L"], latent=latent, **w)
        put("lookahead_oracle", r.faults, r.prefetches, r.evictions)
        belady = simulate(traces, "belady", s["K"]).faults  # OPT loads Belady's blocks just in time
        out["opt"] = {"cost": opt(traces, s["K"], **w).numpy(), "faults": np.zeros(len(seeds)),
                      "prefetches": belady.numpy()}
    return out


def evaluate_prefetch(path, seeds: list[int], params: ZipfParams = ZipfParams(), **overrides) -> dict:
    """The JSON of ``gpupage evaluate`` for a prefetch checkpoint, keyed by policy (``controller``, ``never_*``,
    ``follow_hint_*``, ``lookahead_oracle``, ``opt``): cost / faults / prefetches {mean, sd} over seeds; beside
    them the run's ``checkpoint``, ``settings``, ``seeds``, ``lanes``, and ``paired``: the controller paired per
    seed against the best heuristic, the oracle and OPT (:func:`policy_rows` picks out the policies)."""
    if not seeds:
        raise ValueError("no seeds given")
    model, ck = load_prefetch_controller(path)
    s = settings(ck, **overrides)
    lanes = lane_costs(model, ck, list(seeds), s, params)
    res = {name: {k: _stats(v[k]) for k in ("cost", "faults", "prefetches")} for name, v in lanes.items()}
    res.update({"checkpoint": str(path), "settings": s, "seeds": [min(seeds), max(seeds)], "lanes": len(seeds)})
    ctl = lanes["controller"]["cost"]
    heur = {n: v["cost"].mean() for n, v in lanes.items() if n.startswith(("never_", "follow_hint_"))}
    best = min(heur, key=heur.get)
    diff = ctl - lanes[best]["cost"]
    res["paired"] = {"best_heuristic": best, "controller_minus_best": _stats(diff) | {
        "se": float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0},
        "wins": int((diff < 0).sum()),
        "controller_over_best": float(ctl.sum() / lanes[best]["cost"].sum()),
        "controller_over_opt": float((ctl / lanes["opt"]["cost"]).mean()),
        "controller_over_oracle": float(ctl.sum() / lanes["lookahead_oracle"]["cost"].sum())}
    return res


RUN_KEYS = ("checkpoint", "settings", "seeds", "lanes", "paired")


def policy_rows(res: dict) -> dict:
    """The per-policy entries of :func:`evaluate_prefetch`'s result."""
    return {k: v for k, v in res.items() if k not in RUN_KEYS}


def lemma2_gaps(model, ck: dict, seeds: list[int], eps_list=(0.0, 0.05, 0.1, 0.2, 0.4), params=ZipfParams(),
                K=None, L=None) -> list[dict]:
    """Per eps: the fault-rate gap of follow_hint (adaptive and LRU eviction) and of the controller to the
    same policy at eps = 0, with the per-lane worst gap, against Lemma 2's bound eps."""
    s0 = settings(ck, K=K, L=L, eps=0.0)
    T = params.T
    rates = {}
    for eps in eps_list:
        s = dict(s0, eps=eps)
        traces = zipf_traces(params, seeds)
        hints = make_hints(traces, s["L"], eps, params.M, seed=seeds)
        w = dict(lam_fetch=s["lam_fetch"], lam_evict=s["lam_evict"])
        r = {ev: simulate_prefetch(traces, s["K"], "follow_hint", ev, hints=hints, L=s["L"], **w).faults.numpy()
             for ev in ("adaptive", "lru")}
        if model is not None:
            lanes = lane_costs(model, ck, seeds, s, params, heuristics=False)
            r["controller"] = lanes["controller"]["faults"]
        rates[eps] = {k: v / T for k, v in r.items()}
    rows = []
    for eps in eps_list:
        for name, f in rates[eps].items():
            gap = f - rates[0.0][name]
            rows.append({"eps": eps, "policy": name, "mean_gap": float(gap.mean()), "max_gap": float(gap.max()),
                         "se": float(gap.std(ddof=1) / math.sqrt(len(gap))) if len(gap) > 1 else 0.0,
                         "bound": eps, "holds": bool(gap.mean() <= eps)})
    return rows


def default_checkpoint(K: int = 8) -> str:
    return f"checkpoints/prefetch_blackbox_k{K}.pt"
