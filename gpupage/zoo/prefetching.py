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
from .heuristics import access, forget, resolve_params, scratch, victim


@njit(cache=True)
def _serve_lane(trace, target, off, k, prm, slot_of, last, cnt, stamp, blk):
    clock = (0, 1, 2, 0, 0, 0)
    n = 0
    faults = 0
    prefetches = 0
    evictions = 0
    for t in range(trace.shape[0]):
        x = trace[t]
        if x < 0:
            continue
        y = target[t - off] if t >= off else -1
        if y >= 0 and slot_of[y] < 0:  # the prefetch, with the state after request t - 1
            prefetches += 1
            if n < k:
                s = n
                n += 1
            else:
                s = victim(t, k, prm, blk, last, cnt, stamp, clock)
                evict(slot_of, blk, s)
                evictions += 1
            place(slot_of, blk, s, y)
        clock = access(t, x, prm, last, cnt, stamp, clock)
        if slot_of[x] >= 0:
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            s = victim(t, k, prm, blk, last, cnt, stamp, clock)
            evict(slot_of, blk, s)
            evictions += 1
        place(slot_of, blk, s, x)
    release(slot_of, blk, n)
    forget(trace, last, stamp)
    return faults, prefetches, evictions


@njit(parallel=True, cache=True)
def _serve_batch(traces, targets, off, K, prm, n_ids, out, nchunks):
    B, T = traces.shape
    kmax = max_k(K)
    for c in prange(nchunks):
        slot_of, last, cnt, stamp, blk = scratch(n_ids, kmax)
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
