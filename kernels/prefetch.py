"""Prefetching (issue 13) on CUDA: the serving loop of :mod:`gpupage.core.prefetch` with LRU or ``adaptive``
eviction, bit for bit.

Same layout as :mod:`kernels.heuristics`: a program owns ``BLOCK_B`` lanes (lanes fastest; trace and
targets read as ``[T, B]`` rows) and a ``[BLOCK_K, BLOCK_B]`` register tile per slot field: block id,
last access, and for ``adaptive`` the epoch and candidate counts.  Per-block state that outlives a
block's residence lives in global scratch: last access ``[n_ids, B]`` (a block prefetched after an
eviction keeps its old last access: a prefetch is not an access) and, for ``adaptive``, the epoch and
candidate counters ``[n_ids, 2, B]`` packed as ``generation << 32 | count``.

Each step: the prefetch of ``targets[t]`` when it is not resident (victim chosen with the state after
request t - 1), then request t as in ``kernels.heuristics``.  The victim is the first slot of the smallest
(priority, last access): ties happen here (blocks prefetched and never requested share a last access),
so the first-slot rule is explicit rather than left to ``tl.argmin``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.zoo import heuristics as _h
from gpupage.zoo.heuristics import resolve_params

from .heuristics import _cusum
from .launch import _lane_tile, _lookup, aot_spec, check_tb, tile_shape

M_LRU, M_ADAPTIVE = 0, 1
MODES = {"lru": M_LRU, "adaptive": M_ADAPTIVE}
# per mode: adaptive's four slot fields at 32 slots x 32 lanes spill on sm_90, so from K = 17 on it runs
# one lane per program
SMALL_BLOCK_K = {M_LRU: (8, 16, 32), M_ADAPTIVE: (8, 16)}
LARGE_BLOCK_K = {M_LRU: (64, 128, 256, 512, 1024), M_ADAPTIVE: (32, 64, 128, 256, 512, 1024)}
PROTECT = tl.constexpr(_h.PROTECT)
FAR_PAST = -(1 << 30)  # last access of a never-requested block (int32); T < 2**29
INT64_MAX = tl.constexpr(0x7FFFFFFFFFFFFFFF)


@triton.jit
def _victim(t, s_last, s_ep, s_cd, S, valid_slot, slot, stale, suspect,
            MODE: tl.constexpr, BLOCK_K: tl.constexpr):
    """[BB]: the first slot of the smallest (priority, last access) per lane."""
    if MODE == 0:
        key = s_last.to(tl.int64)
    else:
        p = tl.where(s_last >= t - stale, s_ep, 0).to(tl.int64)
        p = p + tl.where((S >= suspect)[None, :] & (s_cd > 0), PROTECT, 0).to(tl.int64)
        key = (p << 32) + s_last.to(tl.int64)
    key = tl.where(valid_slot, key, INT64_MAX)
    best = tl.min(key, axis=0)
    return tl.min(tl.where(key == best[None, :], slot, BLOCK_K), axis=0).to(tl.int32)


@triton.jit
def _counts(scratch_ptr, xs, cur, gen_ep, gen_cd, mask, bb, lanes):
    """(pointers, stored values, current counts) of a block's epoch and candidate counters."""
    ep_p = scratch_ptr + (xs * 2 + cur) * bb + lanes
    cd_p = scratch_ptr + (xs * 2 + 1 - cur) * bb + lanes
    ev = tl.load(ep_p, mask=mask, other=-1)
    cv = tl.load(cd_p, mask=mask, other=-1)
    ep = tl.where((ev >> 32) == gen_ep, ev & 0xFFFFFFFF, 0).to(tl.int32)
    cd = tl.where((cv >> 32) == gen_cd, cv & 0xFFFFFFFF, 0).to(tl.int32)
    return ep_p, cd_p, ep, cd


@triton.jit
def _prefetch_kernel(trace_ptr, target_ptr, k_ptr, scratch_ptr, last_ptr, out_ptr,
                     B, T, novel_gap, gain, decay, alarm, refractory, stale, suspect,
                     MODE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace/target int32 ``[T, B]`` (-1: pad / no prefetch); last int32 ``[n_ids, B]`` (all FAR_PAST);
    scratch int64 ``[n_ids, 2, B]`` (all -1; read by adaptive only); out int64 ``[3, B]``:
    faults, prefetches, evictions."""
    lanes, lmask, Kl, slot, valid_slot = _lane_tile(k_ptr, B, BLOCK_K, BLOCK_B)
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    s_last = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    s_ep = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    s_cd = tl.zeros([BLOCK_K, BLOCK_B], tl.int32)
    zero = tl.zeros([BLOCK_B], tl.int32)
    n = zero
    faults = zero
    prefetches = zero
    evictions = zero
    cur = zero
    gen_ep = zero
    gen_cd = zero + 1
    nextgen = zero + 2
    S = zero
    resume = zero
    bb = B.to(tl.int64)
    trace_ptr += lanes
    target_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        y = tl.load(target_ptr, mask=lmask, other=-1)
        # the prefetch, before request t (none at a pad)
        _, _, y_hit, y_miss = _lookup(blk, y)
        pre = y_miss & (x >= 0)
        ys = tl.where(pre, y, 0).to(tl.int64)
        last_y = tl.load(last_ptr + ys * bb + lanes, mask=pre, other=0)
        if MODE == 1:
            _, _, ep_y, cd_y = _counts(scratch_ptr, ys, cur, gen_ep, gen_cd, pre, bb, lanes)
        s_ev = _victim(t, s_last, s_ep, s_cd, S, valid_slot, slot, stale, suspect, MODE, BLOCK_K)
        cold = pre & (n < Kl)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & pre[None, :]
        blk = tl.where(sel, y[None, :], blk)
        s_last = tl.where(sel, last_y[None, :], s_last)
        if MODE == 1:
            s_ep = tl.where(sel, ep_y[None, :], s_ep)
            s_cd = tl.where(sel, cd_y[None, :], s_cd)
        n = n + cold.to(tl.int32)
        prefetches += pre.to(tl.int32)
        evictions += (pre & (cold == 0)).to(tl.int32)
        # request t
        active, eq, hit, miss = _lookup(blk, x)
        xs = tl.where(active, x, 0).to(tl.int64)
        lp = last_ptr + xs * bb + lanes
        if MODE == 1:
            last_x = tl.load(lp, mask=active, other=0)
        tl.store(lp, zero + t, mask=active)
        s_last = tl.where(eq, t, s_last)
        if MODE == 1:
            ep_p, cd_p, ep_x, cd_x = _counts(scratch_ptr, xs, cur, gen_ep, gen_cd, active, bb, lanes)
            ep_x += 1
            cd_x += 1
            tl.store(ep_p, (gen_ep.to(tl.int64) << 32) | ep_x.to(tl.int64), mask=active)
            tl.store(cd_p, (gen_cd.to(tl.int64) << 32) | cd_x.to(tl.int64), mask=active)
            s_ep = tl.where(eq, ep_x[None, :], s_ep)
            s_cd = tl.where(eq, cd_x[None, :], s_cd)
            novel = last_x <= t - novel_gap
            S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x = _cusum(
                t, novel, active, S, cur, gen_ep, gen_cd, nextgen, resume, s_ep, s_cd, ep_x, cd_x,
                gain, decay, alarm, refractory)
        s_ev = _victim(t, s_last, s_ep, s_cd, S, valid_slot, slot, stale, suspect, MODE, BLOCK_K)
        cold = miss & (n < Kl)
        s = tl.where(cold, n, s_ev)
        sel = (slot == s[None, :]) & miss[None, :]
        blk = tl.where(sel, x[None, :], blk)
        s_last = tl.where(sel, t, s_last)
        if MODE == 1:
            s_ep = tl.where(sel, ep_x[None, :], s_ep)
            s_cd = tl.where(sel, cd_x[None, :], s_cd)
        n = n + cold.to(tl.int32)
        faults += miss.to(tl.int32)
        evictions += (miss & (cold == 0)).to(tl.int32)
        trace_ptr += B
        target_ptr += B
    tl.store(out_ptr + lanes, faults.to(tl.int64), mask=lmask)
    tl.store(out_ptr + bb + lanes, prefetches.to(tl.int64), mask=lmask)
    tl.store(out_ptr + 2 * bb + lanes, evictions.to(tl.int64), mask=lmask)


def block_shape(kmax: int, mode: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch in ``mode``."""
    return tile_shape(kmax, SMALL_BLOCK_K[mode], LARGE_BLOCK_K[mode], 64, 8, "the prefetch triton kernel handles")


def launch_prefetch(traces_tb: torch.Tensor, targets_tb: torch.Tensor, K: torch.Tensor, n_ids: int, kmax: int,
                    mode: int, prm: tuple) -> torch.Tensor:
    """Launcher on the ``[T, B]`` layout (contiguous int32, ids < n_ids): validates, allocates the scratch,
    picks the shape and grid.  Returns int64 ``[3, B]``: faults, prefetches, evictions."""
    T, B = check_tb(traces_tb)
    if check_tb(targets_tb) != (T, B):
        raise ValueError(f"targets_tb must be [T, B] = {(T, B)}, got {tuple(targets_tb.shape)}")
    if T >= 1 << 29:
        raise ValueError(f"the prefetch triton kernel handles T < 2**29, got {T}")
    dev = traces_tb.device
    BK, BB, warps = block_shape(kmax, mode)
    last = torch.full((n_ids, B), FAR_PAST, dtype=torch.int32, device=dev)
    scratch = torch.full((n_ids if mode == M_ADAPTIVE else 1, 2, B), -1, dtype=torch.int64, device=dev)
    out = torch.empty((3, B), dtype=torch.int64, device=dev)
    _prefetch_kernel[(triton.cdiv(B, BB),)](traces_tb, targets_tb, K, scratch, last, out, B, T, *prm,
                                            MODE=mode, BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    return out


def serve(traces: torch.Tensor, targets: torch.Tensor, K: torch.Tensor, eviction: str,
          options: dict | None = None) -> torch.Tensor:
    """Serve B lanes with their prefetch targets on the traces' device; the CPU path's exact counts.

    Args:
        traces: integer ``[B, T]`` dense block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        targets: integer ``[B, T]``: the block prefetched right before request t, -1 for none
            (:func:`gpupage.core.prefetch.full_targets`).
        K: int64 ``[B]`` cache sizes.  eviction: ``lru`` or ``adaptive`` (``options``: its constants).
    Returns:
        int64 ``[B, 3]``: faults, prefetches, evictions.  Host reads: ``max(K)`` and the largest id.
    """
    if eviction not in MODES:
        raise ValueError(f"the prefetch kernel evicts with {', '.join(MODES)}, got {eviction!r}")
    prm = resolve_params(options if eviction == "adaptive" else None)
    B, T = traces.shape
    K = K.to(device=traces.device, dtype=torch.int64).clamp(max=max(T, 1)).contiguous()
    n_ids = max(int(traces.max()), int(targets.max()), 0) + 1 if traces.numel() else 1
    if n_ids >= 1 << 31:
        raise ValueError(f"the prefetch kernel takes dense ids below 2**31, got {n_ids - 1}")
    out = launch_prefetch(traces.to(torch.int32).t().contiguous(), targets.to(torch.int32).t().contiguous(), K,
                          n_ids, int(K.max()), MODES[eviction], prm)
    return out.t().contiguous()


_SIG = {"trace_ptr": "*i32", "target_ptr": "*i32", "k_ptr": "*i64", "scratch_ptr": "*i64", "last_ptr": "*i32",
        "out_ptr": "*i64", "B": "i32", "T": "i32", "novel_gap": "i32", "gain": "i32", "decay": "i32", "alarm": "i32",
        "refractory": "i32", "stale": "i32", "suspect": "i32"}
# Every specialisation `serve` can launch, for scripts/compile_kernels.py.
AOT_SPECS = [aot_spec(f"prefetch {name} K<={bk}", _prefetch_kernel, _SIG, block_shape(bk, mode), MODE=mode)
             for name, mode in MODES.items() for bk in SMALL_BLOCK_K[mode] + LARGE_BLOCK_K[mode]]
