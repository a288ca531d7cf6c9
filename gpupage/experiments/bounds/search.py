"""The counterexample search of Lemma 1a: the worst single changed request, on a small exact simulator.

A hill climb over traces maximises the fault difference one changed request can
cause; greedy shrinking then drops requests while the difference still beats
K_b + 1, and an exhaustive check over every short trace proves the smallest
counterexample minimal.  LRU, FIFO and LFU only (Random's expectation is not searched).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...core import rng
from ...core.cpu import SHIFT
from ...core.policies import LFU, LRU, POLICIES


@njit(cache=True)
def _small_faults(trace, K, code, M, blk, key, count):
    """Deterministic LRU/FIFO/LFU faults of one short trace (the search's inner loop)."""
    # a scan, not a block -> slot map (nor core.cpu's evict/place): the search's caches have a few slots,
    # and a map would have to be reset for each of its millions of calls
    for i in range(M):
        count[i] = 0
    n = 0
    f = 0
    for t in range(trace.shape[0]):
        x = trace[t]
        count[x] += 1
        s = -1
        for i in range(n):
            if blk[i] == x:
                s = i
                break
        if s >= 0:
            if code == LRU:
                key[s] = t
            elif code == LFU:
                key[s] = count[x] * SHIFT + t
            continue
        f += 1
        if n < K:
            s = n
            n += 1
        else:
            s = 0
            for i in range(1, K):
                if key[i] < key[s]:
                    s = i
        blk[s] = x
        key[s] = count[x] * SHIFT + t if code == LFU else t
    return f


@njit(cache=True)
def _best_change(trace, K, code, M, blk, key, count):
    """max over single-request changes of |F(r') - F(r)|: (delta, position, new value)."""
    base = _small_faults(trace, K, code, M, blk, key, count)
    best, bp, bv = -1, 0, 0
    for p in range(trace.shape[0]):
        orig = trace[p]
        for v in range(M):
            if v == orig:
                continue
            trace[p] = v
            d = abs(_small_faults(trace, K, code, M, blk, key, count) - base)
            if d > best:
                best, bp, bv = d, p, v
        trace[p] = orig
    return best, bp, bv


@njit(cache=True)
def _hill_climb(K, code, M, L, iters, pkey, vkey, out):
    """Maximise the single-change fault difference over traces of length L on M blocks.

    Random moves come from the counter-based RNG (streams of the search's lane key);
    returns the best delta and leaves its trace in ``out``."""
    blk = np.empty(K, dtype=np.int64)
    key = np.empty(K, dtype=np.int64)
    count = np.empty(M, dtype=np.int64)
    trace = np.empty(L, dtype=np.int64)
    for t in range(L):
        trace[t] = rng.uniform_below(rng.draw(vkey, t), M)
    cur, _, _ = _best_change(trace, K, code, M, blk, key, count)
    best = cur
    out[:] = trace
    for it in range(iters):
        p = rng.uniform_below(rng.draw(pkey, it), L)
        old = trace[p]
        trace[p] = rng.uniform_below(rng.draw(vkey, L + it), M)
        d, _, _ = _best_change(trace, K, code, M, blk, key, count)
        if d >= cur:
            cur = d
            if d > best:
                best = d
                out[:] = trace
        else:
            trace[p] = old
    return best


def fault_delta(trace, K: int, policy: str, M: int):
    """(|dF|, position, value, F) of the worst single change of ``trace`` (deterministic policies)."""
    code = POLICIES[policy].code
    tr = np.asarray(trace, dtype=np.int64).copy()
    blk, key, count = np.empty(K, np.int64), np.empty(K, np.int64), np.empty(M, np.int64)
    d, p, v = _best_change(tr, K, code, M, blk, key, count)
    return int(d), int(p), int(v), int(_small_faults(tr, K, code, M, blk, key, count))


def shrink(trace, K, policy, M):
    """Greedily drop requests while the worst single change still beats K + 1."""
    tr = list(trace)
    changed = True
    while changed:
        changed = False
        for j in range(len(tr)):
            cand = tr[:j] + tr[j + 1:]
            if cand and fault_delta(cand, K, policy, M)[0] > K + 1:
                tr = cand
                changed = True
                break
    return tr


@njit(cache=True)
def _exhaustive(K, code, M, L, out):
    """First trace (in base-M counting order) of length L over M blocks with a single change costing more
    than K + 1 faults, written to ``out``; returns its |dF| or -1 when none exists."""
    blk = np.empty(K, dtype=np.int64)
    key = np.empty(K, dtype=np.int64)
    count = np.empty(M, dtype=np.int64)
    trace = np.zeros(L, dtype=np.int64)
    for idx in range(M ** L):
        v = idx
        for t in range(L):
            trace[t] = v % M
            v //= M
        if trace[0] != 0:  # relabelling blocks changes no fault count: fix the first one
            continue
        d, _, _ = _best_change(trace, K, code, M, blk, key, count)
        if d > K + 1:
            out[:] = trace
            return d
    return -1


def smallest_counterexample(policy: str, K: int, M: int, max_len: int):
    """Exhaustive: the shortest trace over M blocks where one changed request breaks Lemma 1a, or None
    if there is none up to ``max_len`` requests."""
    code = POLICIES[policy].code
    for L in range(1, max_len + 1):
        out = np.empty(L, dtype=np.int64)
        if _exhaustive(K, code, M, L, out) > 0:
            return counterexample_pair(out.tolist(), K, policy, M)
    return None


def search_counterexample(policy: str, K: int, M: int, L: int, iters: int, seed: int = 0, restarts: int = 2):
    """Best single-change fault difference found for ``policy`` at (K, M, L): dict with the pair."""
    code = POLICIES[policy].code
    best, best_tr = -1, None
    for r in range(restarts):
        lk = int(rng.lane_keys([seed * 1000 + r], 1)[0])
        out = np.empty(L, dtype=np.int64)
        d = _hill_climb(K, code, M, L, iters, rng.stream_key(lk, rng.STREAM_PERTURB_POS),
                        rng.stream_key(lk, rng.STREAM_PERTURB_VALUE), out)
        if d > best:
            best, best_tr = d, out.copy()
    return counterexample_pair(best_tr.tolist(), K, policy, M)


def counterexample_pair(trace, K, policy, M):
    d, p, v, f = fault_delta(trace, K, policy, M)
    other = list(trace)
    other[p] = v
    return {"policy": policy, "K": K, "M": M, "T": len(trace), "d": 1, "delta_F": d, "bound": K + 1,
            "r": list(map(int, trace)), "r_prime": list(map(int, other)),
            "F_r": f, "F_r_prime": fault_delta(other, K, policy, M)[3], "position": p}
