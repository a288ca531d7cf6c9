"""The prefetch Triton kernel (LRU and adaptive eviction) equals the CPU path exactly.

Runs on CUDA when present, otherwise under TRITON_INTERPRET=1 (set by conftest.py); shapes stay small
because the interpreter is slow.
"""

import os

import numpy as np
import pytest
import torch

from gpupage.core.prefetch import make_hints, simulate_prefetch
from gpupage.core.traces import ZipfParams, zipf_traces

pytestmark = [
    pytest.mark.interpreter,
    pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                       reason="needs CUDA or TRITON_INTERPRET=1"),
]
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _assert_same(traces, K, rule, eviction, **kw):
    cpu = simulate_prefetch(traces, K, rule, eviction, backend="cpu", **kw)
    tri = simulate_prefetch(traces.to(DEV), K if isinstance(K, int) else K.to(DEV), rule, eviction,
                            backend="triton", **{k: v.to(DEV) if isinstance(v, torch.Tensor) else v
                                                 for k, v in kw.items()})
    for name in ("faults", "prefetches", "evictions"):
        assert torch.equal(getattr(tri, name).cpu(), getattr(cpu, name)), (rule, eviction, name)
    return cpu


@pytest.mark.parametrize("eviction", ["lru", "adaptive"])
@pytest.mark.parametrize("case", range(3))
def test_kernel_equals_cpu_on_random_small_batches(eviction, case):
    gen = np.random.default_rng(case)
    B, T, M = (1, 7, 3), (40, 37, 60), (5, 9, 30)
    traces = gen.integers(0, M[case], size=(B[case], T[case]))
    traces[gen.random(traces.shape) < 0.1 * case] = -1  # pads mid-trace too
    traces = torch.from_numpy(traces.astype(np.int32))
    K = torch.from_numpy(gen.integers(1, 10, size=B[case]))  # per-lane K, K = 1 included
    for L, eps in ((1, 0.0), (3, 0.3), (T[case] + 1, 1.0)):
        hints = make_hints(traces, L, eps, M[case], seed=case)
        _assert_same(traces, K, "follow_hint", eviction, hints=hints, L=L, lam_fetch=0.3)
    _assert_same(traces, K, "never", eviction)
    pos = torch.from_numpy(gen.integers(0, 3, size=T[case]))
    _assert_same(traces, K, "next_in_call", eviction, pos_in_call=pos)


@pytest.mark.parametrize("eviction", ["lru", "adaptive"])
def test_kernel_equals_cpu_on_zipf_with_phase_changes_and_large_k(eviction):
    # T past adaptive's alarm and refractory windows, K past the one-warp tile (one lane per program)
    traces = zipf_traces(ZipfParams(M=40, W=12, shift=150, T=450), seed=[7, 8])
    hints = make_hints(traces, 4, 0.1, 40, seed=[7, 8])
    for K in (8, 40):
        _assert_same(traces, K, "follow_hint", eviction, hints=hints, L=4)
    # a single-lane adaptive with tuned constants, as options reach the kernel
    if eviction == "adaptive":
        _assert_same(traces[:1], 5, "follow_hint", eviction, hints=hints[:1], L=4, options={"alarm": 4, "stale": 20})


def test_kernel_refuses_what_it_does_not_serve():
    traces = torch.zeros(1, 4, dtype=torch.int32)
    with pytest.raises(ValueError, match="prefetch kernel"):
        simulate_prefetch(traces, 2, "never", "lfu", backend="triton")
    with pytest.raises(ValueError, match="prefetch kernel"):
        simulate_prefetch(traces, 2, "lookahead", None, L=2, backend="triton")
