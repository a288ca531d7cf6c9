"""Open problem 1: the empirical competitive ratio per trace distribution, next to the worst case K_b."""

from __future__ import annotations

from ...core.traces import cyclic_traces, zipf_traces
from ..closedloop import ClosedLoopParams, closed_loop
from .config import HEURISTICS, BoundsConfig, cpu_faults, entry, tick


def instance_ratio(cfg: BoundsConfig, progress=None):
    dists = {f"zipf a={a} W={W}": zipf_traces(cfg.zipf(a, W), cfg.seeds(), None)
             for a, W in ((2.0, 8), (1.2, 16), (0.6, 32), (0.0, cfg.M))}
    Ks = [k for k in cfg.Ks if k <= 16] or list(cfg.Ks)
    rows = []
    ok = True
    for K in Ks:
        traces = dict(dists)
        traces["cyclic"] = cyclic_traces(K, cfg.T, cfg.lanes)
        for name, tr in traces.items():
            opt = cpu_faults(tr, "belady", K, cfg.seeds())
            for pol in HEURISTICS:
                r = cpu_faults(tr, pol, K, cfg.seeds()) / opt
                rows.append(dict(dist=name, K=K, policy=pol, mean=float(r.mean()), sd=float(r.std()),
                                 max=float(r.max())))
                if pol in ("lru", "fifo"):
                    ok &= bool(r.max() <= K)
        params = ClosedLoopParams(cfg.zipf(), sigma=0.3, degree=cfg.degree)
        for pol in HEURISTICS:
            res = closed_loop(params, pol, K, seed=cfg.seeds())
            r = res.faults.numpy() / cpu_faults(res.traces, "belady", K, cfg.seeds())
            rows.append(dict(dist="closed-loop sigma=0.3", K=K, policy=pol, mean=float(r.mean()),
                             sd=float(r.std()), max=float(r.max())))
            if pol in ("lru", "fifo"):
                ok &= bool(r.max() <= K)
        tick(progress)
    main = [r for r in rows if r["K"] == cfg.K and r["policy"] == "lru"]
    worst = max(rows, key=lambda r: r["max"] / r["K"] if r["policy"] in ("lru", "fifo") else 0)
    return entry(
        "instance_ratio",
        "Open problem 1: the empirical competitive ratio per trace distribution, next to the worst case K_b.",
        "K_b", {"lru_at_K": {r["dist"]: r["mean"] for r in main}}, 1 - worst["max"] / worst["K"], ok,
        counterexample=worst, rows=rows)
