"""Baselines whose state is not a per-slot score: CPU (numba) path and plain references.

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
* ``arc`` (Megiddo & Modha, FAST 2003) with c = K: T1/T2 resident, B1/B2 ghost
  lists and the paper's real-valued target p, held in fixed point with
  ``P_FRAC`` fractional bits: ``delta = max(|B2| / |B1|, 1)`` (resp.
  ``|B1| / |B2|``) truncated to 2**-32, so p stays an exact integer on every
  backend (libCacheSim keeps p in a double; see the README).
* ``clock`` (second chance): frames = slots, one reference bit set by a hit,
  cleared as the hand passes; a new block enters with the bit clear and the hand
  moves past it.

Every policy follows the contract of :mod:`gpupage.policies`: forced insertion,
cold fill takes the lowest empty slot, a fault takes its victim's slot; ties
between equal predictions go to the least recently accessed block.  The
``naive_*`` functions are slow, literal references the tests compare against.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from numba import njit, prange

from . import rng
from .cpu import alloc_outputs, cpu_result, lane_chunks, max_k
from .predictions import NEVER, check_length, noise_table, predict_lane, prediction_options

BLIND_ORACLE, PREDICTIVE_MARKER, ARC, CLOCK = range(20, 24)
PREDICTION_CODES = (BLIND_ORACLE, PREDICTIVE_MARKER)
SHIFT = 1 << 32
P_FRAC = 32  # fractional bits of ARC's target p


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
            v = blk[s]
            slot_of[v] = -1
            if want:
                victims_row[t] = v
        blk[s] = x
        slot_of[x] = s
        last[s] = t
        prd[s] = pred[t]
        if not marked[s]:
            marked[s] = True
            nm += 1
    for i in range(n):
        slot_of[blk[i]] = -1
        marked[i] = False
    return faults


@njit(inline="always", cache=True)
def _lru_of(k, lst, stamp, which):
    """Index with the smallest stamp among entries of list ``which``."""
    s = -1
    for i in range(k):
        if lst[i] == which and (s < 0 or stamp[i] < stamp[s]):
            s = i
    return s


@njit(cache=True)
def _lane_arc(trace, k, want, hits_row, victims_row, where, blk, lst, stamp, gblk, glst, gstamp):
    """where[id]: resident slot, ghost index + k, or -1.  lst 1/2 = T1/T2; glst 1/2 = B1/B2, 0 = free."""
    T = trace.shape[0]
    n1 = n2 = nb1 = nb2 = 0
    p = np.int64(0)  # target size of T1, fixed point
    faults = 0
    for i in range(k):
        glst[i] = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        w = where[x]
        if 0 <= w < k:  # case I: hit, to the MRU end of T2
            if want:
                hits_row[t] = 1
            if lst[w] == 1:
                n1 -= 1
                n2 += 1
            lst[w] = 2
            stamp[w] = t
            continue
        faults += 1
        ghost = w >= k
        in_b2 = False
        to_t2 = False
        replace = True
        if ghost:  # cases II / III: adapt p, forget the ghost (its entry is reused below)
            g = w - k
            in_b2 = glst[g] == 2
            if in_b2:
                p = max(p - max((nb1 << P_FRAC) // nb2, 1 << P_FRAC), 0)
                nb2 -= 1
            else:
                p = min(p + max((nb2 << P_FRAC) // nb1, 1 << P_FRAC), k << P_FRAC)
                nb1 -= 1
            glst[g] = 0
            to_t2 = True
        elif n1 + n2 < k:  # cold fill
            replace = False
        elif n1 + nb1 == k:  # case IV.A
            if n1 < k:
                g = _lru_of(k, glst, gstamp, 1)
                where[gblk[g]] = -1
                glst[g] = 0
                nb1 -= 1
            else:
                replace = False
        elif n1 + n2 + nb1 + nb2 == 2 * k:  # case IV.B, directory full
            g = _lru_of(k, glst, gstamp, 2)
            where[gblk[g]] = -1
            glst[g] = 0
            nb2 -= 1
        if n1 + n2 < k:
            s = n1 + n2
        else:
            if replace and not (n1 >= 1 and ((n1 << P_FRAC) > p or (in_b2 and (n1 << P_FRAC) == p))):
                s = _lru_of(k, lst, stamp, 2)
                n2 -= 1
            else:
                s = _lru_of(k, lst, stamp, 1)
                n1 -= 1
            v = blk[s]
            where[v] = -1
            if want:
                victims_row[t] = v
            if replace:  # the victim becomes the MRU ghost of its list
                g = 0
                while glst[g] != 0:
                    g += 1
                glst[g] = lst[s]
                gblk[g] = v
                gstamp[g] = t
                where[v] = k + g
                if lst[s] == 1:
                    nb1 += 1
                else:
                    nb2 += 1
        blk[s] = x
        where[x] = s
        stamp[s] = t
        if to_t2:
            lst[s] = 2
            n2 += 1
        else:
            lst[s] = 1
            n1 += 1
    for i in range(n1 + n2):
        where[blk[i]] = -1
    for i in range(k):
        if glst[i] != 0:
            where[gblk[i]] = -1
    return faults


@njit(cache=True)
def _lane_clock(trace, k, want, hits_row, victims_row, slot_of, blk, ref):
    T = trace.shape[0]
    n = 0
    hand = 0
    faults = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        s = slot_of[x]
        if s >= 0:
            if want:
                hits_row[t] = 1
            ref[s] = True
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        else:
            while ref[hand]:
                ref[hand] = False
                hand = hand + 1 if hand + 1 < k else 0
            s = hand
            hand = hand + 1 if hand + 1 < k else 0
            slot_of[blk[s]] = -1
            if want:
                victims_row[t] = blk[s]
        blk[s] = x
        slot_of[x] = s
        ref[s] = False
    for i in range(n):
        slot_of[blk[i]] = -1
    return faults


@njit(parallel=True, cache=True)
def _simulate_batch(traces, table, threshold, K, hk, code, rkeys, n_ids, want, hits, victims, faults, nchunks):
    B, T = traces.shape
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
        gstamp = np.empty(kmax, dtype=np.int64)
        flags = np.zeros(kmax, dtype=np.bool_)
        eligible = np.ones(kmax, dtype=np.bool_)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            row = b if want else 0
            if code == ARC:
                faults[b] = _lane_arc(traces[b], K[b], want, hits[row], victims[row],
                                      where, blk, lst, last, gblk, glst, gstamp)
            elif code == CLOCK:
                faults[b] = _lane_clock(traces[b], K[b], want, hits[row], victims[row], where, blk, flags)
            else:
                predict_lane(traces[b], rkeys[b], table, threshold, seen, pred)
                rkey = rng.stream_key(rkeys[b], rng.STREAM_RANDOM_POLICY)
                faults[b] = _lane_predictive(traces[b], pred, K[b], code, rkey, hk[b], want, hits[row], victims[row],
                                             where, blk, last, prd, flags, gblk, lst, eligible)


def simulate_cpu(traces: np.ndarray, policy, K: np.ndarray, rkeys: np.ndarray, n_ids: int,
                 return_hits: bool = False, options: dict | None = None):
    """The :func:`gpupage.cpu.simulate_cpu` contract for the baselines of this module.

    ``options`` (prediction policies): ``{"eta": >= 0, "replace": in [0, 1]}``, see
    :mod:`gpupage.predictions`; ARC and CLOCK accept and ignore it.
    """
    code = policy.code
    B, T = traces.shape
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
# Plain references: one trace, Python lists, written from the papers' pseudo-code.


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


def naive_arc(trace: list[int], K: int, float_p: bool = False):
    """(faults, hits, victims) of ARC(c=K), Fig. 4 of Megiddo & Modha; p in units of 2**-P_FRAC.

    ``float_p``: p and delta as doubles instead, as libCacheSim computes them (tests only).
    """
    T1: OrderedDict = OrderedDict()  # LRU first
    T2: OrderedDict = OrderedDict()
    B1: OrderedDict = OrderedDict()
    B2: OrderedDict = OrderedDict()
    p = 0
    one = 1.0 if float_p else 2**P_FRAC

    def ratio(a, b):
        return a / b if float_p else a * one // b
    faults, hits, victims = 0, [False] * len(trace), [-1] * len(trace)

    def replace(t, in_b2):
        if T1 and (len(T1) * one > p or (in_b2 and len(T1) * one == p)):
            v, _ = T1.popitem(last=False)
            B1[v] = None
        else:
            v, _ = T2.popitem(last=False)
            B2[v] = None
        victims[t] = v

    for t, x in enumerate(trace):
        if x < 0:
            continue
        if x in T1 or x in T2:
            hits[t] = True
            T1.pop(x, None)
            T2.pop(x, None)
            T2[x] = None
            continue
        faults += 1
        if x in B1:
            p = min(p + max(ratio(len(B2), len(B1)), one), K * one)
            replace(t, False)
            del B1[x]
            T2[x] = None
        elif x in B2:
            p = max(p - max(ratio(len(B1), len(B2)), one), 0)
            replace(t, True)
            del B2[x]
            T2[x] = None
        else:
            if len(T1) + len(B1) == K:
                if len(T1) < K:
                    B1.popitem(last=False)
                    replace(t, False)
                else:
                    victims[t], _ = T1.popitem(last=False)
            elif len(T1) + len(T2) + len(B1) + len(B2) >= K:
                if len(T1) + len(T2) + len(B1) + len(B2) == 2 * K:
                    B2.popitem(last=False)
                replace(t, False)
            T1[x] = None
    return faults, hits, victims


def naive_clock(trace: list[int], K: int):
    """(faults, hits, victims) of CLOCK with one reference bit per frame."""
    frames: list[int] = []
    ref: list[bool] = []
    hand = 0
    faults, hits, victims = 0, [False] * len(trace), [-1] * len(trace)
    for t, x in enumerate(trace):
        if x < 0:
            continue
        if x in frames:
            hits[t] = True
            ref[frames.index(x)] = True
            continue
        faults += 1
        if len(frames) < K:
            frames.append(x)
            ref.append(False)
            continue
        while ref[hand]:
            ref[hand] = False
            hand = (hand + 1) % K
        victims[t] = frames[hand]
        frames[hand] = x
        hand = (hand + 1) % K
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
