"""Plain-Python reference of prefetching (issue 13), for the tests: hints and the serving loop.

Written from the contract in :mod:`gpupage.core.policies` ("Prefetching") with lists and dicts, sharing
no code with :mod:`gpupage.core.prefetch` or :mod:`gpupage.zoo.prefetching` except the RNG and
``adaptive``'s plain-Python state (:class:`gpupage.zoo.heuristics.NaiveAdaptive`, the reference of
:func:`~gpupage.zoo.heuristics.naive_adaptive`).  The oracle finds next uses by scanning its window, not
from next-use arrays.
"""

from __future__ import annotations

from ..core import rng
from .heuristics import NaiveAdaptive


def naive_hints(trace: list[int], L: int, eps: float, n_ids: int, key: int) -> list[int]:
    """One lane's hints; ``key`` is the lane's key (``rng.lane_keys``)."""
    nkey = rng.stream_key(key, rng.STREAM_HINT)
    vkey = rng.stream_key(key, rng.STREAM_HINT_VALUE)
    thr = rng.probability_threshold(eps) if eps < 1 else 1 << 32
    out = []
    for t in range(len(trace)):
        if t + L >= len(trace) or trace[t + L] < 0:
            out.append(-1)
        elif rng.draw(nkey, t) < thr:
            out.append(rng.uniform_below(rng.draw(vkey, t), n_ids))
        else:
            out.append(trace[t + L])
    return out


def naive_prefetch(trace: list[int], K: int, rule: str, eviction: str | None = "lru", hints=None, L: int = 0,
                   P: int = 1, pos_in_call=None, working_sets=None, shift: int = 1,
                   lam_fetch: float = 1.0, lam_evict: float = 0.0, options=None):
    """One lane: (faults, prefetches, evictions, cost), cost = faults + lam_fetch*prefetches + lam_evict*evictions."""
    cache: list[int] = []  # block per slot; a cold fill appends (the lowest empty slot)
    inserted: list[int] = []  # FIFO's insertion order: 2t for a prefetch before t, 2t + 1 for a fault at t
    last: dict[int, int] = {}
    count: dict[int, int] = {}
    ada = NaiveAdaptive(options) if eviction == "adaptive" else None
    faults = prefetches = evictions = 0

    def key(s, t):
        b = cache[s]
        if eviction == "lru":
            return last.get(b, -1), 0
        if eviction == "lfu":
            return count.get(b, 0), last.get(b, -1)
        if eviction == "fifo":
            return inserted[s], 0
        if eviction == "adaptive":
            return ada.key(b, t)
        window = trace[t:t + L]  # the oracle
        if b in window:
            return 1 << 60, -window.index(b)
        ws = list(working_sets[t // shift]) if working_sets is not None else []
        return -(ws.index(b) if b in ws else len(ws)), last.get(b, -1)

    def bring(y, t, order):
        nonlocal evictions
        if len(cache) < K:
            cache.append(y)
            inserted.append(order)
            return
        s = min(range(K), key=lambda i: key(i, t))
        cache[s] = y
        inserted[s] = order
        evictions += 1

    for t, x in enumerate(trace):
        if x < 0:
            continue
        y = -1
        if P >= 1:
            if rule == "follow_hint" and t >= L:
                y = hints[t - L]
            elif rule == "next_in_call" and pos_in_call[t] > 0:
                y = x
            elif rule == "lookahead" and L >= 1:
                y = x
        if y >= 0 and y not in cache:
            prefetches += 1
            bring(y, t, 2 * t)
        count[x] = count.get(x, 0) + 1
        if ada is not None:
            ada.access(x, t)
        if x not in cache:
            faults += 1
            bring(x, t, 2 * t + 1)
        last[x] = t
    return faults, prefetches, evictions, faults + lam_fetch * prefetches + lam_evict * evictions
