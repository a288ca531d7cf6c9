"""The launch convention every simulation kernel shares (scoring, baselines, adaptive).

A program owns ``BLOCK_B`` lanes and a ``[BLOCK_K, BLOCK_B]`` register tile
per slot field; traces are read and hits/victims written as ``[T, B]`` rows
(lanes fastest), then transposed back to ``[B, T]`` with the original ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass
class KernelResult:
    faults: torch.Tensor
    """int64 [B]"""
    hits: torch.Tensor | None
    """bool [B, T] or None"""
    victims: torch.Tensor | None
    """int64 [B, T] (-1 = none) or None"""


# the output arguments every kernel ends its non-constexpr signature with (scripts/compile_kernels.py)
OUT_SIG = {"faults_ptr": "*i64", "hits_ptr": "*i8", "victims_ptr": "*i32", "B": "i32", "T": "i32", "want_hits": "i32"}


@triton.jit
def _lane_tile(k_ptr, B, BLOCK_K: tl.constexpr, BLOCK_B: tl.constexpr):
    """This program's lanes, their mask and K, the slot column and which slots each lane has."""
    lanes = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    lmask = lanes < B
    Kl = tl.load(k_ptr + lanes, mask=lmask, other=1).to(tl.int32)
    slot = tl.arange(0, BLOCK_K)[:, None]
    return lanes, lmask, Kl, slot, slot < Kl[None, :]


@triton.jit
def _out_rows(hits_ptr, victims_ptr, lanes, lmask, want_hits, BLOCK_B: tl.constexpr):
    """Row-0 pointers of the lanes' hits and victims, and the mask their stores take
    (64-bit addresses however large B*T: the rows advance by B each step)."""
    # (a tensor on both sides: the interpreter turns bool & scalar into int32)
    store = lmask & ((tl.zeros([BLOCK_B], tl.int32) + want_hits) != 0)
    return hits_ptr + lanes, victims_ptr + lanes, store


@triton.jit
def _lookup(blk, x):
    """Hit test of one request per lane: ``x`` [BB] block (<0: pad), ``blk`` [BK, BB]
    resident blocks.  Returns (active, eq [BK, BB] the hit slot, hit, miss)."""
    active = x >= 0
    eq = (blk == x[None, :]) & active[None, :]
    hit = tl.max(eq.to(tl.int32), axis=0) > 0
    return active, eq, hit, active & (hit == 0)


@triton.jit
def _store_step(hits_ptr, victims_ptr, hit, victim, store, B):
    """Store one request's hit and victim per lane (where ``store``); returns both row pointers moved on by B."""
    tl.store(hits_ptr, hit.to(tl.int8), mask=store)
    tl.store(victims_ptr, victim, mask=store)
    return hits_ptr + B, victims_ptr + B


def tile_shape(kmax: int, small: tuple, large: tuple, slots_per_warp: int, max_warps: int, who: str):
    """(BLOCK_K, BLOCK_B, num_warps) for the largest per-lane K of a launch: the first
    ``small`` BLOCK_K that fits runs 32 lanes on one warp (a thread per lane), the
    first ``large`` one a lane per program over ``BLOCK_K / slots_per_warp`` warps
    (1 to ``max_warps``).  ``who`` names the kernels in the error beyond ``large[-1]``."""
    if kmax > large[-1]:
        raise ValueError(f"{who} K <= {large[-1]}, got K={kmax}; use backend='cpu'")
    for bk in small:
        if kmax <= bk:
            return bk, 32, 1
    for bk in large:
        if kmax <= bk:
            return bk, 1, max(1, min(max_warps, bk // slots_per_warp))
    raise AssertionError(kmax)


def aot_spec(name: str, fn, signature: dict, shape: tuple, **constexprs) -> dict:
    """One ``AOT_SPECS`` entry of a kernel launched with ``shape`` = (BLOCK_K, BLOCK_B, num_warps)."""
    BK, BB, warps = shape
    return dict(name=name, fn=fn, signature=signature, constexprs=dict(constexprs, BLOCK_K=BK, BLOCK_B=BB),
                num_warps=warps)


def check_tb(traces_tb: torch.Tensor):
    """(T, B) of a launcher's trace, which must be contiguous int32 ``[T, B]``."""
    if traces_tb.dtype != torch.int32 or not traces_tb.is_contiguous():
        raise ValueError("traces_tb must be contiguous int32 [T, B]")
    return traces_tb.shape


def alloc_outputs(T: int, B: int, return_hits: bool, device):
    """(faults int64 [B], hits int8, victims int32): ``[T, B]``, or 1-element
    placeholders the kernel never writes when hits are not wanted."""
    shape = (T, B) if return_hits else (1,)
    return (torch.empty(B, dtype=torch.int64, device=device), torch.empty(shape, dtype=torch.int8, device=device),
            torch.empty(shape, dtype=torch.int32, device=device))


def launch_outputs(faults, hits, victims, return_hits: bool):
    """A launcher's return: (faults, hits | None, victims | None)."""
    return faults, (hits if return_hits else None), (victims if return_hits else None)


def kernel_result(faults, hits_tb, victims_tb, uniq) -> KernelResult:
    """The ``[B, T]`` result of a launch: hits/victims (``[T, B]`` or None) transposed
    back, victims mapped to the original ids ``uniq`` (None: ids were kept)."""
    if hits_tb is None:
        return KernelResult(faults, None, None)
    victims = victims_tb.t().long()
    if uniq is not None:
        victims = torch.where(victims >= 0, uniq[victims.clamp(min=0)], -1)
    return KernelResult(faults, hits_tb.t().bool().contiguous(), victims.contiguous())


def as_int32_ids(traces: torch.Tensor):
    """(int32 traces, unique ids or None): int32 input is used as is; wider ids
    are cast when they fit (one host read of the max) and remapped otherwise."""
    if traces.dtype == torch.int32:
        return traces, None
    if traces.dtype in (torch.int8, torch.int16, torch.uint8):
        return traces.to(torch.int32), None
    lo, hi = int(traces.min()), int(traces.max())
    if lo < -1:
        raise ValueError(f"block ids must be >= 0 (-1 pads), got {lo}")
    if hi < 2**31:
        return traces.to(torch.int32), None
    return remap_ids(traces)


def remap_ids(traces: torch.Tensor):
    """(int32 traces with ids remapped to 0..n-1 in sorted order (-1 pads), the n unique ids)."""
    valid = traces >= 0
    uniq, inverse = torch.unique(traces[valid], return_inverse=True)
    dense = torch.full(traces.shape, -1, dtype=torch.int32, device=traces.device)
    dense[valid] = inverse.to(torch.int32)
    return dense, uniq
