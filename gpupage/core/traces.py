"""Trace families, batched ``[B, T]`` and deterministic in (seed, lane).

Every generator is integer-only (see :mod:`gpupage.core.rng`), so the fused Triton
generator reproduces it bit for bit.  Traces are int32 (block ids < 2**31) to
keep big sweeps at 4 bytes a request.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np
import torch
from numba import njit, prange

from . import rng
from . import limits


@dataclass(frozen=True)
class ZipfParams:
    """Non-stationary Zipf family of the paper's App. B."""

    M: int = 64
    """Blocks in external memory."""
    alpha: float = 1.2
    """Zipf exponent over the working set's ranks."""
    W: int = 16
    """Working-set size, redrawn uniformly from the M blocks every ``shift`` steps."""
    shift: int = 500
    """Phase length in requests."""
    T: int = 5000
    """Trace length."""

    def __post_init__(self):
        if not 1 <= self.M <= limits.MAX_BLOCKS:
            raise ValueError(f"M must be in [1, {limits.MAX_BLOCKS}] (ids are int32), got {self.M}")
        if not 1 <= self.W <= self.M:
            raise ValueError(f"W must be in [1, M={self.M}], got {self.W}")
        if self.shift < 1:
            raise ValueError(f"shift must be >= 1, got {self.shift}")
        if not 1 <= self.T <= limits.MAX_REQUESTS:
            raise ValueError(f"T must be in [1, {limits.MAX_REQUESTS}], got {self.T}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha}")

    @property
    def phases(self) -> int:
        return -(-self.T // self.shift)

    def thresholds(self) -> np.ndarray:
        return rng.zipf_thresholds(self.W, self.alpha)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, overrides: dict) -> "ZipfParams":
        """The defaults with ``overrides``; an unknown name is a one-line ValueError."""
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown Zipf setting(s) {', '.join(map(str, unknown))}; "
                             f"choose from {', '.join(cls.__dataclass_fields__)}")
        return cls(**overrides)


@dataclass
class ZipfLatent:
    """Latent state of a Zipf batch: ``working_sets[b, p, r]`` is the block of
    Zipf rank r (0 = most popular) in phase p of lane b; phase of t is t // shift."""

    working_sets: torch.Tensor  # int32 [B, P, W]
    shift: int


@njit(inline="always", cache=True)
def _working_set(wkey, phase, M, W, perm, out):
    """Partial Fisher-Yates: out[r] = r-th draw without replacement from 0..M-1."""
    for i in range(M):
        perm[i] = i
    for i in range(W):
        h = rng.draw(wkey, phase * W + i)
        j = i + rng.uniform_below(h, M - i)
        out[i] = perm[j]
        perm[j] = perm[i]


@njit(parallel=True, cache=True)
def _zipf_kernel(keys, M, W, shift, T, thresholds, traces, working_sets):
    B = keys.shape[0]
    P = working_sets.shape[1]
    for b in prange(B):
        wkey = rng.stream_key(keys[b], rng.STREAM_WORKING_SET)
        zkey = rng.stream_key(keys[b], rng.STREAM_ZIPF)
        perm = np.empty(M, dtype=np.int64)
        ws = np.empty(W, dtype=np.int64)
        for p in range(P):
            _working_set(wkey, p, M, W, perm, ws)
            for r in range(W):
                working_sets[b, p, r] = ws[r]
            for t in range(p * shift, min(T, (p + 1) * shift)):
                h = rng.draw(zkey, t)
                rank = 0
                while rank < W - 1 and h >= thresholds[rank]:
                    rank += 1
                traces[b, t] = ws[rank]


def zipf_traces(params: ZipfParams, seed=0, batch: int | None = None, return_latent: bool = False):
    """Non-stationary Zipf traces.

    Args:
        seed: int (lanes 0..batch-1 of that seed) or a sequence of B seeds (one lane each).
        batch: B when ``seed`` is an int.
    Returns:
        traces int32 ``[B, T]``, and with ``return_latent`` a :class:`ZipfLatent`.
    """
    B = _batch_size(seed, batch)
    # the traces, the working sets, and each thread's permutation of the M blocks
    limits.require(4 * B * (params.T + params.phases * params.W) + 16 * min(B, limits.cpu_count()) * params.M,
                   f"Zipf traces ({B} lanes x {params.T} requests over {params.M} blocks)")
    keys = rng.lane_keys(seed, B)
    traces = np.empty((B, params.T), dtype=np.int32)
    ws = np.empty((B, params.phases, params.W), dtype=np.int32)
    with limits.work_threads(B):
        _zipf_kernel(keys, params.M, params.W, params.shift, params.T, params.thresholds(), traces, ws)
    out = torch.from_numpy(traces)
    if return_latent:
        return out, ZipfLatent(torch.from_numpy(ws), params.shift)
    return out


def hamming_count(beta: float, T: int) -> int:
    """floor(beta * T), exact for decimal betas such as 0.29 (float math gives 28 at T=100)."""
    return math.floor(Decimal(repr(float(beta))) * T)


@njit(parallel=True, cache=True)
def _perturb_kernel(keys, traces, d, M, out):
    B, T = traces.shape
    for b in prange(B):
        pkey = rng.stream_key(keys[b], rng.STREAM_PERTURB_POS)
        vkey = rng.stream_key(keys[b], rng.STREAM_PERTURB_VALUE)
        chosen = 0
        for t in range(T):
            orig = traces[b, t]
            out[b, t] = orig
            # Knuth's selection sampling: exactly d positions, uniformly, in one pass.
            if chosen < d and rng.uniform_below(rng.draw(pkey, t), T - t) < d - chosen:
                chosen += 1
                v = rng.uniform_below(rng.draw(vkey, t), M - 1)
                out[b, t] = v + 1 if v >= orig else v


def perturb(traces: torch.Tensor, beta: float, M: int, seed=0) -> torch.Tensor:
    """Flip exactly floor(beta*T) uniformly chosen positions of each lane to a
    uniformly random block of 0..M-1 other than the original (needs M >= 2)."""
    _check_fraction("beta", beta)
    if not 2 <= M <= limits.MAX_BLOCKS:
        raise ValueError(f"perturbation needs 2 <= M <= {limits.MAX_BLOCKS} blocks (ids are int32), got {M}")
    arr = _as_numpy(traces)
    keys = rng.lane_keys(seed, arr.shape[0])
    limits.require(arr.nbytes, f"perturbing {arr.shape[0]} lanes x {arr.shape[1]} requests")
    out = np.empty_like(arr)
    with limits.work_threads(arr.shape[0]):
        _perturb_kernel(keys, arr, hamming_count(beta, arr.shape[1]), M, out)
    return torch.from_numpy(out)


def perturbed_pairs(params: ZipfParams, beta: float, seed=0, batch: int | None = None):
    """(base, perturbed) Zipf traces with d_H(base, perturbed) = floor(beta*T) per lane."""
    base = zipf_traces(params, seed, batch)
    return base, perturb(base, beta, params.M, seed)


@njit(parallel=True, cache=True)
def _noise_kernel(keys, traces, threshold, M, out):
    B, T = traces.shape
    for b in prange(B):
        nkey = rng.stream_key(keys[b], rng.STREAM_NOISE)
        vkey = rng.stream_key(keys[b], rng.STREAM_NOISE_VALUE)
        for t in range(T):
            orig = traces[b, t]
            out[b, t] = orig
            if rng.draw(nkey, t) < threshold:
                v = rng.uniform_below(rng.draw(vkey, t), M - 1)
                out[b, t] = v + 1 if v >= orig else v


def retrieval_noise(traces: torch.Tensor, rho: float, M: int, seed=0) -> torch.Tensor:
    """Replace each request, independently with probability 1 - rho, by a wrong block of 0..M-1."""
    _check_fraction("rho", rho)
    if rho < 1 and not 2 <= M <= limits.MAX_BLOCKS:
        raise ValueError(f"retrieval noise needs 2 <= M <= {limits.MAX_BLOCKS} blocks (ids are int32), got {M}")
    arr = _as_numpy(traces)
    keys = rng.lane_keys(seed, arr.shape[0])
    limits.require(arr.nbytes, f"noising {arr.shape[0]} lanes x {arr.shape[1]} requests")
    out = np.empty_like(arr)
    with limits.work_threads(arr.shape[0]):
        _noise_kernel(keys, arr, rng.probability_threshold(1.0 - rho), max(M, 2), out)
    return torch.from_numpy(out)


def cyclic_traces(K: int, T: int, batch: int = 1) -> torch.Tensor:
    """Theorem 3's adversary: blocks 0..K in a cycle (every online policy's worst case)."""
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    limits.require(4 * batch * T, f"cyclic traces ({batch} lanes x {T} requests)")
    # the cycle's length is capped at T: a longer one repeats nothing either (and K + 1 may not fit int32)
    return (torch.arange(T, dtype=torch.int32) % min(K + 1, max(T, 1))).expand(batch, T).contiguous()


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _batch_size(seed, batch: int | None) -> int:
    if not isinstance(seed, (list, tuple, range)) and np.ndim(seed) == 0:  # a range is never made an array
        if batch is None or batch < 1:
            raise ValueError("an int seed needs batch >= 1")
        return batch
    n = len(seed)
    if batch is not None and batch != n:
        raise ValueError(f"got {n} seeds for batch {batch}")
    if n == 0:
        raise ValueError("no seeds given")
    return n


def _as_numpy(traces) -> np.ndarray:
    t = torch.as_tensor(traces)
    if t.dim() != 2:
        raise ValueError(f"traces must be [B, T], got shape {tuple(t.shape)}")
    return t.detach().cpu().contiguous().numpy()


def call_slice(trace, first: int, end: int):
    """Calls ``first .. end-1`` of a Mooncake :class:`~gpupage.core.io.FileTrace` as a trace of
    their own: ids renumbered densely in order of first appearance, ``meta`` sliced (``call``
    kept as the file's call index).  Replayed from an empty cache, this is how a held-out
    stretch of the service is judged."""
    from .io import FileTrace

    call = trace.meta.get("call")
    if call is None:
        raise ValueError(f"{trace.path}: a {trace.format} trace has no calls to slice (need the mooncake format)")
    ncalls = int(call[-1]) + 1
    if not 0 <= first < end <= ncalls:
        raise ValueError(f"calls {first}..{end - 1} are not a non-empty range of the trace's {ncalls} calls")
    sel = (call >= first) & (call < end)
    ids = trace.ids[sel]
    uniq, first_at, dense = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first_at, kind="stable")  # dense ids by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return FileTrace(rank[dense].astype(ids.dtype), trace.original[uniq[order]], trace.path, trace.format,
                     {k: v[sel] for k, v in trace.meta.items()})


def trace_windows(ids: np.ndarray, lanes: int, length: int, seed: int, starts: np.ndarray | None = None):
    """int32 [lanes, length]: windows of the request stream ``ids``, padded with -1.

    Lane b starts at ``starts[uniform_below(draw, len(starts))]`` with the draw of stream
    ``rng.STREAM_TRACE_WINDOWS`` of key (seed, b) (``starts`` default: every position), so a
    lane's window depends only on (seed, b).  A window running past the end is padded."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("trace_windows needs a non-empty 1-d request stream")
    if lanes < 1 or length < 1:
        raise ValueError(f"trace_windows needs lanes >= 1 and length >= 1, got {lanes}, {length}")
    starts = np.arange(max(ids.size - length, 0) + 1) if starts is None else np.asarray(starts, dtype=np.int64)
    keys = rng.lane_keys(int(seed), lanes)
    out = np.full((lanes, length), -1, dtype=np.int32)
    for b in range(lanes):
        h = int(rng.draw(rng.stream_key(int(keys[b]), rng.STREAM_TRACE_WINDOWS), 0))
        s = int(starts[rng.uniform_below(h, len(starts))])
        w = ids[s:s + length]
        out[b, :w.size] = w
    return out
