"""The queue-based heuristics of :mod:`gpupage.zoo.modern` on CUDA: SIEVE, bit for bit.

Same layout as :mod:`kernels.baselines`: a program owns ``BLOCK_B`` lanes (trace read as
``[T, B]`` rows) and ``[BLOCK_K, BLOCK_B]`` register tiles of per-slot state.  SIEVE's queue
order is the insertion time, so a slot holds (block, insertion time, visited bit) and the lane one
hand: the insertion time of the block it rests on, or -1 (start from the oldest).  The sweep is one
arg-min over a circular key (insertion time, shifted by 2**30 when older than the hand), clearing
the bits of every block it passes.  K <= 32: 32 lanes, one warp, a thread per lane; larger K (<=
4096): one lane per program, its slots over 1-8 warps.

S3-FIFO, W-TinyLFU and LIRS have no kernel yet (:func:`simulate` answers a one-line error): an
S3-FIFO eviction moves a data-dependent number of blocks to the back of main, a rotation that
insertion-time tiles cannot express without renumbering them; W-TinyLFU's sketch is ~14 K 32-bit
counters per lane (global scratch, not registers); LIRS's stack holds up to 2K entries, the
non-resident ones included.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


from .launch import (OUT_SIG, KernelResult, _lane_tile, _lookup, _out_rows, _store_step, aot_spec, alloc_outputs,
                     as_int32_ids, check_tb, kernel_result, launch_outputs, tile_shape)

BLOCK_KS = (8, 16, 32, 64, 256, 1024, 4096)
SMALL_K = 32  # up to here a thread holds a lane's whole column
MAX_T = 1 << 30  # insertion times and the wrapped key stay below 2**31
_WRAP = tl.constexpr(MAX_T)
_BIG = tl.constexpr(0x7FFFFFFF)


@triton.jit
def _sieve_kernel(trace_ptr, k_ptr, faults_ptr, hits_ptr, victims_ptr, B, T, want_hits,
                  BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace, hits, victims ``[T, B]``; k ``[B]``."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    ins = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    visited = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    hand = zero - 1
    faults = zero
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        active, eq, hit, miss = _lookup(blk, x)
        visited = tl.where(eq, 1, visited)
        cold = miss & (n < Kl)
        evict = miss & (n >= Kl)
        # sweep order from the hand toward newer blocks, wrapping to the oldest
        key = ins + tl.where((hand[None, :] >= 0) & (ins < hand[None, :]), _WRAP, 0)
        key = tl.where(valid_slot, key, _BIG)
        clear = tl.where(visited == 0, key, _BIG)
        # every bit set: a full turn clears them all and the hand's own block goes
        found = tl.min(clear, axis=0) < _BIG
        s_ev = tl.where(found, tl.argmin(clear, axis=0), tl.argmin(key, axis=0)).to(tl.int32)
        kv = tl.where(found, tl.min(clear, axis=0), tl.min(key, axis=0))
        visited = tl.where(evict[None, :] & ((key <= kv[None, :]) | (found == 0)[None, :]), 0, visited)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.where(evict, tl.sum(tl.where(sel, blk, 0), axis=0), -1)
        # the hand rests on the next newer block, or starts from the oldest if the victim was the newest
        t_v = tl.sum(tl.where(sel, ins, 0), axis=0)
        newer = tl.min(tl.where(valid_slot & (ins > t_v[None, :]), ins, _BIG), axis=0)
        hand = tl.where(evict, tl.where(newer == _BIG, -1, newer), hand)
        blk = tl.where(sel, x[None, :], blk)
        ins = tl.where(sel, t, ins)
        visited = tl.where(sel, 0, visited)
        n += cold.to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


def block_shape(kmax: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch."""
    small = tuple(b for b in BLOCK_KS if b <= SMALL_K)
    return tile_shape(kmax, small, BLOCK_KS[len(small):], 64, 8, "the sieve triton kernel handles")


def launch(traces_tb: torch.Tensor, K: torch.Tensor, kmax: int, return_hits: bool):
    """Launcher on the ``[T, B]`` layout (contiguous int32): validates, allocates, picks the shape
    and grid.  Returns (faults int64 [B], hits int8 [T, B] | None, victims int32 [T, B] | None)."""
    T, B = check_tb(traces_tb)
    if T >= MAX_T:
        raise ValueError(f"the sieve triton kernel handles T < {MAX_T}, got {T}")
    BK, BB, warps = block_shape(kmax)
    faults, hits, victims = alloc_outputs(T, B, return_hits, traces_tb.device)
    _sieve_kernel[(triton.cdiv(B, BB),)](traces_tb, K, faults, hits, victims, B, T, int(return_hits),
                                         BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    return launch_outputs(faults, hits, victims, return_hits)


def simulate(traces: torch.Tensor, policy, K: torch.Tensor, keys: torch.Tensor, return_hits: bool = False,
             options: dict | None = None) -> KernelResult:
    """sieve on the traces' device (the ``Policy.triton`` contract).

    Args:
        traces: integer ``[B, T]`` block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        policy: a :class:`~gpupage.core.policies.Policy` of :mod:`gpupage.zoo.modern`.
        K: int64 ``[B]`` per-lane cache sizes.  keys, options: unused.
    Returns:
        :class:`~kernels.launch.KernelResult`: faults int64 ``[B]``, hits bool ``[B, T]`` and
        victims int64 ``[B, T]`` (or None).

    Host work: ``max(K)``.
    """
    traces, uniq = as_int32_ids(traces)
    B, T = traces.shape
    # K >= T behaves exactly like K = T (the cache never fills past T blocks)
    Kc = K.detach().cpu().to(torch.int64).clamp(max=max(T, 1))
    faults, hits, victims = launch(traces.t().contiguous(), Kc.to(traces.device).contiguous(), int(Kc.max()),
                                   return_hits)
    return kernel_result(faults, hits, victims, uniq)


# Every specialisation `simulate` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [aot_spec(f"sieve K<={bk}", _sieve_kernel, {"trace_ptr": "*i32", "k_ptr": "*i64", **OUT_SIG},
                      block_shape(bk)) for bk in BLOCK_KS]
