"""The learning-augmented baselines, and the CPU driver of every policy of ``kernels.baselines``.

* ``blind_oracle`` (follow the prediction): evict the resident block whose
  predicted next arrival (made at its last access) is farthest.
* ``predictive_marker`` (Lykouris & Vassilvitskii, ICML 2018): a marking
  algorithm with the paper's chain rule.  A fault with every resident block
  marked starts a phase (all unmarked; the K resident blocks become the phase's
  stale set).  A clean arrival (not stale) starts a chain of length 1; the
  arrival of a stale block evicted earlier in the phase extends that block's
  chain by one.  While the chain's length is <= H_K the victim is the unmarked
  block with the farthest prediction, beyond it a uniformly random unmarked
  block (the j-th unmarked slot, j from ``STREAM_RANDOM_POLICY`` at position t).
  The new block is marked; a hit marks.

Predictions come from :mod:`gpupage.zoo.predictions`.  ``arc`` (:mod:`gpupage.zoo.arc`)
and ``clock`` (:mod:`gpupage.zoo.clock`) share this module's registry codes and batch
driver, as their Triton twins share ``kernels.baselines``.

Every policy follows the contract of :mod:`gpupage.core.policies`: forced insertion,
cold fill takes the lowest empty slot, a fault takes its victim's slot; ties
between equal predictions go to the least recently accessed block.  The
``naive_*`` functions are slow, literal references the tests compare against.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..core import rng
from ..core.cpu import alloc_outputs, cpu_result, evict, lane_chunks, lane_row, max_k, place, release
from .arc import lane_arc, naive_arc
from .clock import lane_clock, naive_clock
from .predictions import NEVER, check_length, noise_table, predict_lane, prediction_options

BLIND_ORACLE, PREDICTIVE_MARKER, ARC, CLOCK = range(20, 24)
PREDICTION_CODES = (BLIND_ORACLE, PREDICTIVE_MARKER)
SHIFT = 1 << 32


def harmonic_floor(K: np.ndarray) -> np.ndarray:
    """floor(H_K) per lane (H_K = 1 + 1/2 + ... + 1/K): a chain longer than this goes random."""
    K = np.asarray(K, dtype=np.int64)
    h = np.cumsum(1.0 / np.arange(1, max(int(K.max(initial=1)), 1) + 1))
    return np.floor(h[K - 1]).astype(np.int64)


@njit(inline="always", cache=True)
def _farthest(k, blk_pred, last, eligible):
    """Slot with the farthest prediction among eligible slots; ties to least recently accessed."""
    s = -1
    best = np.int64(0)
    for i in range(k):
        if eligible[i]:
            key = (NEVER - np.int64(blk_pred[i])) * SHIFT + last[i]
            if s < 0 or key < best:
                best = key
                s = i
    return s


@njit(cache=True)
def _lane_predictive(trace, pred, k, code, rkey, hk, want, hits_row, victims_row,
                     slot_of, blk, last, prd, marked, stale, elen, eligible):
    T = trace.shape[0]
    n = 0
    nm = 0  # marked resident blocks
    faults = 0
    for i in range(k):
        stale[i] = -1
        eligible[i] = True
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        s = slot_of[x]
        if s >= 0:
            if want:
                hits_row[t] = 1
            if not marked[s]:
                marked[s] = True
                nm += 1
            last[s] = t
            prd[s] = pred[t]
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            if code == BLIND_ORACLE:
                s = _farthest(k, prd, last, eligible)
            else:
                if nm == k:  # new phase: the resident blocks become stale
                    for i in range(k):
                        stale[i] = blk[i]
                        elen[i] = 0
                        marked[i] = False
                    nm = 0
                length = 1
                for i in range(k):
                    if stale[i] == x:
                        length = elen[i] + 1
                if length <= hk:
                    for i in range(k):
                        eligible[i] = not marked[i]
                    s = _farthest(k, prd, last, eligible)
                else:
                    j = rng.uniform_below(rng.draw(rkey, t), k - nm)
                    for i in range(k):
                        if not marked[i]:
                            if j == 0:
                                s = i
                                break
                            j -= 1
                elen[s] = length  # the victim was stale: it carries the chain on
            v = evict(slot_of, blk, s)
            if want:
                victims_row[t] = v
        place(slot_of, blk, s, x)
        last[s] = t
        prd[s] = pred[t]
        if not marked[s]:
            marked[s] = True
            nm += 1
    release(slot_of, blk, n)
    for i in range(n):
        marked[i] = False
    return faults


@njit(parallel=True, cache=True)
def _simulate_batch(traces, table, threshold, K, hk, code, rkeys, n_ids, want, hits, victims, faults, nchunks):
    B, T = K.shape[0], traces.shape[1]
    kmax = max_k(K)
    predictive = code == BLIND_ORACLE or code == PREDICTIVE_MARKER
    for c in prange(nchunks):
        # per-chunk scratch; the marker's stale set and chain lengths borrow ARC's gblk and lst.
        # Predictions are made lane by lane, so they take one row per chunk, not [B, T].
        pred = np.empty(T if predictive else 1, dtype=np.int32)
        seen = np.full(n_ids if predictive else 1, NEVER, dtype=np.int64)
        where = np.full(n_ids, -1, dtype=np.int64)
        blk = np.empty(kmax, dtype=np.int64)
        last = np.empty(kmax, dtype=np.int64)
        prd = np.empty(kmax, dtype=np.int32)
        lst = np.empty(kmax, dtype=np.int64)
        gblk = np.empty(kmax, dtype=np.int64)
        glst = np.empty(kmax, dtype=np.int64)
        links = np.empty((2, 2 * kmax + 4) if code == ARC else (2, 1), dtype=np.int64)  # ARC's list nodes
        free = np.empty(kmax if code == ARC else 1, dtype=np.int64)
        flags = np.zeros(kmax, dtype=np.bool_)
        eligible = np.ones(kmax, dtype=np.bool_)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            row = b if want else 0
            trace = lane_row(traces, b)
            if code == ARC:
                faults[b] = lane_arc(trace, K[b], want, hits[row], victims[row],
                                     where, blk, lst, gblk, glst, links[0], links[1], free)
            elif code == CLOCK:
                faults[b] = lane_clock(trace, K[b], want, hits[row], victims[row], where, blk, flags)
            else:
                predict_lane(trace, rkeys[b], table, threshold, seen, pred)
                rkey = rng.stream_key(rkeys[b], rng.STREAM_RANDOM_POLICY)
                faults[b] = _lane_predictive(trace, pred, K[b], code, rkey, hk[b], want, hits[row], victims[row],
                                             where, blk, last, prd, flags, gblk, lst, eligible)


def simulate_cpu(traces: np.ndarray, policy, K: np.ndarray, rkeys: np.ndarray, n_ids: int,
                 return_hits: bool = False, options: dict | None = None):
    """The :func:`gpupage.core.cpu.simulate_cpu` contract for the baselines of this module.

    ``options`` (prediction policies): ``{"eta": >= 0, "replace": in [0, 1]}``, see
    :mod:`gpupage.zoo.predictions`; ARC and CLOCK accept and ignore it.
    """
    code = policy.code
    B, T = len(K), traces.shape[1]
    # K >= T behaves exactly like K = T (the cache never fills past T blocks): no huge scratch
    K = np.minimum(np.asarray(K, dtype=np.int64), max(T, 1))
    eta, replace = prediction_options(options)
    if code in PREDICTION_CODES:
        check_length(T)
    faults, hits, victims = alloc_outputs(B, T, return_hits)
    _simulate_batch(traces, noise_table(eta), rng.probability_threshold(replace), K, harmonic_floor(K), code,
                    np.asarray(rkeys, dtype=np.int64), max(n_ids, 1), return_hits, hits, victims, faults, lane_chunks(B))
    return cpu_result(faults, hits, victims, return_hits)


# ----------------------------------------------------------------------------------------------
# Plain references: one trace, Python lists, written from the paper's pseudo-code.


def naive_blind_oracle(trace: list[int], K: int, pred: list[int]):
    """(faults, hits, victims) of follow-the-prediction on one trace."""
    cache: dict[int, tuple[int, int]] = {}  # block -> (prediction, last access)
    faults, hits, victims = 0, [False] * len(trace), [-1] * len(trace)
    for t, x in enumerate(trace):
        if x < 0:
            continue
        if x in cache:
            hits[t] = True
        else:
            faults += 1
            if len(cache) == K:
                v = max(cache, key=lambda b: (cache[b][0], -cache[b][1]))
                del cache[v]
                victims[t] = v
        cache[x] = (pred[t], t)
    return faults, hits, victims


def naive_predictive_marker(trace: list[int], K: int, pred: list[int], key: int = 0):
    """(faults, hits, victims) of Predictive Marker on one trace; ``key`` is the lane key."""
    rkey = rng.stream_key(key, rng.STREAM_RANDOM_POLICY)
    hk = math.floor(sum(1.0 / i for i in range(1, K + 1)))
    slots: list[int] = []  # block per slot, for the random choice's slot order
    info: dict[int, tuple[int, int]] = {}  # resident block -> (prediction, last access)
    marked: set[int] = set()
    stale: set[int] = set()
    chain: dict[int, int] = {}  # stale block evicted this phase -> its chain's length
    faults, hits, victims = 0, [False] * len(trace), [-1] * len(trace)
    for t, x in enumerate(trace):
        if x < 0:
            continue
        if x in info:
            hits[t] = True
        else:
            faults += 1
            if len(slots) < K:
                slots.append(x)
            else:
                if len(marked) == K:
                    marked, stale, chain = set(), set(slots), {}
                length = chain[x] + 1 if x in stale else 1
                unmarked = [b for b in slots if b not in marked]
                if length <= hk:
                    v = max(unmarked, key=lambda b: (info[b][0], -info[b][1]))
                else:
                    v = unmarked[rng.uniform_below(rng.draw(rkey, t), len(unmarked))]
                chain[v] = length
                slots[slots.index(v)] = x
                del info[v]
                victims[t] = v
        marked.add(x)
        info[x] = (pred[t], t)
    return faults, hits, victims


def naive_baseline(trace: list[int], policy: str, K: int, key: int = 0, options: dict | None = None):
    """Dispatch to the reference of ``policy``; predictions from :func:`naive_predictions`."""
    from .predictions import naive_predictions

    if policy == "arc":
        return naive_arc(trace, K)
    if policy == "clock":
        return naive_clock(trace, K)
    pred = naive_predictions(trace, key, options)
    if policy == "blind_oracle":
        return naive_blind_oracle(trace, K, pred)
    if policy == "predictive_marker":
        return naive_predictive_marker(trace, K, pred, key)
    raise ValueError(f"no reference for policy {policy!r}")
