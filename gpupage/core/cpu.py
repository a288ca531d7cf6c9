"""CPU backend: the batched simulator compiled with numba, lanes split across cores.

One pass per lane keeps the cache in small arrays (block, composite eviction
key) plus a block -> slot map, so a hit costs O(1) and a miss one scan of the
K keys (or O(log K) in a tournament tree for large K; FIFO's victim is simply the
next slot in turn, O(1)).  The composite key is
``priority * 2**32 + last_access``: its minimum is the policy's victim with
ties going to the least recently accessed block, as the contract says.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import rng
from .policies import BELADY, FIFO, FIXED, LFU, LRU, RANDOM

NEVER = 1 << 30  # next use of a block never requested again
SHIFT = 1 << 32
TREE_MIN_K = 48  # from here on a tournament tree beats scanning all keys


@njit(inline="always", cache=True)
def _key(code, t, inserted, count, next_use):
    if code == LRU:
        return t
    if code == FIFO:
        return inserted
    if code == LFU:
        return count * SHIFT + t
    # BELADY: farthest next use first
    return (NEVER - next_use) * SHIFT + t


@njit(inline="always", cache=True)
def argmin_key(keys, k):
    """Slot of the smallest of ``keys[:k]`` (the first on ties): a full cache's victim."""
    s = 0
    best = keys[0]
    for i in range(1, k):
        if keys[i] < best:
            best = keys[i]
            s = i
    return s


@njit(inline="always", cache=True)
def lane_row(traces, b):
    """Lane b's trace: row b of ``[B, T]``, or the one row of ``[1, T]`` that every lane shares."""
    return traces[b if traces.shape[0] > 1 else 0]


@njit(inline="always", cache=True)
def max_k(K):
    """The largest per-lane K (at least 1): the size of a chunk's per-slot scratch."""
    kmax = 1
    for b in range(K.shape[0]):
        kmax = max(kmax, K[b])
    return kmax


# The shell of the loops over a block -> slot map (this module, gpupage.zoo, the closed loop, the
# bounds' noisy Belady): ``evict`` on a full cache's fault, ``place`` of the faulting block, ``release``
# of a chunk's shared map at a lane's end; inlined, the same machine code as written out.  The hit
# path and the recording of hits and victims stay written out in each loop: an inlined helper handed
# the hits or victims row to write under a runtime flag costs reference counting on every request
# (15-30% slower, measured).


@njit(inline="always", cache=True)
def evict(slot_of, blk, s):
    """Unmap the block in slot s (the victim) and return it."""
    v = blk[s]
    slot_of[v] = -1
    return v


@njit(inline="always", cache=True)
def place(slot_of, blk, s, x):
    """Block x now lives in slot s."""
    blk[s] = x
    slot_of[x] = s


@njit(inline="always", cache=True)
def release(slot_of, blk, n):
    """Unmap the n resident blocks, so that the chunk's shared block -> slot map is clean for the next lane."""
    for i in range(n):
        slot_of[blk[i]] = -1


@njit(inline="always", cache=True)
def lane_next_uses(trace, seen, nxt):
    """nxt[t] = the next index of request t's block in one lane (pads' entries untouched); ``seen``, the
    chunk's [n_ids] map, holds NEVER for every block on entry and again on return."""
    for t in range(trace.shape[0] - 1, -1, -1):
        x = trace[t]
        if x >= 0:
            nxt[t] = seen[x]
            seen[x] = t
    for t in range(trace.shape[0]):
        if trace[t] >= 0:
            seen[trace[t]] = NEVER


@njit(inline="always", cache=True)
def _tree_update(tree, keys, leaves, s):
    """tree[i] holds the slot of the smallest key below node i; leaves at leaves + s."""
    i = (leaves + s) >> 1
    while i >= 1:
        a = tree[2 * i]
        b = tree[2 * i + 1]
        tree[i] = a if keys[a] <= keys[b] else b
        i >>= 1


@njit(cache=True)
def _run_lane(trace, k, code, rkey, want_hits, hits_row, want_victims, victims_row,
              slot_of, count, nxt, seen, blk, keys, tree):
    T = trace.shape[0]
    if code == BELADY:
        lane_next_uses(trace, seen, nxt)
    use_tree = k >= TREE_MIN_K and code != RANDOM and code != FIXED and code != FIFO
    leaves = 1
    while leaves < k:
        leaves *= 2
    if use_tree:
        for s in range(k, leaves):
            keys[s] = np.int64(1) << 62  # padding leaves never win
        for s in range(leaves):
            tree[leaves + s] = s
        for i in range(leaves - 1, 0, -1):
            a = tree[2 * i]
            b = tree[2 * i + 1]
            tree[i] = a if keys[a] <= keys[b] else b
    n = 0
    faults = 0
    c = 0
    hand = 0  # FIFO: slots are filled in order and a fault takes its victim's slot, so they age in turn
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        if code == LFU:
            c = count[x] + 1
            count[x] = c
        s = slot_of[x]
        if s >= 0:
            if want_hits:
                hits_row[t] = 1
            if code != FIFO and code != RANDOM and code != FIXED:
                keys[s] = _key(code, t, 0, c, nxt[t] if code == BELADY else 0)
                if use_tree:
                    _tree_update(tree, keys, leaves, s)
            continue
        faults += 1
        if n < k:
            s = n
            n += 1
        elif code == FIXED:
            continue
        else:
            if code == RANDOM:
                s = rng.uniform_below(rng.draw(rkey, t), k)
            elif code == FIFO:
                s = hand
                hand = hand + 1 if hand + 1 < k else 0
            elif use_tree:
                s = tree[1]
            else:
                s = argmin_key(keys, k)
            v = evict(slot_of, blk, s)
            if want_victims:
                victims_row[t] = v
        place(slot_of, blk, s, x)
        keys[s] = _key(code, t, t, c, nxt[t] if code == BELADY else 0)
        if use_tree:
            _tree_update(tree, keys, leaves, s)
    release(slot_of, blk, n)  # the other scratch too is left clean for the next lane
    if code == LFU:
        for t in range(T):
            if trace[t] >= 0:
                count[trace[t]] = 0
    return faults


@njit(parallel=True, cache=True)
def _simulate_batch(traces, K, code, rkeys, n_ids, want_hits, hits, want_victims, victims, faults, nchunks):
    B, T = K.shape[0], traces.shape[1]
    kmax = max_k(K)
    leaves = 1
    while leaves < kmax:
        leaves *= 2
    for c in prange(nchunks):
        slot_of = np.full(n_ids, -1, dtype=np.int32)
        count = np.zeros(n_ids if code == LFU else 1, dtype=np.int32)
        nxt = np.empty(T if code == BELADY else 1, dtype=np.int32)
        seen = np.full(n_ids if code == BELADY else 1, NEVER, dtype=np.int32)
        blk = np.empty(kmax, dtype=np.int64)
        keys = np.empty(leaves, dtype=np.int64)
        tree = np.empty(2 * leaves, dtype=np.int32)
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            rkey = rng.stream_key(rkeys[b], rng.STREAM_RANDOM_POLICY)
            faults[b] = _run_lane(
                lane_row(traces, b), min(K[b], kmax), code, rkey,
                want_hits, hits[b if want_hits else 0], want_victims, victims[b if want_victims else 0],
                slot_of, count, nxt, seen, blk, keys, tree,
            )


def simulate_cpu(traces: np.ndarray, policy, K: np.ndarray, rkeys: np.ndarray, n_ids: int,
                 return_hits: bool = False, options: dict | None = None):
    """The CPU contract every policy implementation follows.

    Args:
        traces: C-contiguous ``[B, T]`` of dense ids < n_ids (-1 = pad), or ``[1, T]``: one trace every
            lane reads (``lane_row``).  int32 from ``simulate`` (int64 only past 2**31 distinct ids), so
            numba compiles each batch function once.
        policy: the :class:`~gpupage.core.policies.Policy`.
        K: int64 ``[B]``: it gives the lane count B.  rkeys: int64 ``[B]`` lane keys.  options: policy
            options (unused here).
    Returns:
        (faults int64 [B], hits uint8 [B, T] or None, victims int64 [B, T] or None).
    """
    B, T = K.shape[0], traces.shape[1]
    faults, hits, victims = alloc_outputs(B, T, return_hits)
    _simulate_batch(traces, K, policy.code, rkeys, max(n_ids, 1), return_hits, hits, return_hits, victims, faults,
                    lane_chunks(B))
    return cpu_result(faults, hits, victims, return_hits)


@njit(parallel=True, cache=True)
def _count_requests(traces, nchunks, out):
    B, T = traces.shape
    for c in prange(nchunks):
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            n = 0
            for t in range(T):
                if traces[b, t] >= 0:
                    n += 1
            out[b] = n


def count_requests(traces: np.ndarray, nchunks: int) -> np.ndarray:
    """Non-pad requests per lane, int64 [B], without a [B, T] temporary."""
    out = np.empty(traces.shape[0], dtype=np.int64)
    _count_requests(traces, max(nchunks, 1), out)
    return out


@njit(parallel=True, cache=True)
def fill_next_uses(traces, out):
    """out[b, t] = next index of request t's block in lane b; entries with none (pads too) keep the
    "never" value the caller filled ``out`` with, so each caller keeps its own dtype and sentinel."""
    B, T = traces.shape
    for b in prange(B):
        seen = {}
        for t in range(T - 1, -1, -1):
            x = traces[b, t]
            if x < 0:
                continue
            if x in seen:
                out[b, t] = seen[x]
            seen[x] = t


def lane_chunks(B: int) -> int:
    """How many chunks a parallel batch splits its B lanes into (4 per thread, to even out their cost)."""
    return min(B, 4 * numba.get_num_threads())


def hit_rows(B: int, T: int, want: bool):
    """uint8 hits ``[B, T]`` (zeros), or one dummy row never written when hits are not wanted."""
    return np.zeros((B, T) if want else (1, 1), dtype=np.uint8)


def alloc_outputs(B: int, T: int, return_hits: bool):
    """(faults int64 [B], hits uint8, victims int64 all -1) for a batch; hits and
    victims are ``[B, T]``, or one dummy row each when hits are not wanted."""
    victims = np.full((B, T) if return_hits else (1, 1), -1, dtype=np.int64)
    return np.empty(B, dtype=np.int64), hit_rows(B, T, return_hits), victims


def cpu_result(faults, hits, victims, return_hits: bool):
    """The contract's return: (faults, hits | None, victims | None)."""
    return (faults, hits, victims) if return_hits else (faults, None, None)
