"""Batched cache simulation on CUDA: one Triton kernel, two shapes.

Each program owns a ``[BLOCK_K, BLOCK_B]`` tile of cache state (block id and an
integer eviction key per slot, per lane) held in registers, and runs the whole
time loop.  Two specialisations of the same kernel:

* **small K** (K <= 64): ``BLOCK_B = 32`` lanes, one warp; lanes are the
  fastest axis, so each thread owns one lane's whole cache column and every
  reduction over slots stays inside a thread.  A warp's trace load is 32
  consecutive int32 of a ``[T, B]`` row: one 128-byte transaction.
* **large K** (K up to 16384): ``BLOCK_B = 1``, the slots of one lane spread
  over a CTA of 1-16 warps, so a hit costs K/threads compares per thread and
  one CTA reduction; a miss adds the victim search.

Policies map to five kernel modes: the key a request writes is ``t`` (LRU on
every access, FIFO on insertion only), or a per-request integer precomputed on
the device from the trace (LFU: rank of ``(count so far, t)`` within the lane;
Belady: ``-next_use``, or ``INT32_MIN + t`` when never used again), and the
victim is the slot of the smallest key.  Keys are distinct among resident
blocks, so this is the contract's (priority, last access) order exactly.
Random draws its slot from ``STREAM_RANDOM_POLICY``; Fixed never evicts.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gpupage.core.policies import BELADY, FIFO, FIXED, LFU, LRU, RANDOM

from .launch import (OUT_SIG, KernelResult, _lookup, _out_rows, _store_step, alloc_outputs, aot_spec, as_int32_ids,
                     check_tb, kernel_result, launch_outputs, tile_shape)
from .rng import draw, stream_key, uniform_below

# kernel modes (constexpr MODE; the jitted code compares MODE with these literals)
M_LRU, M_FIFO, M_AUX, M_RANDOM, M_FIXED = range(5)
MODE_OF = {LRU: M_LRU, FIFO: M_FIFO, LFU: M_AUX, BELADY: M_AUX, RANDOM: M_RANDOM, FIXED: M_FIXED}
MODE_NAMES = {M_LRU: "lru", M_FIFO: "fifo", M_AUX: "aux", M_RANDOM: "random", M_FIXED: "fixed"}

SMALL_BLOCK_K = (8, 16, 32, 64)
LARGE_BLOCK_K = (256, 1024, 4096, 16384)
MAX_K = LARGE_BLOCK_K[-1]
INT32_MIN = -(2**31)


@triton.jit
def _cache_init(k_ptr, lanes, lmask, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """Empty caches of the lanes: (K [BB], slot [BK, 1], blk, keys [BK, BB], filled n [BB])."""
    Kl = tl.load(k_ptr + lanes, mask=lmask, other=1).to(tl.int32)
    slot = tl.arange(0, BLOCK_K)[:, None]
    blk = tl.full([BLOCK_K, BLOCK_B], -1, tl.int32)
    # slots at or beyond a lane's K keep the largest key: never the argmin
    keys = tl.full([BLOCK_K, BLOCK_B], 2147483647, tl.int32)
    return Kl, slot, blk, keys, tl.zeros([BLOCK_B], tl.int32)


@triton.jit
def _sim_hit(x, kv, blk, keys, MODE: tl.constexpr):
    """Hit test of one request per lane: ``x`` [BB] block (<0: pad), ``kv`` [BB]
    the key it writes (Random: the time t), ``blk``/``keys`` [BK, BB] cache state.
    Returns (keys refreshed on a hit, hit, miss)."""
    active, eq, hit, miss = _lookup(blk, x)
    if MODE == 0:  # LRU: every access refreshes the key
        keys = tl.where(eq, kv[None, :], keys)
    if MODE == 2:  # LFU / Belady: precomputed per-request key
        keys = tl.where(eq, kv[None, :], keys)
    return keys, hit, miss


@triton.jit
def _sim_miss(x, kv, miss, blk, keys, n, Kl, rkey, slot, MODE: tl.constexpr):
    """Insertion of the missing lanes' blocks: the lowest empty slot (``n`` [BB]
    filled) or the victim's.  Returns (blk, keys, n, victim or -1)."""
    cold = miss & (n < Kl)
    if MODE == 4:  # Fixed: a full cache never changes
        evict = miss & (Kl < 0)
        s = n
    else:
        evict = miss & (n >= Kl)
        if MODE == 3:
            s_ev = uniform_below(draw(rkey, kv), Kl)
        else:
            s_ev = tl.argmin(keys, axis=0).to(tl.int32)
        s = tl.where(cold, n, s_ev)
    sel = (slot == s[None, :]) & (cold | evict)[None, :]
    victim = tl.sum(tl.where(sel, blk, 0), axis=0)
    victim = tl.where(evict, victim, -1)
    blk = tl.where(sel, x[None, :], blk)
    keys = tl.where(sel, kv[None, :], keys)
    n = n + cold.to(tl.int32)
    return blk, keys, n, victim


@triton.jit
def _sim_step(x, kv, blk, keys, n, Kl, rkey, slot, MODE: tl.constexpr):
    """One request per lane (see _sim_hit, _sim_miss).  Returns (blk, keys, n, hit, miss, victim)."""
    keys, hit, miss = _sim_hit(x, kv, blk, keys, MODE)
    blk, keys, n, victim = _sim_miss(x, kv, miss, blk, keys, n, Kl, rkey, slot, MODE)
    return blk, keys, n, hit, miss, victim


@triton.jit
def _simulate_kernel(trace_ptr, aux_ptr, k_ptr, key_ptr, faults_ptr, hits_ptr, victims_ptr,
                     B, T, want_hits,
                     MODE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """trace/aux/hits/victims are ``[T, B]`` (lane fastest), so each step's loads
    and stores of a tile of lanes are contiguous."""
    pid = tl.program_id(0)
    lanes = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lmask = lanes < B
    Kl, slot, blk, keys, n = _cache_init(k_ptr, lanes, lmask, BLOCK_K, BLOCK_B)
    faults = tl.zeros([BLOCK_B], tl.int32)
    rkey = stream_key(tl.load(key_ptr + lanes, mask=lmask, other=0), 7)  # STREAM_RANDOM_POLICY
    hits_ptr, victims_ptr, store = _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B)
    trace_ptr += lanes
    aux_ptr += lanes
    for t in range(T):
        x = tl.load(trace_ptr, mask=lmask, other=-1)
        if MODE == 2:
            kv = tl.load(aux_ptr, mask=lmask, other=0)
        else:
            kv = tl.zeros([BLOCK_B], tl.int32) + t
        if BLOCK_B == 1:
            # large K: one lane per CTA; most requests hit, and a hit skips the
            # CTA-wide victim search
            keys, hit, miss = _sim_hit(x, kv, blk, keys, MODE)
            victim = tl.full([BLOCK_B], -1, tl.int32)
            if tl.max(miss.to(tl.int32), axis=0) > 0:
                blk, keys, n, victim = _sim_miss(x, kv, miss, blk, keys, n, Kl, rkey, slot, MODE)
        else:
            blk, keys, n, hit, miss, victim = _sim_step(x, kv, blk, keys, n, Kl, rkey, slot, MODE)
        faults += miss.to(tl.int32)
        hits_ptr, victims_ptr = _store_step(hits_ptr, victims_ptr, hit, victim, store, B)
        trace_ptr += B
        aux_ptr += B
    tl.store(faults_ptr + lanes, faults.to(tl.int64), mask=lmask)


def block_shape(kmax: int):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch."""
    return tile_shape(kmax, SMALL_BLOCK_K, LARGE_BLOCK_K, 256, 16, "the triton backend handles")


def _group_by_block(traces: torch.Tensor):
    """One sort of (x, t) per lane groups each block's requests in time order:
    (order, block and time of each sorted position), all int64 ``[B, T]``."""
    B, T = traces.shape
    tt = torch.arange(T, device=traces.device, dtype=torch.int64).expand(B, T)
    comp, order = torch.sort(traces.long() * T + tt, dim=1)
    block = torch.div(comp, T, rounding_mode="floor")
    return order, block, comp - block * T


def next_use(traces: torch.Tensor) -> torch.Tensor:
    """int64 ``[B, T]`` on the traces' device: the index of the next request of the same block
    (-1 when none; pads get their next pad).  traces int32 ``[B, T]`` (-1 pads)."""
    order, block, when = _group_by_block(traces)
    nxt_sorted = torch.full_like(when, -1)
    nxt_sorted[:, :-1] = torch.where(block[:, 1:] == block[:, :-1], when[:, 1:], -1)
    return torch.empty_like(nxt_sorted).scatter_(1, order, nxt_sorted)


def aux_keys(traces: torch.Tensor, code: int) -> torch.Tensor:
    """Per-request int32 keys for LFU and Belady, computed on the traces' device.

    traces int32 [B, T] (-1 pads).  LFU: rank of (count of x in trace[:t+1], t)
    within the lane.  Belady: -next_use(t), or INT32_MIN + t if x never recurs.
    """
    B, T = traces.shape
    tt = torch.arange(T, device=traces.device, dtype=torch.int64).expand(B, T)
    if code == BELADY:
        nu = next_use(traces)
        return torch.where(nu >= 0, -nu, INT32_MIN + tt).to(torch.int32)
    # LFU: occurrence number = position in the sorted run of equal blocks
    order, block, _ = _group_by_block(traces)
    start = torch.ones_like(block, dtype=torch.bool)
    start[:, 1:] = block[:, 1:] != block[:, :-1]
    run_start = torch.cummax(torch.where(start, tt, 0), dim=1).values  # tt: sorted positions too
    count_sorted = tt - run_start + 1
    count = torch.empty_like(count_sorted).scatter_(1, order, count_sorted)
    order2 = torch.sort(count * T + tt, dim=1).indices
    rank = torch.empty_like(order2).scatter_(1, order2, tt)
    return rank.to(torch.int32)


def launch_simulate(traces_tb: torch.Tensor, aux_tb: torch.Tensor | None, mode: int, K: torch.Tensor,
                    keys: torch.Tensor, kmax: int, return_hits: bool):
    """Launcher on the ``[T, B]`` layout: validates, allocates, picks the block
    shape and grid.  Returns (faults int64 [B], hits int8 [T, B] | None,
    victims int32 [T, B] | None)."""
    T, B = check_tb(traces_tb)
    BK, BB, warps = block_shape(kmax)
    faults, hits, victims = alloc_outputs(T, B, return_hits, traces_tb.device)
    aux = aux_tb if aux_tb is not None else traces_tb
    grid = (triton.cdiv(B, BB),)
    _simulate_kernel[grid](traces_tb, aux, K, keys, faults, hits, victims, B, T, int(return_hits),
                           MODE=mode, BLOCK_K=BK, BLOCK_B=BB, num_warps=warps)
    return launch_outputs(faults, hits, victims, return_hits)


def simulate(traces: torch.Tensor, policy, K: torch.Tensor, keys: torch.Tensor, return_hits: bool = False,
             options: dict | None = None) -> KernelResult:
    """Simulate B caches on the traces' device (the ``Policy.triton`` contract).

    Args:
        traces: integer ``[B, T]`` block ids (-1 pads), CUDA (or CPU under TRITON_INTERPRET=1).
        policy: a scoring :class:`~gpupage.core.policies.Policy` (code in BELADY..FIXED).
        K: int64 ``[B]`` per-lane cache sizes on the same device.
        keys: int64 ``[B]`` lane keys (``gpupage.core.rng.lane_keys``), read by Random.
        return_hits: also return hits bool ``[B, T]`` and victims int64 ``[B, T]``.
    Returns:
        :class:`KernelResult` on the traces' device.

    Layout: the launcher transposes the trace to ``[T, B]`` (one extra read and
    write of 4 bytes/request) so that every step of the kernel loads a
    contiguous row; hits/victims are written ``[T, B]`` and transposed back.
    The only host read is ``max(K)``, which picks the specialisation.
    """
    if policy.code not in MODE_OF:
        raise ValueError(f"policy {policy.name!r} has no scoring-kernel mode")
    traces, uniq = as_int32_ids(traces)
    B, T = traces.shape
    K = K.to(device=traces.device, dtype=torch.int64)
    # K >= T behaves exactly like K = T (the cache never fills past T blocks)
    K = K.clamp(max=max(T, 1)).contiguous()
    kmax = int(K.max())
    mode = MODE_OF[policy.code]
    aux = aux_keys(traces, policy.code).t().contiguous() if mode == M_AUX else None
    faults, hits, victims = launch_simulate(traces.t().contiguous(), aux, mode, K,
                                            keys.to(traces.device, torch.int64).contiguous(), kmax, return_hits)
    return kernel_result(faults, hits, victims, uniq)


# Every specialisation `simulate` can launch, for scripts/compile_kernels.py.
_SIM_SIG = {"trace_ptr": "*i32", "aux_ptr": "*i32", "k_ptr": "*i64", "key_ptr": "*i64", **OUT_SIG}
AOT_SPECS = [
    aot_spec(f"simulate {MODE_NAMES[m]} K<={bk}", _simulate_kernel, _SIM_SIG, block_shape(bk), MODE=m)
    for m in MODE_NAMES for bk in SMALL_BLOCK_K + LARGE_BLOCK_K
]
