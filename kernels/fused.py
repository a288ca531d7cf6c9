"""Fused generation + simulation: non-stationary Zipf traces (and their
beta-perturbations) drawn inside the kernel and simulated in the same pass.

A program owns 32 lanes, one per thread (as the small-K path of
:mod:`kernels.simulate`).  Per lane and phase it rebuilds the working set with
a partial Fisher-Yates over 0..M-1 kept as a sparse map of at most W
overwritten positions (row i of the map holds the position written at step i;
the latest matching row wins), then per request draws the Zipf rank (number of
host-computed integer CDF thresholds <= the draw), applies Knuth's selection
sampling for the perturbation and runs the simulation step.  Every draw is the
CPU generator's draw at the same (stream, position), so the traces are
bit-identical to :func:`gpupage.core.traces.zipf_traces` / :func:`~gpupage.core.traces.perturb`
and a sweep of online policies never materialises ``[B, T]``.

LFU's global counts live in a zeroed ``[M, B]`` int32 scratch (one scattered
load and store per request).  Belady needs the future: its lanes are generated
in chunks into ``[T, B]`` (MODE none) and simulated by :mod:`kernels.simulate`.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from gpupage.core import rng as cpu_rng
from gpupage.core.policies import BELADY, get_policy
from gpupage.core.traces import ZipfParams, _batch_size, hamming_count

from .rng import draw, stream_key, uniform_below
from .simulate import (M_AUX, M_FIFO, M_FIXED, M_LRU, M_RANDOM, MODE_NAMES, MODE_OF, SMALL_BLOCK_K, _cache_init,
                       _sim_step, aux_keys, launch_simulate)

M_NONE = 5  # generate (and emit) only
FUSED_W = 16  # fused simulation: working set, thresholds and cache all in registers without spilling
GEN_BLOCK_W = (16, 64)  # generation only (MODE none): W up to 64
LFU_MAX_T = 46340  # fused LFU packs (count, t) as count * T + t in int32
LFU_MAX_COUNTS = 1 << 28  # fused LFU's [M, B] int32 count scratch: at most 1 GiB
BLOCK_B = 32


def num_warps(block_w: int) -> int:
    """One warp (a lane per thread) up to W = 16; the [64, 32] working-set tiles of W <= 64 spread
    over 4 warps, where one warp spilled on sm_90."""
    return 1 if block_w <= FUSED_W else 4


@triton.jit
def _lookup(jpos, jval, p, row):
    """perm[p] of the sparse Fisher-Yates map: the latest row whose position is p, else p."""
    latest = tl.max(tl.where(jpos == p[None, :], row, -1), axis=0)
    val = tl.sum(tl.where(row == latest[None, :], jval, 0), axis=0)
    return tl.where(latest >= 0, val, p)


@triton.jit
def _zipf_sim_kernel(key_ptr, k_ptr, thr_ptr, cnt_ptr, faults_ptr, out_ptr,
                     B, T, M, W, shift, d, emit,
                     MODE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_B: tl.constexpr):
    """Lanes ``[B]`` with keys ``key_ptr``; ``thr_ptr`` int64 [W-1] Zipf thresholds;
    ``cnt_ptr`` int32 [M, B] zeroed (LFU only); ``out_ptr`` int32 [T, B] written
    when ``emit``; ``d`` positions to perturb per lane (0: none)."""
    pid = tl.program_id(0)
    lanes = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lmask = lanes < B
    key = tl.load(key_ptr + lanes, mask=lmask, other=0)
    wkey = stream_key(key, 1)  # STREAM_WORKING_SET
    zkey = stream_key(key, 2)  # STREAM_ZIPF
    pkey = stream_key(key, 3)  # STREAM_PERTURB_POS
    vkey = stream_key(key, 4)  # STREAM_PERTURB_VALUE
    rkey = stream_key(key, 7)  # STREAM_RANDOM_POLICY
    row = tl.arange(0, BLOCK_W)[:, None]
    # thresholds past W-1 never count: rank = #(thr <= h) over the first W-1 rows
    thr = tl.load(thr_ptr + row, mask=row < W - 1, other=0).to(tl.uint32)
    thr_valid = row < W - 1
    ws = tl.zeros([BLOCK_W, BLOCK_B], tl.int32)
    chosen = tl.zeros([BLOCK_B], tl.int32)
    Kl, slot, blk, keys, n = _cache_init(k_ptr, lanes, lmask, BLOCK_K, BLOCK_B)
    faults = tl.zeros([BLOCK_B], tl.int32)
    emit_mask = lmask & ((Kl * 0 + emit) != 0)
    out_ptr += lanes
    for t in range(T):
        tv = tl.zeros([BLOCK_B], tl.int32) + t
        if t % shift == 0:
            # new working set: partial Fisher-Yates with draws at positions phase*W + i
            jpos = tl.full([BLOCK_W, BLOCK_B], -1, tl.int32)
            jval = tl.zeros([BLOCK_W, BLOCK_B], tl.int32)
            base = (tl.zeros([BLOCK_B], tl.int64) + t // shift) * W
            for i in range(W):
                iv = tl.zeros([BLOCK_B], tl.int32) + i
                j = iv + uniform_below(draw(wkey, base + i), M - iv)
                vj = _lookup(jpos, jval, j, row)
                vi = _lookup(jpos, jval, iv, row)
                ws = tl.where(row == i, vj[None, :], ws)
                jpos = tl.where(row == i, j[None, :], jpos)
                jval = tl.where(row == i, vi[None, :], jval)
        h = draw(zkey, tv)
        rank = tl.sum(((thr <= h[None, :]) & thr_valid).to(tl.int32), axis=0)
        x = tl.sum(tl.where(row == rank[None, :], ws, 0), axis=0)
        if d > 0:
            # Knuth's selection sampling: exactly d positions per lane
            u = uniform_below(draw(pkey, tv), T - tv)
            flip = (chosen < d) & (u < d - chosen)
            chosen += flip.to(tl.int32)
            v = uniform_below(draw(vkey, tv), tl.zeros([BLOCK_B], tl.int32) + (M - 1))
            x = tl.where(flip, tl.where(v >= x, v + 1, v), x)
        tl.store(out_ptr, x, mask=emit_mask)
        out_ptr += B
        if MODE != 5:
            if MODE == 2:
                cp = cnt_ptr + x.to(tl.int64) * B + lanes
                c = tl.load(cp, mask=lmask, other=0) + 1
                tl.store(cp, c, mask=lmask)
                kv = c * T + tv  # (count, t) order; < 2**31 for T <= LFU_MAX_T
            else:
                kv = tv
            blk, keys, n, hit, miss, victim = _sim_step(x, kv, blk, keys, n, Kl, rkey, slot, MODE)
            faults += miss.to(tl.int32)
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


def fusable(params: ZipfParams, mode: int, kmax: int, B: int) -> bool:
    """Whether ``mode`` runs fused (else: generated [T, B] chunks + kernels.simulate)."""
    lfu_ok = params.T <= LFU_MAX_T and params.M * B <= LFU_MAX_COUNTS
    return (mode in (M_LRU, M_FIFO, M_AUX, M_RANDOM, M_FIXED) and params.W <= FUSED_W
            and kmax <= SMALL_BLOCK_K[-1] and (mode != M_AUX or lfu_ok))


def launch_zipf(params: ZipfParams, keys: torch.Tensor, mode: int, K: torch.Tensor | None, kmax: int, d: int,
                emit: bool):
    """Launcher: validates, allocates and runs one fused launch on ``keys``' device.

    Returns (faults int64 [B] or None for MODE none, traces int32 [T, B] or None)."""
    if params.W > GEN_BLOCK_W[-1]:
        raise ValueError(f"the Zipf kernel handles W <= {GEN_BLOCK_W[-1]}, got W={params.W}; "
                         "use gpupage.core.traces.zipf_traces and simulate")
    if d > 0 and params.M < 2:
        raise ValueError(f"perturbation needs M >= 2 blocks, got {params.M}")
    dev = keys.device
    B, T = keys.shape[0], params.T
    if mode == M_NONE:
        BK, BW = SMALL_BLOCK_K[0], next(bw for bw in GEN_BLOCK_W if params.W <= bw)
    else:
        if not fusable(params, mode, kmax, B):
            raise ValueError(f"no fused kernel for W={params.W}, K={kmax}, T={params.T} in mode {mode}")
        BK, BW = next(bk for bk in SMALL_BLOCK_K if kmax <= bk), FUSED_W
    thr = torch.from_numpy(np.append(params.thresholds(), 0)).to(dev)  # never empty
    cnt = torch.zeros((params.M, B) if mode == M_AUX else (1,), dtype=torch.int32, device=dev)
    faults = torch.zeros(B, dtype=torch.int64, device=dev)
    out = torch.empty((T, B) if emit else (1,), dtype=torch.int32, device=dev)
    if K is None:
        K = torch.ones(B, dtype=torch.int64, device=dev)
    grid = (triton.cdiv(B, BLOCK_B),)
    _zipf_sim_kernel[grid](keys, K, thr, cnt, faults, out, B, T, params.M, params.W, params.shift, d, int(emit),
                           MODE=mode, BLOCK_K=BK, BLOCK_W=BW, BLOCK_B=BLOCK_B, num_warps=num_warps(BW))
    return (None if mode == M_NONE else faults), (out if emit else None)


def zipf_simulate(params: ZipfParams, seed, policy, K, beta: float = 0.0, batch: int | None = None,
                  device=None, return_traces: bool = False, chunk_lanes: int | None = None):
    """Faults of Zipf (optionally beta-perturbed) traces generated inside the kernel.

    Args:
        params: the :class:`~gpupage.core.traces.ZipfParams` family.
        seed: int (lanes 0..batch-1) or a sequence of B seeds, as :func:`gpupage.core.traces.zipf_traces`;
            the same lane keys drive the perturbation and the Random policy.
        policy: name or Policy; online policies run fused when K <= 64 and W <= 16 (LFU: T <= 46340
            and M * B <= 2**28 for its count scratch);
            Belady and the rest run on ``[T, B]`` chunks of ``chunk_lanes`` lanes generated by the same
            kernel (W <= 64) and simulated by :mod:`kernels.simulate`.
        K: int or ``[B]`` per-lane cache sizes.  beta: fraction of positions perturbed (needs M >= 2).
        device: defaults to CUDA when available (else CPU, for TRITON_INTERPRET=1).
        return_traces: also return the generated traces int32 ``[B, T]``.
    Returns:
        faults int64 ``[B]`` (and traces int32 ``[B, T]``), equal to
        ``simulate(perturb(zipf_traces(params, seed, batch), beta, M, seed), policy, K, seed=seed)``.
    """
    pol = policy if hasattr(policy, "code") else get_policy(policy)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    B = _batch_size(seed, batch)
    seeds = seed.cpu().numpy() if isinstance(seed, torch.Tensor) else seed
    keys = torch.from_numpy(cpu_rng.lane_keys(seeds, B)).to(dev)
    Ks = torch.as_tensor(K, dtype=torch.int64).to(dev)
    Ks = (Ks.expand(B) if Ks.dim() == 0 else Ks).contiguous()
    if Ks.shape != (B,):
        raise ValueError(f"K must be an int or a [B]={B} tensor, got shape {tuple(Ks.shape)}")
    if int(Ks.min()) < 1:
        raise ValueError(f"K must be >= 1, got {int(Ks.min())}")
    Ks = Ks.clamp(max=params.T)  # K >= T behaves as K = T
    kmax = int(Ks.max())
    d = hamming_count(beta, params.T)
    if pol.code not in MODE_OF:
        raise ValueError(f"policy {pol.name!r} has no Zipf kernel; simulate zipf_traces(...) instead")
    mode = MODE_OF[pol.code]
    if pol.code != BELADY and fusable(params, mode, kmax, B):
        faults, out = launch_zipf(params, keys, mode, Ks, kmax, d, return_traces)
        return (faults, out.t().contiguous()) if return_traces else faults
    # materialised path: chunks of lanes generated into [T, B] and simulated there
    chunk = chunk_lanes or max(BLOCK_B, (1 << 25) // params.T)
    faults, traces = [], []
    for lo in range(0, B, chunk):
        hi = min(B, lo + chunk)
        _, tb = launch_zipf(params, keys[lo:hi], M_NONE, None, 1, d, True)
        aux = aux_keys(tb.t(), pol.code).t().contiguous() if mode == M_AUX else None
        f, _, _ = launch_simulate(tb, aux, mode, Ks[lo:hi], keys[lo:hi], kmax, False)
        faults.append(f)
        if return_traces:
            traces.append(tb.t())
    faults = torch.cat(faults)
    return (faults, torch.cat(traces).contiguous()) if return_traces else faults


# Every specialisation zipf_simulate can launch, for scripts/compile_kernels.py.
_SIG = {"key_ptr": "*i64", "k_ptr": "*i64", "thr_ptr": "*i64", "cnt_ptr": "*i32", "faults_ptr": "*i64",
        "out_ptr": "*i32", "B": "i32", "T": "i32", "M": "i32", "W": "i32", "shift": "i32", "d": "i32", "emit": "i32"}
AOT_SPECS = [
    dict(name=f"zipf {MODE_NAMES[m] if m != M_AUX else 'lfu'} K<={bk} W<={FUSED_W}", fn=_zipf_sim_kernel,
         signature=_SIG, constexprs=dict(MODE=m, BLOCK_K=bk, BLOCK_W=FUSED_W, BLOCK_B=BLOCK_B), num_warps=1)
    for m in (M_LRU, M_FIFO, M_AUX, M_RANDOM, M_FIXED) for bk in SMALL_BLOCK_K
] + [
    dict(name=f"zipf none W<={bw}", fn=_zipf_sim_kernel, signature=_SIG,
         constexprs=dict(MODE=M_NONE, BLOCK_K=SMALL_BLOCK_K[0], BLOCK_W=bw, BLOCK_B=BLOCK_B), num_warps=num_warps(bw))
    for bw in GEN_BLOCK_W
]
