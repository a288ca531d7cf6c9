"""``clock`` (second chance): one reference bit per frame, and a hand.

Frames are the slots, filled in order; a hit sets the bit; a fault advances the
hand past set bits (clearing them) and replaces the first frame with a clear bit;
the new block enters with its bit clear and the hand moves past it.  This is
libCacheSim's ``Clock`` with one bit.

:func:`lane_clock` is the numba loop of one lane, run by the batch driver of
:mod:`gpupage.zoo.baselines` (registry code ``CLOCK`` there; Triton twin in
``kernels.baselines``); :func:`naive_clock` is the plain reference the tests
compare against.
"""

from __future__ import annotations

from numba import njit

from ..core.cpu import evict, place, release


@njit(cache=True)
def lane_clock(trace, k, want, hits_row, victims_row, slot_of, blk, ref):
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
            v = evict(slot_of, blk, s)
            if want:
                victims_row[t] = v
        place(slot_of, blk, s, x)
        ref[s] = False
    release(slot_of, blk, n)
    return faults


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
