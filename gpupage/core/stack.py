"""LRU for every cache size in one pass: Mattson et al.'s stack distances (1970).

LRU is a stack algorithm: a request hits a cache of K blocks exactly when its
stack distance (distinct blocks touched since the block's previous request,
plus one) is at most K.  A Fenwick tree over time positions, holding a marker
at each block's latest request, gives every distance in O(log T).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .simulate import dense_ids, resolve_warmup
from . import limits


@njit(cache=True)
def _lane_distances(trace, last, tree, hist, warmup):
    T = trace.shape[0]
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        p = last[x]
        if p < 0:
            hist[0] += 1  # compulsory: misses at every K
        else:
            # markers in (p, t) = prefix(t - 1) - prefix(p)
            above = 0
            i = t
            while i > 0:
                above += tree[i]
                i -= i & -i
            i = p + 1
            while i > 0:
                above -= tree[i]
                i -= i & -i
            d = above + 1
            if d < hist.shape[0] and t >= warmup:  # warm-up requests are not counted
                hist[d] += 1
            i = p + 1
            while i <= T:
                tree[i] -= 1
                i += i & -i
        last[x] = t
        i = t + 1
        while i <= T:
            tree[i] += 1
            i += i & -i
    for t in range(T):
        if trace[t] >= 0:
            last[trace[t]] = -1


@njit(parallel=True, cache=True)
def _curves(traces, n_ids, kmax, warmup, out, pos_like):
    B, T = traces.shape
    for b in prange(B):
        # positions and marker counts are < T: pos_like is int32 below 2**31 requests, which
        # halves the O(T) tree (a 50M-request file's LRU curve then stays near its int32 size)
        last = np.full(n_ids, -1, dtype=pos_like.dtype)
        tree = np.zeros(T + 1, dtype=pos_like.dtype)
        hist = np.zeros(kmax + 2, dtype=np.int64)  # hist[d]: hits needing K >= d; hist[0]: cold
        _lane_distances(traces[b], last, tree, hist, warmup)
        total = 0
        for t in range(warmup, T):
            if traces[b, t] >= 0:
                total += 1
        hits = 0
        for K in range(1, kmax + 1):
            hits += hist[K]
            out[b, K - 1] = total - hits


def lru_fault_curve(traces, kmax: int, warmup=0) -> torch.Tensor:
    """LRU faults for every K = 1..kmax: int64 ``[B, kmax]`` (column K-1 is cache size K).

    Equal to ``simulate(traces, "lru", K, warmup=warmup).faults`` for each K (faults counted
    from request ``warmup`` on), in one O(T log T) pass per lane.
    """
    arr, w, n_ids, out = curve_lanes(traces, kmax, warmup)
    with limits.work_threads(arr.shape[0]):
        _curves(arr, n_ids, kmax, w, out, np.empty(0, np.int32 if arr.shape[1] < 2**31 else np.int64))
    return torch.from_numpy(out)


def curve_lanes(traces, kmax: int, warmup):
    """What a one-pass curve up to ``kmax`` works on: (dense lanes ``[B, T]``, the warm-up in
    requests, a bound on the ids, an int64 ``[B, kmax]`` for the faults)."""
    if kmax < 1:
        raise ValueError(f"K must be >= 1, got {kmax}")
    t = torch.as_tensor(traces)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    arr, _ = dense_ids(t.detach().cpu().contiguous().numpy())
    B, T = arr.shape
    n_ids = int(arr.max()) + 1 if arr.size else 1
    # the curves, and each thread's block map, Fenwick tree and histogram
    limits.require(8 * B * kmax + 8 * min(B, limits.cpu_count()) * (n_ids + T + kmax),
                   f"fault curves of {B} lanes up to K = {kmax}")
    return arr, resolve_warmup(warmup, T), max(n_ids, 1), np.empty((B, kmax), dtype=np.int64)
