"""What the request history cannot tell (§5.5, Lemma 2): rules that are *told* each
phase's start, on the App. B Zipf family.

At a miss, U is the set of resident blocks not requested since the current phase
began.  Every rule here evicts from U when it is non-empty (else the least
recently used block) and differs only in how it orders U:

* ``u_lru``: least recently used first.  This is LRU itself, for any K: a block
  of U was last used before the phase began, so it is older than any block
  requested since (the tests check the equality).
* ``u_mru``: most recently used first.
* ``u_random``: uniformly at random (counter-based, the lane key's
  ``STREAM_RANDOM_POLICY`` stream at position t).
* ``u_outside_n``: blocks outside the phase's working set N first (white-box:
  it reads the generator's latent state), least recently used within each group.

At K_b = W the history leaves the blocks of U exchangeable, so every black-box
ordering of U has the same expected faults; ``scripts/blackbox_limit.py``
measures how much the white-box ordering gains over them.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from ..core import rng
from ..core import limits

RULES = {"u_lru": 0, "u_mru": 1, "u_random": 2, "u_outside_n": 3}


@njit(parallel=True, cache=True)
def _told_phase_kernel(traces, working_sets, shift, n_ids, K, rule, keys, faults):
    B, T = traces.shape
    for b in prange(B):
        rkey = rng.stream_key(keys[b], rng.STREAM_RANDOM_POLICY)
        slot_of = np.full(n_ids, -1, dtype=np.int64)
        blk = np.empty(K, dtype=np.int64)
        last = np.empty(K, dtype=np.int64)
        in_n = np.zeros(n_ids, dtype=np.bool_)
        n = 0
        for t in range(T):
            s = (t // shift) * shift
            if t == s:
                in_n[:] = False
                for r in range(working_sets.shape[2]):
                    in_n[working_sets[b, t // shift, r]] = True
            x = traces[b, t]
            j = slot_of[x]
            if j >= 0:
                last[j] = t
                continue
            faults[b] += 1
            if n < K:
                j = n
                n += 1
            else:
                size_u = 0
                for i in range(K):
                    size_u += last[i] < s
                pick = rng.uniform_below(rng.draw(rkey, t), size_u) if rule == 2 and size_u > 0 else 0
                j = -1
                best = np.int64(0)
                for i in range(K):
                    in_u = last[i] < s
                    if size_u > 0 and not in_u:
                        continue
                    if size_u == 0 or rule == 0:
                        key = last[i]
                    elif rule == 1:
                        key = -last[i]
                    elif rule == 2:
                        key = 0 if pick == 0 else 1
                        pick -= 1
                    else:
                        key = (np.int64(in_n[blk[i]]) << 40) + last[i]
                    if j < 0 or key < best:
                        j, best = i, key
                slot_of[blk[j]] = -1
            blk[j] = x
            last[j] = t
            slot_of[x] = j


def told_phase_faults(traces: torch.Tensor, latent, K: int, rule: str, seed=0) -> np.ndarray:
    """Faults per lane, int64 ``[B]``, of a told-phase rule.

    Args:
        traces: int32 ``[B, T]`` Zipf traces (ids < M, no pads) with their ``latent``
            (:class:`gpupage.core.traces.ZipfLatent`, from ``zipf_traces(..., return_latent=True)``).
        K: cache size.  rule: a key of :data:`RULES`.  seed: as for ``simulate`` (``u_random``).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    arr = np.ascontiguousarray(traces.numpy(), dtype=np.int64)
    ws = np.ascontiguousarray(latent.working_sets.numpy(), dtype=np.int64)
    n_ids = int(max(arr.max(initial=0), ws.max(initial=0))) + 1
    faults = np.zeros(arr.shape[0], dtype=np.int64)
    K = min(K, max(arr.shape[1], 1))  # a cache of T blocks never evicts either: no [K] scratch beyond it
    with limits.work_threads(arr.shape[0]):
        _told_phase_kernel(arr, ws, latent.shift, n_ids, K, RULES[rule], rng.lane_keys(seed, arr.shape[0]), faults)
    return faults


def naive_told_phase_faults(trace: list[int], working_sets: list[list[int]], shift: int, K: int, rule: str,
                            key: int) -> int:
    """Plain-Python reference of one lane of :func:`told_phase_faults` (``key``: its lane key)."""
    rkey = rng.stream_key(key, rng.STREAM_RANDOM_POLICY)
    slots: list[int] = []  # the block in each slot, slots filled in order
    last: dict[int, int] = {}  # resident block -> its last request
    faults = 0
    for t, x in enumerate(trace):
        if x in last:
            last[x] = t
            continue
        faults += 1
        if len(slots) < K:
            slots.append(x)
        else:
            s = t - t % shift
            u = [i for i, blk in enumerate(slots) if last[blk] < s]
            age = lambda i: last[slots[i]]  # noqa: E731
            if not u:
                j = min(range(K), key=age)
            elif rule == "u_lru":
                j = min(u, key=age)
            elif rule == "u_mru":
                j = max(u, key=age)
            elif rule == "u_random":
                j = u[rng.uniform_below(rng.draw(rkey, t), len(u))]
            else:
                in_n = set(working_sets[t // shift])
                j = min(u, key=lambda i: (slots[i] in in_n, age(i)))
            del last[slots[j]]
            slots[j] = x
        last[x] = t
    return faults
