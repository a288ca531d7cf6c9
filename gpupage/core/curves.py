"""Belady and LFU for every cache size in one pass, beside :mod:`gpupage.core.stack`'s LRU.

Both are stack algorithms (Mattson et al. 1970): each orders all blocks by a priority that
does not depend on the cache size (Belady: next use, never-used-again blocks last; LFU:
accesses over the whole trace so far, ties to the least recently accessed), so a cache of
K blocks always holds the top K of one stack and a request hits exactly when its stack
distance is at most K.  Mattson's update moves every "record" between the top and the
requested block down, O(stack depth) per request; here each policy's stack has a structure
that makes the update cheap in practice.

* **Belady** (:func:`_belady_hist`): a reuse of block x (previous access p, now t) hits
  in a cache of K blocks iff the interval (p, t) is kept, and with forced insertion the
  kept intervals are exactly those chosen by the greedy that takes intervals in order of
  their end and keeps one whenever every point inside it is covered by fewer than K - 1
  kept intervals (the OPTgen view of Belady).  The greedy's state for all K at once is one
  sequence ``e``: capacity K's state is the multiset ``e[0..K-2]`` of the times at which
  its K - 1 "machines" became free, so the reuse's distance is 2 + the first index whose
  time is <= p, and keeping it replaces that time with t - 1 and bubbles the displaced
  times down (a time moves to the next index whose time lies between it and p).  ``e``
  is almost sorted: kept as ascending runs, a bubble through a run is one binary search
  and a shift, and in the real traces there are rarely more than 30 runs.
* **LFU** (:func:`_lfu_hist`): below its top (the last request), the LFU stack is sorted
  by priority except for a few "floating" blocks, forced in by a miss and stranded above
  blocks of higher priority by hits since.  Sorted blocks live in a Fenwick tree over the
  priority of every request (count after the request, request time), so a block's depth
  is its rank; floating ones keep their explicit depth (Mattson's update never moves a
  block that is not a record) until they fit the sorted order again.

Each pass is exact (equal to ``simulate`` at every K, checked in ``tests/test_mrc.py``) and
costs O(T log T) plus the runs (Belady) or floating blocks (LFU) it walks per request.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .stack import curve_lanes, lru_fault_curve

ONE_PASS = ("lru", "lfu", "belady")


def fault_curve(traces, policy: str, kmax: int, warmup=0) -> torch.Tensor:
    """Faults of ``policy`` (lru, lfu or belady) at every K = 1..kmax: int64 ``[B, kmax]``.

    Faults are counted from request ``warmup`` on (an int, or a fraction of the trace in
    (0, 1)), as ``simulate(traces, policy, K, warmup=warmup).faults`` counts them.
    """
    if policy not in ONE_PASS:
        raise ValueError(f"no one-pass curve for {policy!r}; one-pass policies: {', '.join(ONE_PASS)}")
    if policy == "lru":
        return lru_fault_curve(traces, kmax, warmup)
    arr, w, n_ids, out = curve_lanes(traces, kmax, warmup)
    _curves(arr, n_ids, w, kmax, policy == "belady", out)
    return torch.from_numpy(out)


@njit(parallel=True, cache=True)
def _curves(traces, n_ids, warmup, kmax, belady, out):
    B, T = traces.shape
    for b in prange(B):
        lane = np.empty(T, dtype=np.int64)
        n = 0
        start = 0  # requests before the warm-up's end, in the lane without pads
        for t in range(T):
            if traces[b, t] >= 0:
                lane[n] = traces[b, t]
                n += 1
                if t < warmup:
                    start = n
        lane = lane[:n]
        hist = np.zeros(kmax + 2, dtype=np.int64)  # hist[d]: counted hits at stack distance d
        if belady:
            _belady_hist(lane, n_ids, start, hist)
        else:
            _lfu_hist(lane, _lfu_keys(lane, n_ids), n_ids, start, hist)
        hits = 0
        for K in range(1, kmax + 1):
            hits += hist[K]
            out[b, K - 1] = n - start - hits


@njit(inline="always", cache=True)
def _count(hist, d, t, start):
    if t >= start:
        hist[min(d, hist.shape[0] - 1)] += 1


@njit(inline="always", cache=True)
def _last_le(e, lo, hi, v):
    """Largest index i in [lo, hi) with e[i] <= v, or lo - 1 (``e[lo:hi]`` ascending)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if e[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@njit(cache=True)
def _belady_hist(trace, n_ids, start, hist):
    """Belady's stack distances of ``trace`` (dense ids, no pads) into ``hist``, counting t >= start.

    ``e[:L]`` is the greedy's sequence (see the module docstring), split into ascending runs
    beginning at ``run[0] < run[1] < ... < run[nr - 1]`` (``run[nr] = L``)."""
    T = trace.shape[0]
    e = np.empty(T + 1, dtype=np.int64)
    run = np.empty(T + 2, dtype=np.int64)
    nr = 0
    L = 0
    run[0] = 0
    last = np.full(n_ids, -1, dtype=np.int64)
    for t in range(T):
        x = trace[t]
        p = last[x]
        last[x] = t
        if p < 0:
            continue
        if p == t - 1:  # nothing in between: a hit at every K
            _count(hist, 1, t, start)
            continue
        # the first index holding a time <= p is the first element of the first run whose minimum is <= p
        b = 0
        while b < nr and e[run[b]] > p:
            b += 1
        if b == nr:  # no free machine at any capacity so far: one more index, the newest time last
            _count(hist, L + 2, t, start)
            e[L] = t - 1
            L += 1
            nr = max(nr, 1)
            run[nr] = L
            continue
        s = run[b]
        f = run[b + 1]
        _count(hist, s + 2, t, start)
        # run b: t - 1 takes index s, the times in (e[s], p] shift down one, the last of them is carried on
        j = _last_le(e, s, f, p)
        r = e[j]
        for i in range(j, s, -1):
            e[i] = e[i - 1]
        e[s] = t - 1
        if b == 0:  # t - 1 (the newest time) starts a run of its own
            for q in range(nr + 1, 0, -1):
                run[q] = run[q - 1]
            nr += 1
            b = 1
        run[b] = s + 1  # else it ends run b - 1, which it keeps ascending
        if run[b] == run[b + 1]:
            for q in range(b, nr):
                run[q] = run[q + 1]
            nr -= 1
            b -= 1
        # later runs: the carry r replaces the largest time in (r, p], which is carried on
        q = b + 1
        while q < nr and r < p:
            s = run[q]
            f = run[q + 1]
            j = _last_le(e, s, f, p)
            if j >= s and e[j] > r:
                i = _last_le(e, s, j, r) + 1
                c = e[j]
                for k in range(j, i, -1):
                    e[k] = e[k - 1]
                e[i] = r
                r = c
            q += 1
        # the last carry leaves every capacity; join runs that became one ascending run
        q = 1
        while q < nr:
            if e[run[q] - 1] < e[run[q]]:
                for k in range(q, nr):
                    run[k] = run[k + 1]
                nr -= 1
            else:
                q += 1


@njit(cache=True)
def _lfu_keys(trace, n_ids):
    """Per request, the requested block's LFU priority as a rank: 0 = highest.

    Priority is (accesses so far, request time), larger first; distinct for every request."""
    T = trace.shape[0]
    count = np.zeros(n_ids, dtype=np.int64)
    key = np.empty(T, dtype=np.int64)
    for t in range(T):
        count[trace[t]] += 1
        key[t] = -(count[trace[t]] * T + t)
    order = np.argsort(key)
    rank = np.empty(T, dtype=np.int64)
    for i in range(T):
        rank[order[i]] = i
    return rank


@njit(inline="always", cache=True)
def _fw_add(fw, i, v):
    i += 1
    while i < fw.shape[0]:
        fw[i] += v
        i += i & -i


@njit(inline="always", cache=True)
def _fw_below(fw, i):
    """How many keys < i."""
    s = 0
    while i > 0:
        s += fw[i]
        i -= i & -i
    return s


@njit(inline="always", cache=True)
def _fw_kth(fw, k, top):
    """The k-th smallest key (k >= 1); ``top`` is the largest power of two < fw.shape[0]."""
    pos = 0
    step = top
    while step > 0:
        nxt = pos + step
        if nxt < fw.shape[0] and fw[nxt] < k:
            pos = nxt
            k -= fw[nxt]
        step >>= 1
    return pos


@njit(cache=True)
def _lfu_hist(trace, key, n_ids, start, hist):
    """LFU's stack distances of ``trace`` (dense ids, no pads) into ``hist``, counting t >= start.

    Depth 0 is the top (the last request, key ``top``).  Depths 1..n hold the other blocks:
    the sorted ones in a Fenwick tree over keys (the k-th smallest key has the k-th depth not
    held by a floating block), floating ones at ``fdep`` (ascending) with keys ``fkey``."""
    T = trace.shape[0]
    fw = np.zeros(T + 1, dtype=np.int64)
    top_pow = 1
    while top_pow * 2 < fw.shape[0]:
        top_pow *= 2
    last = np.full(n_ids, -1, dtype=np.int64)
    fdep = np.empty(4, dtype=np.int64)  # doubled when full (real traces have up to 8)
    fkey = np.empty(4, dtype=np.int64)
    nf = 0
    n = 0
    top = 0
    top_block = -1
    for t in range(T):
        x = trace[t]
        if t == 0 or x == top_block:
            if t > 0:
                _count(hist, 1, t, start)
            top = key[t]
            top_block = x
            last[x] = t
            continue
        if last[x] < 0:
            d = n + 1
            n += 1
        else:
            kx = key[last[x]]
            fi = -1
            for i in range(nf):
                if fkey[i] == kx:
                    fi = i
            if fi >= 0:
                d = fdep[fi]
                for i in range(fi, nf - 1):
                    fdep[i] = fdep[i + 1]
                    fkey[i] = fkey[i + 1]
                nf -= 1
            else:
                d = _fw_below(fw, kx) + 1
                for i in range(nf):
                    if fdep[i] <= d:
                        d += 1
                _fw_add(fw, kx, -1)
            _count(hist, d + 1, t, start)
        last[x] = t
        # Mattson's update over depths 1..d-1, carry c starting with the old top: a block of
        # lower priority than the carry takes its place.  Between floating blocks the sorted
        # blocks' records are a suffix of their ranks: the carry joins the tree, the last leaves.
        c = top
        done = 0  # sorted blocks above the current stretch
        i = 0
        while True:
            end = fdep[i] if i < nf and fdep[i] < d else d
            hi = end - 1 - i  # sorted blocks above depth `end`
            if hi > done and _fw_below(fw, c) + 1 <= hi:
                _fw_add(fw, c, 1)
                out = _fw_kth(fw, hi + 1, top_pow)
                _fw_add(fw, out, -1)
                c = out
            done = max(done, hi)
            if end == d:
                break
            if fkey[i] > c:
                fkey[i], c = c, fkey[i]
            i += 1
        # the carry takes depth d: sorted if the blocks above it are exactly those of higher priority
        if _fw_below(fw, c) == d - 1 - i:
            _fw_add(fw, c, 1)
        else:
            if nf == fdep.shape[0]:
                fdep = np.concatenate((fdep, np.empty(nf, dtype=np.int64)))
                fkey = np.concatenate((fkey, np.empty(nf, dtype=np.int64)))
            for j in range(nf, i, -1):
                fdep[j] = fdep[j - 1]
                fkey[j] = fkey[j - 1]
            fdep[i] = d
            fkey[i] = c
            nf += 1
        # floating blocks whose neighbours now agree with their priority rejoin the tree
        j = 0
        while j < nf:
            if _fw_below(fw, fkey[j]) == fdep[j] - 1 - j:
                _fw_add(fw, fkey[j], 1)
                for k in range(j, nf - 1):
                    fdep[k] = fdep[k + 1]
                    fkey[k] = fkey[k + 1]
                nf -= 1
                j = 0
            else:
                j += 1
        top = key[t]
        top_block = x
