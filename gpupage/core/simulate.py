"""``gpupage.simulate``: the one entry point every command and experiment goes through."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from numba import njit, prange

from . import limits, rng
from .cpu import count_requests, lane_chunks
from .policies import Policy, get_policy

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
    warmup: int = 0
    """Requests before this index filled the cache but are not in ``faults`` or ``requests``."""
    traces: torch.Tensor | None = field(default=None, repr=False)
    """The simulated traces, read once by ``compulsory`` (on first use: most callers never ask)."""

    @property
    def fault_rate(self) -> torch.Tensor:
        return self.faults.double() / self.requests.clamp(min=1).double()

    @property
    def compulsory(self) -> torch.Tensor:
        """int64 [B]: counted faults on a block's first request (a miss under every policy)."""
        if "_compulsory" not in self.__dict__:
            self.__dict__["_compulsory"] = first_touches(self.traces, self.warmup).to(self.faults.device)
        return self.__dict__["_compulsory"]

    @property
    def non_compulsory(self) -> torch.Tensor:
        """int64 [B]: counted faults on blocks requested before (in the warm-up too)."""
        return self.faults - self.compulsory


def simulate(traces, policy: str | Policy, K, backend: str = "auto", seed=0, return_hits: bool = False,
             options: dict | None = None, warmup=0) -> SimResult:
    """Simulate B independent caches, one per trace.

    Args:
        traces: integer tensor ``[B, T]`` (or ``[T]``) of block ids >= 0; -1 pads.
        policy: a name from ``POLICIES`` (``belady, lru, lfu, fifo, random, fixed``).
        K: cache size in blocks, an int or an int tensor ``[B]`` (one per lane); integral floats are
            accepted, others are an error; sizes beyond T act as T (nothing is ever evicted).
        backend: ``auto`` (Triton kernels for CUDA tensors, else CPU; a policy without a kernel runs
            on the CPU path and its results come back on the traces' device), ``cpu`` or ``triton``.
        seed: int or ``[B]`` seeds for the Random policy (see ``rng.lane_keys``).
        return_hits: also return ``hits`` and ``victims``.
        options: policy-specific options (e.g. prediction noise), passed to its implementation; a key
            the policy does not read (``Policy.options``) is an error.
        warmup: requests that fill the cache without being counted: an int, or a fraction of T in
            (0, 1) (rounded down).  ``faults`` and ``requests`` count requests ``warmup..T-1``;
            ``hits`` and ``victims`` still cover every request.  A warm-up of T or more is an error.
    """
    pol = policy if isinstance(policy, Policy) else get_policy(policy)
    traces = as_traces(traces)
    B, T = traces.shape
    if B == 0:
        raise ValueError("traces has no lanes")
    if pol.needs_future and T > limits.MAX_REQUESTS:
        raise ValueError(f"{pol.name} reads next-use times, held in int32: traces longer than "
                         f"{limits.MAX_REQUESTS} requests are not supported, got {T}")
    Ks = _per_lane_k(K, B, T)
    w = resolve_warmup(warmup, T)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "auto":  # a policy without a kernel runs on the CPU path: the same integers
        backend = "triton" if traces.is_cuda and pol.triton else "cpu"
    if backend == "triton" and not pol.triton:
        raise ValueError(f"policy {pol.name!r} has no Triton kernel yet; use backend='cpu' or 'auto'")
    keys = rng.lane_keys(_seed_arg(seed), B)
    if backend == "triton" and not traces.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)")
    # Belady (and any policy reading the future) decides the warm-up with the whole trace in view, so
    # its counted faults come from its hits; an online policy's first w decisions are those of a run
    # on the first w requests alone, so one more run of w requests replaces a [B, T] hits array.
    from_hits = bool(w) and pol.needs_future
    foreign = sorted(set(options or {}) - set(pol.options))
    if foreign:
        raise ValueError(f"policy {pol.name!r} reads no option {', '.join(map(repr, foreign))}; "
                         f"it reads {', '.join(pol.options) if pol.options else 'none'}")
    res = _run(traces, pol, Ks, keys, backend, return_hits or from_hits, options)
    res.traces = traces
    if w:
        res.warmup = w
        if from_hits:
            res.faults = (~res.hits[:, w:] & (traces[:, w:] >= 0)).sum(dim=1)
            if not return_hits:
                res.hits = res.victims = None
        else:
            res.faults = res.faults - _run(traces[:, :w], pol, Ks.clamp(max=w), keys, backend, False, options).faults
        res.requests = _lane_requests(traces, w).to(res.faults.device)
    return res


def _shared(traces) -> bool:
    """Every lane is one trace (``trace.expand(B, T)``, as for a curve): per-lane passes over it run once."""
    return traces.shape[0] > 1 and traces.stride(0) == 0


def _lane_requests(traces, start: int = 0) -> torch.Tensor:
    """int64 [B]: non-pad requests of each lane from index ``start`` on."""
    if _shared(traces):
        return _lane_requests(traces[:1], start).repeat(traces.shape[0])
    part = traces[:, start:]
    if part.is_cuda:
        return (part >= 0).sum(dim=1).to(torch.int64)
    # torch sums a bool [B, T] by first casting all of it to int64 (8 bytes a request, more than the
    # trace); the numba count reads the (possibly strided, warm-up-sliced) view with no [B, T] temporary
    return torch.from_numpy(count_requests(part.numpy(), lane_chunks(part.shape[0])))


def _run(traces, pol, Ks, keys, backend, return_hits, options) -> SimResult:
    requests = _lane_requests(traces)
    if backend == "triton":
        run = pol.implementation("triton")
        out = run(traces, pol, Ks.to(traces.device), torch.from_numpy(keys).to(traces.device), return_hits, options)
        return SimResult(out.faults, requests.to(out.faults.device), out.hits, out.victims)
    with limits.work_threads(traces.shape[0]):
        res = _simulate_cpu(traces, pol, Ks, keys, requests, return_hits, options)
    if traces.is_cuda:
        for name in ("faults", "requests", "hits", "victims"):
            if getattr(res, name) is not None:
                setattr(res, name, getattr(res, name).to(traces.device))
    return res


def resolve_warmup(warmup, T: int) -> int:
    """A warm-up as a number of requests: an integer as given, a number in (0, 1) as that fraction
    of the T requests (rounded down).  One-line ValueError when it is negative, neither, or not
    shorter than the trace (nothing would be counted)."""
    if isinstance(warmup, (int, np.integer)) and not isinstance(warmup, (bool, np.bool_)):
        w = int(warmup)
    elif isinstance(warmup, (float, np.floating)) and 0 < warmup < 1:
        w = int(warmup * T)
    elif isinstance(warmup, (float, np.floating)) and float(warmup).is_integer():  # 1e3, 0.0
        w = int(warmup)
    else:
        raise ValueError(f"warm-up must be a number of requests or a fraction in (0, 1), got {warmup!r}")
    if w < 0:
        raise ValueError(f"warm-up must be >= 0, got {warmup!r}")
    if w and w >= T:
        raise ValueError(f"warm-up of {w} requests leaves nothing to count: the trace has {T}")
    return w


def first_touches(traces, warmup: int = 0) -> torch.Tensor:
    """int64 [B]: per lane, the requests at ``warmup`` or later whose block was never requested before."""
    traces = torch.as_tensor(traces)
    if traces.dim() == 1:
        traces = traces.unsqueeze(0)
    if _shared(traces):
        return first_touches(traces[:1], warmup).repeat(traces.shape[0])
    if traces.is_cuda:  # a block's first request is the first of its run after a stable sort by block
        s, idx = torch.sort(traces, dim=1, stable=True)
        first = s >= 0
        first[:, 1:] &= s[:, 1:] != s[:, :-1]
        return (first & (idx >= warmup)).sum(dim=1)
    arr, _ = dense_ids(traces.detach().cpu().contiguous().numpy())
    out = np.zeros(arr.shape[0], dtype=np.int64)
    if arr.size:
        _first_touches(arr, int(arr.max()) + 1, warmup, out, lane_chunks(arr.shape[0]))
    return torch.from_numpy(out)


@njit(parallel=True, cache=True)
def _first_touches(traces, n_ids, warmup, out, nchunks):
    B, T = traces.shape
    for c in prange(nchunks):
        seen = np.full(max(n_ids, 1), -1, dtype=np.int64)  # lane that last saw the block
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            for t in range(T):
                x = traces[b, t]
                if x >= 0 and seen[x] != b:
                    seen[x] = b
                    if t >= warmup:
                        out[b] += 1


def _simulate_cpu(traces, pol, Ks, keys, requests, return_hits, options):
    B, T = traces.shape
    shared = _shared(traces)
    rows = 1 if shared else B  # shared lanes read one [1, T] copy: no [B, T] one, and it stays in cache
    on_cpu = traces.device.type == "cpu"
    # the input itself is already held: only what this call adds is estimated (a contiguous copy, then int32)
    copied = (0 if on_cpu and traces.is_contiguous() else traces.element_size()) + (
        0 if traces.dtype == torch.int32 else 4)
    what = f"simulating {B} lanes x {T} requests ({pol.name})"
    limits.require(limits.simulate_bytes(B, T, return_hits) + rows * T * copied, what)
    traces = traces.detach().cpu()
    arr = (traces[:1] if shared else traces).contiguous().numpy()
    dense, uniq = dense_ids(arr)
    n_ids = int(dense.max()) + 1 if dense.size else 1
    limits.require(limits.simulate_bytes(B, T, return_hits, remapped=uniq is not None, chunks=lane_chunks(B),
                                         n_ids=n_ids, kmax=int(Ks.max())), what)
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

    Returns (dense array, unique ids or None when no remap was needed).  The dense array is int32 (int64
    only past 2**31 distinct ids), a copy of another type: every numba loop over ids compiles once."""
    if arr.size == 0:
        return arr.astype(np.int32, copy=False), None
    lo = int(arr.min())
    if lo < -1:
        raise ValueError(f"block ids must be >= 0 (-1 pads), got {lo}")
    if int(arr.max()) < DIRECT_ID_LIMIT:
        return arr.astype(np.int32, copy=False), None
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


def as_traces(traces) -> torch.Tensor:
    """An integer tensor ``[B, T]`` from a tensor or array of block ids (``[T]`` is one lane); else a ValueError."""
    tr = torch.as_tensor(_signed(traces))
    if tr.dim() == 1:
        tr = tr.unsqueeze(0)
    if tr.dim() != 2 or tr.dtype.is_floating_point or tr.dtype == torch.bool:
        raise ValueError(f"traces must be an integer tensor [B, T], got {tr.dtype} {tuple(tr.shape)}")
    return tr


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
