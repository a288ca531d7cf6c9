"""LHD's ranking as a table, estimated on a trace: how far a rule that reads a block's count and age gets.

LHD (Beckmann, Chen and Cidon, NSDI 2018) evicts the block of lowest *hit density*: for its class and
age, the hits still to come over the cache space-time still to be spent, both estimated from the ages
at which blocks of that class were hit or evicted.  Here a block's class comes from its access count
(1, 2, 3, 4-7, 8+; optionally split further by the caller) and its age is bucketed by the
specification's ``L`` (``gpupage.zoo.learned.log2fx``: 8 buckets an octave).  Both are functions of
the learned policy's inputs 0 (``L(recency)``) and 3 (``L(count)``).

:func:`estimate` fits the table on a trace from an LFU rollout, then re-estimates it from rollouts of
the table itself (as LHD re-estimates online) and returns it frozen; :func:`rollout` replays a trace
under it (``scripts/mooncake_signal.py --hit-density``), and :func:`teacher_distance` makes it the
listwise loss's target (``slotnet``, ``teacher="hit_density"``); :func:`bagged` averages the tables estimated
at several cache sizes, and :func:`online_rollout` estimates that mean as the trace runs, from shadow caches
(``scripts/table_transfer.py``); :func:`lfu_mru` is a fixed ranking in the same form (``teacher="lfu_mru"``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..core import shards
from ..zoo.learned import N_LEVELS, log2fx

N_AGES = N_LEVELS
"""Age buckets: ``L(age)`` for ages below 2**31."""
COUNT_BOUNDS = (2, 3, 4, 8)
"""A block's count class: 0 for one access, 1, 2, then 3 for 4-7 and 4 for 8 or more."""
L_COUNT_BOUNDS = tuple(log2fx(c) for c in COUNT_BOUNDS)
"""The same bounds on ``L(count)`` (12, 16, 18, 25): ``L`` is monotone, so it keeps the classes."""
N_COUNT = len(COUNT_BOUNDS) + 1


def count_classes(ids: np.ndarray) -> np.ndarray:
    """int64 [T]: the count class each request gives its block (its accesses so far, this one included)."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    start = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    occ = np.empty(len(ids), dtype=np.int64)
    occ[order] = np.arange(len(ids)) - np.repeat(start, np.diff(np.r_[start, len(ids)]))
    return np.searchsorted(COUNT_BOUNDS, occ + 1, side="right").astype(np.int64)


def bucket_ages() -> np.ndarray:
    """float64 [N_AGES]: the middle of the ages each ``L`` bucket holds (0 for the buckets below L(7) that
    hold none)."""
    mid = np.zeros(N_AGES)
    for b in range(24, N_AGES):  # L = 8 e + f holds u = age + 1 in [(8 + f) << (e - 3), (9 + f) << (e - 3))
        e, f = divmod(b, 8)
        mid[b] = ((8 + f) << (e - 3)) - 1 + ((1 << (e - 3)) - 1) / 2
    for a in range(7):  # below, each bucket holds one age
        mid[log2fx(a)] = a
    return mid


def hit_density(hits: np.ndarray, evictions: np.ndarray) -> np.ndarray:
    """float64 [C, N_AGES]: per class and age bucket a, the hits at ages >= a over the space-time their
    ends still cost, an end (hit or eviction) at age x costing ``mid[x] - mid[a] + 1``; 0 where no block
    of the class lived that long."""
    mid = bucket_ages()
    rev = lambda a: np.cumsum(a[:, ::-1], axis=1)[:, ::-1]  # noqa: E731  sums over ages >= a
    ends = hits + evictions
    life = rev(ends * mid) - (mid - 1.0) * rev(ends)
    return np.divide(rev(hits), life, out=np.zeros_like(life), where=life > 0)


@njit(cache=True)
def _serve(ids, times, i0, i1, cls_at, table, use_table, hits, evictions, slot_of, blk, seen, count, last, cls, st):
    """Requests i0..i1-1 of ``ids`` (made at ``times``, with classes ``cls_at``) into the cache ``blk`` (its size
    is K), the state carried in the arrays and in ``st`` = [slots filled, non-compulsory faults so far]."""
    K = blk.shape[0]
    filled, faults = st[0], st[1]
    for i in range(i0, i1):
        x, t = ids[i], times[i]
        if slot_of[x] >= 0:
            hits[cls[x], log2fx(t - last[x])] += 1
        else:
            faults += seen[x]
            if filled < K:
                s = filled
                filled += 1
            else:
                s = 0
                kb = 0.0
                for j in range(K):  # the lowest key; ties to the least recently accessed
                    a = blk[j]
                    ka = table[cls[a], log2fx(t - last[a])] if use_table else float(count[a])  # else LFU
                    if j == 0 or ka < kb or (ka == kb and last[a] < last[blk[s]]):
                        s, kb = j, ka
                v = blk[s]
                evictions[cls[v], log2fx(t - last[v])] += 1
                slot_of[v] = -1
            blk[s] = x
            slot_of[x] = s
        seen[x] = True
        count[x] += 1
        last[x] = t
        cls[x] = cls_at[i]
    st[0], st[1] = filled, faults


def _empty(n: int, K: int) -> tuple:
    """An empty cache of K slots over block ids [0, n): :func:`_serve`'s state arrays."""
    return (np.full(n, -1, np.int64), np.zeros(K, np.int64), np.zeros(n, np.bool_), np.zeros(n, np.int64),
            np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(2, np.int64))


def _classes(ids, cls_at):
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return ids, count_classes(ids) if cls_at is None else np.ascontiguousarray(cls_at, dtype=np.int64)


def rollout(ids: np.ndarray, K: int, table: np.ndarray | None = None, cls_at: np.ndarray | None = None):
    """Demand paging of one trace at size K, evicting the lowest ``table[class, L(age)]`` (None: LFU), ties
    to the least recently accessed.  A block's class is ``cls_at[t]`` of its last access t (default
    :func:`count_classes`).  Returns (non-compulsory faults, hits, evictions), the last two float64
    ``[C, N_AGES]`` counts by the block's class and ``L(age)`` at the event."""
    ids, cls_at = _classes(ids, cls_at)
    C = int(cls_at.max()) + 1 if table is None else table.shape[0]
    hits, evictions = np.zeros((C, N_AGES)), np.zeros((C, N_AGES))
    tab = np.zeros((1, 1)) if table is None else np.ascontiguousarray(table, dtype=np.float64)
    state = _empty(int(ids.max()) + 1, int(K))
    _serve(ids, np.arange(len(ids)), 0, len(ids), cls_at, tab, table is not None, hits, evictions, *state)
    return int(state[-1][1]), hits, evictions


def online_rollout(ids: np.ndarray, K: int, sizes: int = 5, period: int = 8192, decay: float = 0.9,
                   sample_rate: float = 1.0) -> int:
    """Non-compulsory faults of LHD's ranking estimated as the trace runs, from the past only: shadow LFU
    caches of sizes K, 2K, ..., 2**(sizes-1) K serve the same requests, and after every ``period`` requests
    the table becomes the :func:`mean_table` of their densities (their hits and evictions so far, decayed by
    ``decay`` a period); LFU order until the first table.  :func:`bagged` in hindsight, made online.  With
    ``sample_rate`` below 1 the shadows are miniature simulations: they see only the blocks a SHARDS sample
    keeps (:func:`gpupage.core.shards.sample_mask`) with the slots :func:`~gpupage.core.shards.scaled_k` gives;
    ages stay in the whole trace's time."""
    if sizes < 1 or period < 1 or not 0 <= decay <= 1:
        raise ValueError(f"need sizes >= 1, period >= 1 and decay in [0, 1], got {sizes}, {period}, {decay}")
    ids, cls_at = _classes(ids, None)
    n, shape, times = int(ids.max()) + 1, (N_COUNT, N_AGES), np.arange(len(ids))
    keep = shards.sample_mask(ids, sample_rate)
    s_ids, s_times, s_cls = ids[keep], times[keep], cls_at[keep]
    real = _empty(n, int(K))
    shadows = [_empty(n, shards.scaled_k(int(K) << j, sample_rate)) for j in range(sizes)]
    events = [(np.zeros(shape), np.zeros(shape)) for _ in range(sizes)]  # each shadow's decayed hits, evictions
    table = np.zeros(shape)
    for t0 in range(0, len(ids), period):
        t1 = min(t0 + period, len(ids))
        _serve(ids, times, t0, t1, cls_at, table, t0 > 0, np.zeros(shape), np.zeros(shape), *real)  # own events unused
        i0, i1 = np.searchsorted(s_times, [t0, t1])
        for j, state in enumerate(shadows):
            hits, evictions = np.zeros(shape), np.zeros(shape)
            _serve(s_ids, s_times, i0, i1, s_cls, table, False, hits, evictions, *state)
            events[j] = (decay * events[j][0] + hits, decay * events[j][1] + evictions)
        table = mean_table(hit_density(h, e) for h, e in events)
    return int(real[-1][1])


def estimate(ids: np.ndarray, K: int, rounds: int = 4, cls_at: np.ndarray | None = None) -> np.ndarray:
    """float64 [C, N_AGES]: the hit-density table of ``ids`` at size K, from an LFU rollout and then
    ``rounds - 1`` rollouts of the table itself."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    _, hits, evictions = rollout(ids, K, None, cls_at)
    for _ in range(rounds - 1):
        _, hits, evictions = rollout(ids, K, hit_density(hits, evictions), cls_at)
    return hit_density(hits, evictions)


def scaled(table: np.ndarray) -> np.ndarray:
    """``table`` divided by its largest density (a table of zeros stays zeros)."""
    return table / max(float(table.max()), np.finfo(float).tiny)


def mean_table(tables) -> np.ndarray:
    """float64 [C, N_AGES]: the mean of the :func:`scaled` ``tables``."""
    return np.mean([scaled(t) for t in tables], axis=0)


def bagged(ids: np.ndarray, K: int, sizes: int, cls_at: np.ndarray | None = None) -> np.ndarray:
    """float64 [C, N_AGES]: :func:`mean_table` of the tables :func:`estimate` gives at sizes K, 2K, ...,
    2**(sizes-1) K.  One table's ranking swings by several percent of faults with the size it was estimated at
    (README, "Trained on Mooncake"); the mean is steadier.  ``sizes`` 1 is :func:`estimate`'s table at K, scaled,
    which ranks as that table does."""
    if sizes < 1:
        raise ValueError(f"sizes must be >= 1, got {sizes}")
    return mean_table(estimate(ids, K << j, cls_at=cls_at) for j in range(sizes))


def lfu_mru(classes: int = N_COUNT, dead_age: int = 0) -> np.ndarray:
    """float64 [classes, N_AGES]: not a density but a ranking in a table's form, for :func:`teacher_distance` and
    :func:`rollout`: the lowest count class first and, within a class, the youngest ``L(age)`` (LFU with the most
    recently used first among equals, to the inputs' resolution; ties within a bucket still go to the least
    recently accessed).  On the Mooncake calls a block seen once is usually the new tail of a conversation whose
    next turn, if it comes, is thousands of requests away (README, "Trained on Mooncake").

    With ``dead_age`` > 0, a block of any class whose ``L(age)`` is at least ``L(dead_age)`` ranks before all
    others (a conversation idle that long has likely ended; ties among them go to the least recently accessed)."""
    if dead_age < 0:
        raise ValueError(f"dead_age must be >= 0, got {dead_age}")
    table = (np.arange(classes)[:, None] * N_AGES + np.arange(N_AGES)[None, :] + 1).astype(np.float64)
    if 0 < dead_age < 2**31:  # every age is below 2**31
        table[:, log2fx(dead_age):] = 0.5
    return table


CLASS_OF_L = np.searchsorted(L_COUNT_BOUNDS, np.arange(256), side="right").astype(np.int64)
"""int64 [256]: the count class of each ``L(count)`` (feature 3)."""


def ranks(table: np.ndarray) -> np.ndarray:
    """int64 [C, N_AGES]: the teacher's "farthest" score per class and ``L(age)``: larger for lower density,
    equal for equal (the density to 2**-30 of the table's largest)."""
    return (1 << 40) - np.round(scaled(table) * (1 << 30)).astype(np.int64)


def teacher_distance(feats: np.ndarray, table: np.ndarray) -> np.ndarray:
    """int64 [N, S]: :func:`ranks` of each recorded slot (features uint8 ``[N, S, N_IN]``), the listwise loss's
    "farthest"."""
    return ranks(table)[CLASS_OF_L[feats[..., 3]], feats[..., 0]]
