"""The prefetching table (issue 13): every rule on one batch of traces, against OPT and Belady.

Behind ``gpupage prefetch`` and ``scripts/eval_prefetch.py``.  One row per (rule, eviction, eps or window):
per-lane means of cost, faults, prefetches and evictions, the cost's standard error over lanes, the mean
per-lane ratio cost / OPT, and loads (faults + prefetches) over Belady's faults, as ratios of sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.prefetch import check_costs, check_hint_options, make_hints, opt_cost, simulate_prefetch
from ..core.simulate import first_touches, simulate
from ..core.traces import ZipfParams, cyclic_traces, zipf_traces

FAMILIES = ("zipf", "cyclic", "closed-loop")


@dataclass(frozen=True)
class PrefetchSpec:
    K: int = 8
    L: int = 4
    """Hint lookahead: h_t names r_{t+L}."""
    eps: tuple = (0.0,)
    """Hint noise levels, one follow_hint row per eviction each."""
    evictions: tuple = ("lru", "adaptive")
    windows: tuple = (0, 4, 16)
    """Lookahead oracle windows."""
    P: int = 1
    lam_fetch: float = 0.3
    lam_evict: float = 0.0

    def __post_init__(self):
        check_costs(self.lam_fetch, self.lam_evict, self.P)
        for e in self.eps:
            check_hint_options(self.L, e)
        if isinstance(self.K, bool) or not isinstance(self.K, int) or self.K < 1:
            raise ValueError(f"K must be an integer >= 1, got {self.K}")
        if any(w < 0 for w in self.windows):
            raise ValueError(f"oracle windows must be >= 0, got {list(self.windows)}")


def family_traces(family: str, params: ZipfParams, seeds: list[int], K: int):
    """(traces, latent or None, hint universe) of a family whose future is fixed in advance."""
    if family == "closed-loop":
        raise ValueError("hints need a trace fixed in advance: a closed-loop family's requests depend on the policy")
    if family == "cyclic":
        return cyclic_traces(K, params.T, len(seeds)), None, min(K + 1, params.T)
    if family != "zipf":
        raise ValueError(f"unknown trace family {family!r}; choose from {', '.join(FAMILIES)}")
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    return traces, latent, params.M


def run_prefetch(spec: PrefetchSpec, seeds: list[int], trace_file: str | None = None, fmt: str = "auto",
                 column: str | int = 0, family: str = "zipf", params: ZipfParams = ZipfParams()) -> list[dict]:
    """The table on a trace file (one lane per seed: the file with that seed's hints; over the file's
    distinct blocks; ``next_in_call`` rows where the file has calls) or on a family's lanes."""
    if not seeds:
        raise ValueError("no seeds given")
    if trace_file is None:
        traces, latent, n_ids = family_traces(family, params, list(seeds), spec.K)
        return prefetch_table(spec, traces, list(seeds), n_ids, latent)
    from ..core.io import read_trace

    ft = read_trace(trace_file, fmt, column)
    if ft.requests == 0:
        raise ValueError(f"{trace_file}: the trace holds no requests")
    traces = torch.from_numpy(ft.ids).expand(len(seeds), -1)
    pos = ft.meta.get("pos_in_call")
    return prefetch_table(spec, traces, list(seeds), ft.distinct, pos_in_call=None if pos is None else pos[None])


def prefetch_table(spec: PrefetchSpec, traces, seeds: list[int], n_ids: int, latent=None,
                   pos_in_call=None) -> list[dict]:
    """The rows for ``traces`` [B, T] (lane b's hints drawn with seed ``seeds[b]`` over [0, n_ids))."""
    traces = torch.as_tensor(traces)
    B = traces.shape[0]
    weights = dict(P=spec.P, lam_fetch=spec.lam_fetch, lam_evict=spec.lam_evict)
    belady = simulate(traces, "belady", spec.K).faults
    distinct = first_touches(traces)
    best = opt_cost(belady, spec.K, distinct, spec.lam_fetch, spec.lam_evict)
    rows = []

    def row(label, rule, eviction, knob, res=None):
        if res is None:  # OPT: Belady's loads as just-in-time prefetches
            f, p, e, cost = torch.zeros(B), belady, belady - torch.minimum(torch.tensor(spec.K), distinct), best
        else:
            f, p, e, cost = res.faults, res.prefetches, res.evictions, res.cost
        se = float(cost.std()) / math.sqrt(B) if B > 1 else 0.0
        rows.append({"policy": label, "rule": rule, "eviction": eviction, "knob": knob,
                     "cost": float(cost.mean()), "cost_se": se, "faults": float(f.double().mean()),
                     "prefetches": float(p.double().mean()), "evictions": float(e.double().mean()),
                     "cost_over_opt": float((cost / best.clamp(min=1e-12)).mean()),
                     "loads_over_belady": float((f + p).sum()) / max(int(belady.sum()), 1)})

    for ev in spec.evictions:
        row(f"never ({ev})", "never", ev, "", simulate_prefetch(traces, spec.K, "never", ev, **weights))
    for eps in spec.eps:
        hints = make_hints(traces, spec.L, eps, n_ids, seed=seeds)
        for ev in spec.evictions:
            res = simulate_prefetch(traces, spec.K, "follow_hint", ev, hints=hints, L=spec.L, **weights)
            row(f"follow_hint ({ev})", "follow_hint", ev, f"eps={eps:g}", res)
    if pos_in_call is not None:
        for ev in spec.evictions:
            res = simulate_prefetch(traces, spec.K, "next_in_call", ev, pos_in_call=pos_in_call, **weights)
            row(f"next_in_call ({ev})", "next_in_call", ev, "", res)
    for w in spec.windows:
        res = simulate_prefetch(traces, spec.K, "lookahead", None, L=w, latent=latent, **weights)
        row("lookahead oracle", "lookahead", "", f"L={w}", res)
    row("OPT (offline)", "opt", "", "")
    return rows


def format_table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    head = "| policy | knob | cost | ± s.e. | faults | prefetches | evictions | cost / OPT | loads / Belady |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['knob']} | {r['cost']:.1f} | {r['cost_se']:.1f} | {r['faults']:.1f} | "
                     f"{r['prefetches']:.1f} | {r['evictions']:.1f} | {r['cost_over_opt']:.2f} | "
                     f"{r['loads_over_belady']:.2f} |")
    return "\n".join(lines)
