"""The ``adaptive`` heuristic (:mod:`gpupage.zoo.heuristics`) on CUDA, bit for bit.

Same layout as :mod:`kernels.simulate`: a program owns ``BLOCK_B`` lanes
(lanes fastest, trace read as ``[T, B]`` rows) and a ``[BLOCK_K, BLOCK_B]``
register tile per resident-slot field: block id, last access, epoch count and
candidate count.  Per-block state (last access, and the epoch and candidate
counters packed as ``generation << 32 | count``) lives in a global scratch
``[n_ids, 3, B]``; each request reads and writes one entry of it per lane.
Declaring a change or restarting the candidate is O(K) per lane: the resident
tile is rewritten and the scratch invalidated lazily by a new generation.

Small K (<= 32): 32 lanes, one warp, each thread one lane's whole cache
column.  Large K (<= 1024): one lane per program spread over 1-8 warps.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.zoo import heuristics as _h
from gpupage.zoo.heuristics import resolve_params

from .launch import (OUT_SIG, KernelResult, _lane_tile, _lookup, _out_rows, _store_step, alloc_outputs, aot_spec,
                     as_int32_ids, check_tb, kernel_result, launch_outputs, remap_ids, tile_shape)

SMALL_BLOCK_K = (8, 16, 32)  # 64 slots x 4 fields x 32 lanes would spill
LARGE_BLOCK_K = (64, 128, 256, 512, 1024)
PROTECT = tl.constexpr(_h.PROTECT)
FAR_PAST = -(1 << 30)  # last access of a never-requested block (int32); T < 2**29
SCRATCH_LIMIT = 1 << 28  # scratch entries beyond which ids are remapped to 0..n-1


@triton.jit
def _cusum(t, novel, active, S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x,
           gain, decay, alarm, refractory):
    """The change detector after request t (``gpupage.zoo.heuristics.access``), on a tile of lanes: the
    CUSUM on novelty, and on an alarm the candidate's counts become the epoch's and a fresh candidate starts."""
    watch = active & (t >= resume)
    S = tl.where(watch, S + tl.where(novel, gain, -decay), S)
    restart = watch & (S <= 0)
    promote = watch & (S > 0) & (S >= alarm)
    S = tl.where(restart | promote, 0, S)
    s_ep = tl.where(promote[None, :], s_cd, s_ep)
    ep_x = tl.where(promote, cd_x, ep_x)
    cur = tl.where(promote, 1 - cur, cur)
    gen_ep = tl.where(promote, gen_cd, gen_ep)
    resume = tl.where(promote, t + refractory, resume)
    fresh = restart | promote
    gen_cd = tl.where(fresh, nextgen, gen_cd)
    nextgen = tl.where(fresh, nextgen + 1, nextgen)
    s_cd = tl.where(fresh[None, :], 0, s_cd)
    cd_x = tl.where(fresh, 0, cd_x)
    return S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x


@triton.jit
def _adaptive_kernel(trace_ptr, k_ptr, scratch_ptr, last_ptr, faults_ptr, hits_ptr, victims_ptr,
                     B, T, want_hits, novel_gap, gain, decay, alarm, refractory, stale, suspect,
                     BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace/hits/victims ``[T, B]``; scratch int64 ``[n_ids, 2, B]`` (all -1);
    last int32 ``[n_ids, B]`` (all FAR_PAST)."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    s_last = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    s_ep = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)  # epoch count of the resident block
    s_cd = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)  # candidate count (> 0: touched since the candidate start)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    faults = zero
    cur = zero  # which of the two counter arrays is the epoch
    gen_ep = zero
    gen_cd = zero + 1
    nextgen = zero + 2
    S = zero
    resume = zero
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    bb = B.to(tl.int64)
    trace_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        active, eq, hit, miss = _lookup(blk, x)
        xs = tl.where(active, x, 0).to(tl.int64)
        # per-block state of the requested block
        lp = last_ptr + xs * bb + lanes
        last_x = tl.load(lp, mask=active, other=0)
        novel = last_x <= t - novel_gap
        tl.store(lp, zero + t, mask=active)
        ep_p = scratch_ptr + (xs * 2 + cur) * bb + lanes
        cd_p = scratch_ptr + (xs * 2 + 1 - cur) * bb + lanes
        ev = tl.load(ep_p, mask=active, other=-1)
        cv = tl.load(cd_p, mask=active, other=-1)
        ep_x = tl.where((ev >> 32) == gen_ep, (ev & 0xFFFFFFFF) + 1, 1).to(tl.int32)
        cd_x = tl.where((cv >> 32) == gen_cd, (cv & 0xFFFFFFFF) + 1, 1).to(tl.int32)
        tl.store(ep_p, (gen_ep.to(tl.int64) << 32) | ep_x.to(tl.int64), mask=active)
        tl.store(cd_p, (gen_cd.to(tl.int64) << 32) | cd_x.to(tl.int64), mask=active)
        s_last = tl.where(eq, t, s_last)
        s_ep = tl.where(eq, ep_x[None, :], s_ep)
        s_cd = tl.where(eq, cd_x[None, :], s_cd)
        # CUSUM change detection on novelty
        S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x = _cusum(
            t, novel, active, S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x,
            gain, decay, alarm, refractory)
        # eviction: smallest (priority, last access)
        cold = miss & (n < Kl)
        evict = miss & (n >= Kl)
        p = tl.where(s_last >= t - stale, s_ep, 0).to(tl.int64)
        p = p + tl.where((S >= suspect)[None, :] & (s_cd > 0), PROTECT, 0).to(tl.int64)
        key = (p << 32) + s_last.to(tl.int64)
        key = tl.where(valid_slot, key, 0x7FFFFFFFFFFFFFFF)
        s_ev = tl.argmin(key, axis=0).to(tl.int32)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        victim = tl.sum(tl.where(sel, blk, 0), axis=0)
        victim = tl.where(evict, victim, -1)
        blk = tl.where(sel, x[None, :], blk)
        s_last = tl.where(sel, t, s_last)
        s_ep = tl.where(sel, ep_x[None, :], s_ep)
        s_cd = tl.where(sel, cd_x[None, :], s_cd)
        n = n + cold.to(tl.int32)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


def block_shape(kmax: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch."""
    return tile_shape(kmax, SMALL_BLOCK_K, LARGE_BLOCK_K, 64, 8, "the adaptive triton kernel handles")


def launch_adaptive(traces_tb: torch.Tensor, K: torch.Tensor, n_ids: int, kmax: int, prm: tuple,
                    return_hits: bool):
    """Launcher on the ``[T, B]`` layout (contiguous int32, ids < n_ids): allocates
    the scratch, picks the shape and grid.  Returns (faults int64 [B],
    hits int8 [T, B] | None, victims int32 [T, B] | None)."""
    T, B = check_tb(traces_tb)
    if T >= 1 << 29:
        raise ValueError(f"the adaptive triton kernel handles T < 2**29, got {T}")
    dev = traces_tb.device
    BK, BB, warps = block_shape(kmax)
    scratch = torch.full((n_ids, 2, B), -1, dtype=torch.int64, device=dev)
    last = torch.full((n_ids, B), FAR_PAST, dtype=torch.int32, device=dev)
    faults, hits, victims = alloc_outputs(T, B, return_hits, dev)
    grid = (triton.cdiv(B, BB),)
    _adaptive_kernel[grid](traces_tb, K, scratch, last, faults, hits, victims, B, T, int(return_hits), *prm,
                           BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    return launch_outputs(faults, hits, victims, return_hits)


def simulate(traces: torch.Tensor, policy, K: torch.Tensor, keys: torch.Tensor, return_hits: bool = False,
             options: dict | None = None) -> KernelResult:
    """``adaptive`` on the traces' device (the ``Policy.triton`` contract).

    Args:
        traces: integer ``[B, T]`` block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        policy: the ``adaptive`` :class:`~gpupage.core.policies.Policy`.
        K: int64 ``[B]`` per-lane cache sizes.  keys: int64 ``[B]`` lane keys (unused: deterministic).
        options: overrides of the tuning constants, as in :func:`gpupage.zoo.heuristics.simulate_cpu`.
    Returns:
        :class:`~kernels.simulate.KernelResult`: faults int64 ``[B]``, hits bool ``[B, T]`` and
        victims int64 ``[B, T]`` (or None).

    Host reads: ``max(K)`` and the largest id (scratch size); ids whose scratch
    would exceed ``SCRATCH_LIMIT`` entries are remapped to 0..n-1 first.
    """
    prm = resolve_params(options)
    traces, uniq = as_int32_ids(traces)
    B, T = traces.shape
    K = K.to(device=traces.device, dtype=torch.int64).clamp(max=max(T, 1)).contiguous()
    kmax = int(K.max())
    n_ids = max(int(traces.max()) + 1, 1) if traces.numel() else 1
    if n_ids * B * 3 > SCRATCH_LIMIT:
        traces, u = remap_ids(traces)
        uniq = u if uniq is None else uniq[u.long()]
        n_ids = max(int(u.numel()), 1)
        if n_ids * B * 3 > SCRATCH_LIMIT:
            raise ValueError(f"{n_ids} distinct ids x {B} lanes exceed the adaptive kernel's scratch; use backend='cpu'")
    faults, hits, victims = launch_adaptive(traces.t().contiguous(), K, n_ids, kmax, prm, return_hits)
    return kernel_result(faults, hits, victims, uniq)


_SIG = {"trace_ptr": "*i32", "k_ptr": "*i64", "scratch_ptr": "*i64", "last_ptr": "*i32", **OUT_SIG,
        "novel_gap": "i32", "gain": "i32", "decay": "i32", "alarm": "i32", "refractory": "i32", "stale": "i32",
        "suspect": "i32"}
# Every specialisation `simulate` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [aot_spec(f"adaptive K<={bk}", _adaptive_kernel, _SIG, block_shape(bk)) for bk in SMALL_BLOCK_K + LARGE_BLOCK_K]
