"""``gpupage.simulate``: the one entry point every command and experiment goes through."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from . import rng
from .policies import Policy, get_policy
from gpupage import limits

BACKENDS = ("auto", "cpu", "triton")
# Ids up to this bound index the block -> slot map directly; larger ones are remapped.
DIRECT_ID_LIMIT = 1 << 22


@dataclass
class SimResult:
    faults: torch.Tensor
    """int64 [B]: faults per lane (every miss, compulsory ones included)."""
    requests: torch.Tensor
    """int64 [B]: non-pad requests per lane."""
    hits: torch.Tensor | None = None
    """bool [B, T]: request t of lane b hit (False on pads)."""
    victims: torch.Tensor | None = None
    """int64 [B, T]: block evicted at request t, or -1."""

    @property
    def fault_rate(self) -> torch.Tensor:
        return self.faults.double() / self.requests.clamp(min=1).double()


def simulate(traces, policy: str | Policy, K, backend: str = "auto", seed=0, return_hits: bool = False,
             options: dict | None = None) -> SimResult:
    """Simulate B independent caches, one per trace.

    Args:
        traces: integer tensor ``[B, T]`` (or ``[T]``) of block ids >= 0; -1 pads.
        policy: a name from ``POLICIES`` (``belady, lru, lfu, fifo, random, fixed``).
        K: cache size in blocks, an int or an int tensor ``[B]`` (one per lane); integral floats are
            accepted, others are an error; sizes beyond T act as T (nothing is ever evicted).
        backend: ``auto`` (Triton kernels for CUDA tensors, else CPU), ``cpu`` or ``triton``.
        seed: int or ``[B]`` seeds for the Random policy (see ``rng.lane_keys``).
        return_hits: also return ``hits`` and ``victims``.
        options: policy-specific options (e.g. prediction noise), passed to its implementation.
    """
    pol = policy if isinstance(policy, Policy) else get_policy(policy)
    traces = torch.as_tensor(_signed(traces))
    if traces.dim() == 1:
        traces = traces.unsqueeze(0)
    if traces.dim() != 2 or traces.dtype.is_floating_point or traces.dtype == torch.bool:
        raise ValueError(f"traces must be an integer tensor [B, T], got {traces.dtype} {tuple(traces.shape)}")
    B, T = traces.shape
    if B == 0:
        raise ValueError("traces has no lanes")
    if pol.needs_future and T > limits.MAX_REQUESTS:
        raise ValueError(f"{pol.name} reads next-use times, held in int32: traces longer than "
                         f"{limits.MAX_REQUESTS} requests are not supported, got {T}")
    Ks = _per_lane_k(K, B, T)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "triton" if traces.is_cuda else "cpu"
    keys = rng.lane_keys(_seed_arg(seed), B)
    if backend == "triton":
        if not traces.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)")
        requests = (traces >= 0).sum(dim=1).to(torch.int64)
        run = pol.implementation("triton")
        out = run(traces, pol, Ks.to(traces.device), torch.from_numpy(keys).to(traces.device), return_hits, options)
        return SimResult(out.faults, requests.to(out.faults.device), out.hits, out.victims)
    with limits.work_threads(B):
        return _simulate_cpu(traces, pol, Ks, keys, return_hits, options)


def _simulate_cpu(traces, pol, Ks, keys, return_hits, options):
    from .cpu import count_requests, lane_chunks

    B, T = traces.shape
    kept = traces.device.type == "cpu" and traces.is_contiguous() and traces.dtype in (torch.int32, torch.int64)
    what = f"simulating {B} lanes x {T} requests ({pol.name})"
    # the input itself is already held: only what this call adds is estimated
    limits.require(limits.simulate_bytes(B, T, return_hits, copied=0 if kept else 8), what)
    arr = traces.detach().cpu().contiguous().numpy()
    if arr.dtype not in (np.int32, np.int64):
        arr = arr.astype(np.int32 if arr.dtype.itemsize < 4 else np.int64)
    dense, uniq = dense_ids(arr)
    n_ids = int(dense.max()) + 1 if dense.size else 1
    chunks = lane_chunks(B)
    limits.require(limits.simulate_bytes(B, T, return_hits, remapped=uniq is not None, chunks=chunks,
                                         n_ids=n_ids, kmax=int(Ks.max())), what)
    requests = torch.from_numpy(count_requests(dense, chunks))
    faults, hits, victims = pol.implementation("cpu")(dense, pol, Ks.numpy(), keys, n_ids, return_hits, options)
    res = SimResult(torch.from_numpy(faults), requests)
    if return_hits:
        if uniq is not None:
            victims = np.where(victims >= 0, uniq[np.maximum(victims, 0)], -1)
        res.hits = torch.from_numpy(hits.view(np.bool_))
        res.victims = torch.from_numpy(victims)
    return res


def dense_ids(arr: np.ndarray):
    """Remap sparse ids to 0..n-1 (pads stay -1) when they are too large to index.

    Returns (dense array, unique ids or None when no remap was needed)."""
    if arr.size == 0:
        return arr, None
    lo = int(arr.min())
    if lo < -1:
        raise ValueError(f"block ids must be >= 0 (-1 pads), got {lo}")
    if int(arr.max()) < DIRECT_ID_LIMIT:
        return arr, None
    # a few million requests at a time: the temporaries stay small beside the dense copy
    limits.require(arr.size * 4, f"remapping {arr.size} sparse block ids")
    flat, step = arr.reshape(-1), 1 << 22
    uniq = np.unique(np.concatenate([np.unique(flat[i:i + step]) for i in range(0, flat.size, step)]))
    uniq = uniq[np.searchsorted(uniq, 0):]  # pads are not ids
    dense = np.empty(arr.shape, dtype=np.int32 if uniq.size < 2**31 else np.int64)
    out = dense.reshape(-1)
    for i in range(0, flat.size, step):
        chunk = flat[i:i + step]
        out[i:i + step] = np.where(chunk >= 0, np.searchsorted(uniq, chunk), -1)
    return dense, uniq


def _per_lane_k(K, B: int, T: int) -> torch.Tensor:
    """K as int64 [B], clamped to T: a lane never holds more than T blocks, so a larger K changes nothing.

    Integers of any size and integral floats are accepted; anything else is a one-line ValueError."""
    cap = max(T, 1)

    def clamp(k):  # Python and numpy integers meet int64 only after clamping
        if isinstance(k, (bool, np.bool_)):
            raise ValueError(f"K must be an integer, got {k!r}")
        return min(int(k), cap) if isinstance(k, (int, np.integer)) and k >= 1 else k

    if isinstance(K, np.ndarray) and K.dtype.kind == "u":
        K = np.minimum(K, cap).astype(np.int64)
    K = [clamp(k) for k in K] if isinstance(K, (list, tuple)) else clamp(K) if not isinstance(K, torch.Tensor) else K
    try:
        Kt = K.cpu() if isinstance(K, torch.Tensor) else torch.as_tensor(np.asarray(K))
    except (OverflowError, RuntimeError, TypeError, ValueError):
        raise ValueError(f"K must be an integer or a [B] tensor of integers >= 1, got {K!r}") from None
    if Kt.dtype == torch.bool or Kt.is_complex() or not (Kt.dtype.is_floating_point or Kt.dtype.is_signed
                                                        or Kt.dtype == torch.uint8):
        raise ValueError(f"K must be an integer or a [B] tensor of integers >= 1, got {Kt.dtype}")
    if Kt.dtype.is_floating_point:
        Kt = Kt.double()
        if not bool(torch.isfinite(Kt).all()) or bool((Kt != Kt.round()).any()):
            raise ValueError(f"K must be integral, got {Kt.tolist() if Kt.dim() else Kt.item()}")
        Kt = Kt.clamp(max=float(cap))
    Ks = Kt.to(torch.int64)
    if Ks.dim() == 0:
        Ks = Ks.expand(B)
    if Ks.shape != (B,):
        raise ValueError(f"K must be an int or a [B]={B} tensor, got shape {tuple(Ks.shape)}")
    if B and int(Ks.min()) < 1:
        raise ValueError(f"K must be >= 1, got {int(Ks.min())}")
    return Ks.clamp(max=cap).contiguous()


def _signed(traces):
    """Unsigned numpy ids as a signed type torch computes with: a view of the same width when every id fits it."""
    if not (isinstance(traces, np.ndarray) and traces.dtype.kind == "u"):
        return traces
    if traces.dtype.itemsize < 4:
        return traces.astype(np.int32)
    signed = np.dtype(f"i{traces.dtype.itemsize}")
    if traces.size and int(traces.max()) > np.iinfo(signed).max:
        if signed == np.int32:
            return traces.astype(np.int64)
        raise ValueError(f"block ids must be below 2**63, got {int(traces.max())}")
    return np.ascontiguousarray(traces).view(signed)


def _seed_arg(seed):
    if isinstance(seed, torch.Tensor):
        return seed.cpu().numpy() if seed.dim() else int(seed)
    return seed
