"""``adaptive`` eviction under prefetching (issue 13): the loop of :mod:`gpupage.core.prefetch` with the
change-detecting LFU of :mod:`gpupage.zoo.heuristics` choosing the victims.

A prefetch is not an access (the contract): it leaves the novelty clock, both counters and the CUSUM
untouched, so a block prefetched but not yet requested scores as a block idle since its last request.
The victim of a prefetch before request t is the one ``adaptive`` would pick at a fault at t with the
state after request t - 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..core import limits
from ..core.cpu import evict, lane_chunks, max_k, place, release
from .heuristics import FAR_PAST, PROTECT, resolve_params


@njit(inline="always", cache=True)
def _victim(t, k, blk, last, cnt, stamp, cur, gen0, gen1, S, stale, suspect):
    s = 0
    best_p = np.int64(0)
    best_l = np.int64(0)
    for i in range(k):
        b = blk[i]
        lb = last[b]
        p = np.int64(0)
        if stamp[cur, b] == gen0 and lb >= t - stale:
            p = cnt[cur, b]
        if S >= suspect and stamp[1 - cur, b] == gen1:
            p += PROTECT
        # (priority, last access) compared in turn: a prefetched block never requested has last FAR_PAST
        if i == 0 or p < best_p or (p == best_p and lb < best_l):
            best_p, best_l, s = p, lb, i
    return s


@njit(cache=True)
def _serve_lane(trace, target, off, k, prm, slot_of, last, cnt, stamp, blk):
    novel_gap, gain, decay, alarm, refractory, stale, suspect = prm
    T = trace.shape[0]
    gen0, gen1, nextgen, cur = 0, 1, 2, 0
    S = 0
    resume = 0
    n = 0
    faults = 0
    prefetches = 0
    evictions = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        y = target[t - off] if t >= off else -1
        if y >= 0 and slot_of[y] < 0:
            prefetches += 1
            if n < k:
                s = n
                n += 1
            else:
                s = _victim(t, k, blk, last, cnt, stamp, cur, gen0, gen1, S, stale, suspect)
                evict(slot_of, blk, s)
                evictions += 1
            place(slot_of, blk, s, y)
        novel = last[x] <= t - novel_gap
        last[x] = t
        for j in range(2):
            g = gen0 if j == cur else gen1
            if stamp[j, x] != g:
                stamp[j, x] = g
                cnt[j, x] = 0
            cnt[j, x] += 1
        if t >= resume:
            S += gain if novel else -decay
            if S <= 0:
                S = 0
                gen1 = nextgen
                nextgen += 1
            elif S >= alarm:
                cur = 1 - cur
                gen0 = gen1
                gen1 = nextgen
                nextgen += 1
                S = 0
                resume = t + refractory
        if slot_of[x] >= 0:
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            s = _victim(t, k, blk, last, cnt, stamp, cur, gen0, gen1, S, stale, suspect)
            evict(slot_of, blk, s)
            evictions += 1
        place(slot_of, blk, s, x)
    release(slot_of, blk, n)
    for t in range(T):
        x = trace[t]
        if x >= 0:
            last[x] = FAR_PAST
            stamp[0, x] = -1
            stamp[1, x] = -1
    return faults, prefetches, evictions


@njit(parallel=True, cache=True)
def _serve_batch(traces, targets, off, K, prm, n_ids, out, nchunks):
    B, T = traces.shape
    kmax = max_k(K)
    for c in prange(nchunks):
        slot_of = np.full(n_ids, -1, dtype=np.int64)
        last = np.full(n_ids, FAR_PAST, dtype=np.int64)
        cnt = np.zeros((2, n_ids), dtype=np.int64)
        stamp = np.full((2, n_ids), -1, dtype=np.int64)
        blk = np.empty(kmax, dtype=np.int64)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            f, p, e = _serve_lane(traces[b], targets[b], off, min(K[b], kmax), prm, slot_of, last, cnt, stamp, blk)
            out[b, 0] = f
            out[b, 1] = p
            out[b, 2] = e


def serve_cpu(traces: np.ndarray, targets: np.ndarray, off: int, K: np.ndarray, n_ids: int,
              options: dict | None = None):
    """int64 [B, 3] (faults, prefetches, evictions): ``adaptive`` eviction with the prefetch targets
    (``targets[b, t - off]`` before request t >= off)."""
    prm = resolve_params(options)
    out = np.empty((traces.shape[0], 3), dtype=np.int64)
    with limits.work_threads(traces.shape[0]):
        _serve_batch(traces, targets, off, np.ascontiguousarray(K, dtype=np.int64), prm, max(n_ids, 1), out,
                     lane_chunks(traces.shape[0]))
    return out
