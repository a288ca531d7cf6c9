"""Closed-loop traces on the GPU: the trace is generated inside the simulation loop.

Triton twin of :mod:`gpupage.experiments.closedloop` (read its docstring for the family and
the RNG positions).  One program owns ``BLOCK_B`` lanes; each lane's cache
(blocks and composite eviction keys, ``[BLOCK_B, KP]``) lives in registers for
the whole trace, and step t reads request t of the exogenous stream, flips the
closed-loop coin, gathers the chosen resident block from registers and reads
one association.  LFU's counts survive eviction, so they sit in a per-lane
global scratch row.  All integer, so the induced traces, hits and faults equal
the CPU path bit for bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.core.policies import FIFO, FIXED, LFU, LRU, RANDOM
from kernels import rng as trng


@triton.jit
def _closed_loop_kernel(exo_ptr, assoc_ptr, keys_ptr, count_ptr, traces_ptr, hits_ptr, faults_ptr,
                        B, T, M, D, K, threshold,
                        CODE: tl.constexpr, KP: tl.constexpr, BLOCK_B: tl.constexpr, WANT_HITS: tl.constexpr):
    lane = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    live = lane < B
    lane64 = lane.to(tl.int64)
    row = lane64 * T  # int64: B*T may exceed 2**31
    key = tl.load(keys_ptr + lane, mask=live, other=0)
    ckey = trng.stream_key(key, 9)  # rng.STREAM_CLOSED_LOOP
    rkey = trng.stream_key(key, 7)  # rng.STREAM_RANDOM_POLICY
    idx = tl.arange(0, KP)[None, :]
    blk = tl.full((BLOCK_B, KP), -1, tl.int32)
    BIG: tl.constexpr = 1 << 62
    score = tl.full((BLOCK_B, KP), BIG, tl.int64)
    n = tl.zeros((BLOCK_B,), tl.int32)
    faults = tl.zeros((BLOCK_B,), tl.int64)
    for t in range(0, T):
        tt = tl.cast(t, tl.int64)
        x = tl.load(exo_ptr + row + t, mask=live, other=0)
        # closed-loop step: a neighbour of a uniformly chosen resident block
        coin = trng.draw(ckey, 3 * tt).to(tl.int64) < threshold
        closed = coin & (n > 0)
        s = trng.uniform_below(trng.draw(ckey, 3 * tt + 1), tl.maximum(n, 1))
        chosen = tl.sum(tl.where(idx == s[:, None], blk, 0), axis=1)
        j = trng.uniform_below(trng.draw(ckey, 3 * tt + 2), D)
        nb = tl.load(assoc_ptr + lane64 * M * D + chosen * D + j, mask=live & closed, other=0)
        x = tl.where(closed, nb, x)
        tl.store(traces_ptr + row + t, x, mask=live)
        c = tl.zeros((BLOCK_B,), tl.int64)
        if CODE == 2:  # LFU: counts over the whole trace
            cp = count_ptr + lane64 * M + x
            c = tl.load(cp, mask=live, other=0).to(tl.int64) + 1
            tl.store(cp, c.to(tl.int32), mask=live)
        match = blk == x[:, None]
        hit = tl.max(match.to(tl.int32), axis=1) > 0
        hs = tl.sum(tl.where(match, idx, 0), axis=1)
        if WANT_HITS:
            tl.store(hits_ptr + row + t, hit.to(tl.uint8), mask=live)
        miss = (~hit) & live
        faults += miss.to(tl.int64)
        cold = n < K
        if CODE == 4:  # RANDOM
            victim = trng.uniform_below(trng.draw(rkey, tt), K)
        else:
            best = tl.min(score, axis=1)
            victim = tl.min(tl.where(score == best[:, None], idx, KP), axis=1)
        target = tl.where(hit, hs, tl.where(cold, n, victim))
        insert = miss
        if CODE == 5:  # FIXED: a full cache never changes
            insert = miss & cold
        if CODE == 1:  # LRU
            newkey = tl.zeros((BLOCK_B,), tl.int64) + tt
            write = insert | hit
        elif CODE == 2:  # LFU: count * 2**32 + last access
            newkey = c * 4294967296 + tt
            write = insert | hit
        else:  # FIFO keeps the insertion time; Random and Fixed never read scores
            newkey = tl.zeros((BLOCK_B,), tl.int64) + tt
            write = insert
        at = idx == target[:, None]
        blk = tl.where(at & insert[:, None], x[:, None], blk)
        score = tl.where(at & write[:, None], newkey[:, None], score)
        n += (miss & cold).to(tl.int32)
    tl.store(faults_ptr + lane, faults, mask=live)


def _block_b(KP: int) -> int:
    return max(1, min(32, 1024 // KP))


def closed_loop_triton(exo: torch.Tensor, assoc: torch.Tensor, degree: int, threshold: int, K: int, code: int,
                       keys: torch.Tensor, return_hits: bool = False):
    """Launch the closed-loop kernel.

    Args:
        exo: int32 ``[B, T]`` exogenous stream.  assoc: int32 ``[B, M * degree]``.
        threshold: coin threshold (``rng.probability_threshold(sigma)``).  K: cache size.
        code: policy code (LRU, FIFO, LFU, RANDOM or FIXED).  keys: int64 ``[B]`` lane keys.
    Returns:
        (faults int64 [B], induced traces int32 [B, T], hits bool [B, T] or None).
    """
    if code not in (LRU, FIFO, LFU, RANDOM, FIXED):
        raise ValueError(f"policy code {code} cannot drive a closed loop")
    if exo.dim() != 2 or assoc.dim() != 2 or assoc.shape[0] != exo.shape[0]:
        raise ValueError("exo must be [B, T] and assoc [B, M * degree]")
    if K < 1 or degree < 1 or assoc.shape[1] % degree:
        raise ValueError(f"bad K={K} or degree={degree}")
    B, T = exo.shape
    M = assoc.shape[1] // degree
    dev = exo.device
    exo = exo.to(torch.int32).contiguous()
    assoc = assoc.to(torch.int32).contiguous()
    keys = keys.to(device=dev, dtype=torch.int64).contiguous()
    KP = max(2, triton.next_power_of_2(K))
    BLOCK_B = _block_b(KP)
    traces = torch.empty((B, T), dtype=torch.int32, device=dev)
    hits = torch.zeros((B, T) if return_hits else (1,), dtype=torch.uint8, device=dev)
    faults = torch.empty(B, dtype=torch.int64, device=dev)
    count = torch.zeros((B, M) if code == LFU else (1,), dtype=torch.int32, device=dev)
    grid = (triton.cdiv(B, BLOCK_B),)
    _closed_loop_kernel[grid](exo, assoc, keys, count, traces, hits, faults, B, T, M, degree, K, threshold,
                              CODE=code, KP=KP, BLOCK_B=BLOCK_B, WANT_HITS=return_hits)
    return faults, traces, (hits.bool() if return_hits else None)


_SIG = {"exo_ptr": "*i32", "assoc_ptr": "*i32", "keys_ptr": "*i64", "count_ptr": "*i32", "traces_ptr": "*i32",
        "hits_ptr": "*u8", "faults_ptr": "*i64", "B": "i32", "T": "i32", "M": "i32", "D": "i32", "K": "i32",
        "threshold": "i64"}  # every non-constexpr argument

AOT_SPECS = [
    dict(name=f"closed_loop_{name}_k{KP}", fn=_closed_loop_kernel, signature=_SIG,
         constexprs=dict(CODE=code, KP=KP, BLOCK_B=_block_b(KP), WANT_HITS=False))
    for name, code in (("lru", LRU), ("fifo", FIFO), ("lfu", LFU), ("random", RANDOM), ("fixed", FIXED))
    for KP in (8, 64)
]
