"""``arc``: Adaptive Replacement Cache (Megiddo & Modha, FAST 2003, Fig. 4) with c = K.

T1/T2 are the resident recency and frequency lists, B1/B2 their ghost lists, and p
the paper's real-valued target size of T1, held in fixed point with ``P_FRAC``
fractional bits: ``delta = max(|B2| / |B1|, 1)`` (resp. ``|B1| / |B2|``) truncated to
2**-32, so p stays an exact integer on every backend (libCacheSim keeps p in a
double; see the README).  Only the list order matters otherwise: no ghost or
recency ties can occur.

:func:`lane_arc` is the numba loop of one lane, run by the batch driver of
:mod:`gpupage.zoo.baselines` (registry code ``ARC`` there; Triton twin in
``kernels.baselines``); :func:`naive_arc` is the plain reference the tests compare
against.  Slots follow the contract of :mod:`gpupage.core.policies`.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numba import njit

from ..core.cpu import evict, place, release

P_FRAC = 32  # fractional bits of ARC's target p


@njit(inline="always", cache=True)
def _unlink(nxt, prv, i):
    nxt[prv[i]] = nxt[i]
    prv[nxt[i]] = prv[i]


@njit(inline="always", cache=True)
def _push_mru(nxt, prv, head, i):
    """Node ``i`` becomes the most recent end of the list whose sentinel is ``head``."""
    j = prv[head]
    nxt[j] = i
    prv[i] = j
    nxt[i] = head
    prv[head] = i


@njit(cache=True)
def lane_arc(trace, k, want, hits_row, victims_row, where, blk, lst, gblk, glst, nxt, prv, free):
    """where[id]: resident slot, ghost index + k, or -1.  lst 1/2 = T1/T2; glst 1/2 = B1/B2, 0 = free.

    The four lists are circular doubly linked lists through ``nxt``/``prv`` (nodes: slots 0..k-1,
    ghosts k..2k-1, sentinels 2k..2k+3 for T1, T2, B1, B2; a sentinel's ``nxt`` is its least recent
    entry), so every request costs O(1) whatever K; ``free`` is a stack of unused ghost indices."""
    T = trace.shape[0]
    H = 2 * k  # sentinel of T1; T2, B1, B2 follow
    for j in range(4):
        nxt[H + j] = H + j
        prv[H + j] = H + j
    for i in range(k):
        glst[i] = 0
        free[i] = i
    nfree = k
    n1 = n2 = nb1 = nb2 = 0
    p = np.int64(0)  # target size of T1, fixed point
    faults = 0
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
            _unlink(nxt, prv, w)
            _push_mru(nxt, prv, H + 1, w)
            continue
        faults += 1
        ghost = w >= k
        in_b2 = False
        to_t2 = False
        replace = True
        g = -1  # a ghost entry to forget
        if ghost:  # cases II / III: adapt p, forget the ghost
            g = w - k
            in_b2 = glst[g] == 2
            if in_b2:
                p = max(p - max((nb1 << P_FRAC) // nb2, 1 << P_FRAC), 0)
                nb2 -= 1
            else:
                p = min(p + max((nb2 << P_FRAC) // nb1, 1 << P_FRAC), k << P_FRAC)
                nb1 -= 1
            to_t2 = True
        elif n1 + n2 < k:  # cold fill
            replace = False
        elif n1 + nb1 == k:  # case IV.A
            if n1 < k:
                g = nxt[H + 2] - k
                where[gblk[g]] = -1
                nb1 -= 1
            else:
                replace = False
        elif n1 + n2 + nb1 + nb2 == 2 * k:  # case IV.B, directory full
            g = nxt[H + 3] - k
            where[gblk[g]] = -1
            nb2 -= 1
        if g >= 0:
            glst[g] = 0
            _unlink(nxt, prv, k + g)
            free[nfree] = g
            nfree += 1
        if n1 + n2 < k:
            s = n1 + n2
        else:
            if replace and not (n1 >= 1 and ((n1 << P_FRAC) > p or (in_b2 and (n1 << P_FRAC) == p))):
                s = nxt[H + 1]  # LRU of T2
                n2 -= 1
            else:
                s = nxt[H]  # LRU of T1
                n1 -= 1
            _unlink(nxt, prv, s)
            v = evict(where, blk, s)
            if want:
                victims_row[t] = v
            if replace:  # the victim becomes the MRU ghost of its list
                nfree -= 1
                g = free[nfree]
                glst[g] = lst[s]
                gblk[g] = v
                where[v] = k + g
                _push_mru(nxt, prv, H + 1 + lst[s], k + g)
                if lst[s] == 1:
                    nb1 += 1
                else:
                    nb2 += 1
        place(where, blk, s, x)
        if to_t2:
            lst[s] = 2
            n2 += 1
        else:
            lst[s] = 1
            n1 += 1
        _push_mru(nxt, prv, H + lst[s] - 1, s)
    release(where, blk, n1 + n2)
    for i in range(k):
        if glst[i] != 0:
            where[gblk[i]] = -1
    return faults


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
