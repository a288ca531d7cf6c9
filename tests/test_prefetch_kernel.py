"""The prefetch Triton kernel (LRU, LFU, FIFO and adaptive eviction, the lookahead oracle) equals the CPU path
exactly.

Runs on CUDA when present, otherwise under TRITON_INTERPRET=1 (set by conftest.py); shapes stay small
because the interpreter is slow.
"""

import json
import os
import random

import numpy as np
import pytest
import torch

import gpupage
from gpupage.core import prefetch
from gpupage.core.prefetch import make_hints, simulate_prefetch
from gpupage.core.traces import ZipfLatent, ZipfParams, zipf_traces

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
        assert torch.equal(getattr(tri, name).cpu(), getattr(cpu, name)), (rule, eviction, K, kw.get("L"), name)
    return cpu


def _padded(traces, gen, rate):
    """The traces with pads mid-trace (rate of them) and a ragged tail per lane."""
    out = traces.clone()
    out[torch.from_numpy(gen.random(tuple(out.shape)) < rate)] = -1
    for b in range(out.shape[0]):
        out[b, out.shape[1] - int(gen.integers(0, out.shape[1] // 4 + 1)):] = -1
    return out


@pytest.mark.parametrize("eviction", ["lru", "lfu", "fifo", "adaptive"])
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
    traces = zipf_traces(ZipfParams(M=40, W=12, shift=100, T=280), seed=[7, 8])
    hints = make_hints(traces, 4, 0.1, 40, seed=[7, 8])
    for K in (8, 40):
        _assert_same(traces, K, "follow_hint", eviction, hints=hints, L=4)
    # a single-lane adaptive with tuned constants, as options reach the kernel
    if eviction == "adaptive":
        _assert_same(traces[:1], 5, "follow_hint", eviction, hints=hints[:1], L=4, options={"alarm": 4, "stale": 20})


@pytest.mark.parametrize("eviction", ["lfu", "fifo"])
@pytest.mark.parametrize("K", [1, 3, 8, 17, 64])
def test_lfu_and_fifo_kernels_equal_cpu_across_cache_sizes_windows_and_noise(eviction, K):
    # M = 96 blocks so that K = 64 still evicts; K = 17 runs the widest one-warp tile (32 slots), K = 64 one
    # lane per program
    gen = np.random.default_rng(K)
    traces = _padded(zipf_traces(ZipfParams(M=96, W=70, shift=60, T=110), seed=[K, K + 1, K + 2]), gen, 0.05)
    Ks = torch.tensor([K, max(1, K // 2), K])  # per-lane K
    for L, eps in ((1, 0.0), (4, 0.1), (16, 0.4)):
        hints = make_hints(traces, L, eps, 96, seed=K)
        res = _assert_same(traces, Ks, "follow_hint", eviction, hints=hints, L=L)
        assert int(res.evictions.sum()) > 0  # the victim search ran


@pytest.mark.parametrize("K", [1, 3, 8, 17, 64])
def test_oracle_kernel_equals_cpu_across_cache_sizes_and_windows(K):
    gen = np.random.default_rng(100 + K)
    # short phases of a small working set over many blocks: K = 64 still evicts, ranks change every 5 requests
    traces, latent = zipf_traces(ZipfParams(M=300, W=12, shift=5, T=120), seed=[K, K + 1], return_latent=True)
    traces = _padded(traces, gen, 0.05)
    Ks = torch.tensor([K, max(1, K - 2)])  # per-lane K
    # with the working set's ranks, and in LRU order without them
    for L, lat in ((1, latent), (4, latent), (16, latent), (0, None)):
        res = _assert_same(traces, Ks, "lookahead", None, L=L, latent=lat)
        assert int(res.evictions.sum()) > 0


def test_oracle_kernel_on_many_short_phases_and_repeated_ranks():
    # a hand-made latent: phases of 7 requests not aligned with the pads, blocks entering and leaving the
    # working set while resident, a block listed twice in one working set (its last rank wins), W > K
    gen = np.random.default_rng(5)
    B, T, M, W, shift = 3, 60, 12, 5, 7
    traces = _padded(torch.from_numpy(gen.integers(0, M, size=(B, T)).astype(np.int32)), gen, 0.1)
    ws = torch.from_numpy(gen.integers(0, M, size=(B, -(-T // shift) + 1, W)).astype(np.int32))
    latent = ZipfLatent(ws, shift)
    for K, L in ((1, 1), (3, 4), (4, 16), (12, 2)):
        _assert_same(traces, torch.tensor([K, K, max(1, K - 1)]), "lookahead", None, L=L, latent=latent)
        _assert_same(traces, K, "lookahead", None, L=0, latent=latent)


def test_kernel_equals_cpu_on_a_file_trace(tmp_path):
    # a Mooncake-like file: calls of block lists sharing prefixes, dense ids, no latent state
    r = random.Random(9)
    prefixes = [[r.randrange(300) for _ in range(r.randint(2, 8))] for _ in range(12)]
    calls = [r.choice(prefixes)[:r.randint(1, 8)] + [r.randrange(300) for _ in range(r.randint(0, 4))]
             for _ in range(20)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"timestamp": i, "hash_ids": c}) + "\n" for i, c in enumerate(calls)))
    ft = gpupage.read_trace(str(path))
    traces, pos = torch.from_numpy(ft.ids).unsqueeze(0), torch.from_numpy(ft.meta["pos_in_call"])
    n_ids = int(traces.max()) + 1
    for K in (3, 17):
        for eviction in ("lru", "lfu", "fifo", "adaptive"):
            _assert_same(traces, K, "next_in_call", eviction, pos_in_call=pos)
            hints = make_hints(traces, 4, 0.2, n_ids, seed=K)
            _assert_same(traces, K, "follow_hint", eviction, hints=hints, L=4)
        for L in (0, 16):
            _assert_same(traces, K, "lookahead", None, L=L)


def test_kernel_refuses_what_it_does_not_serve(monkeypatch):
    traces = torch.zeros(1, 4, dtype=torch.int32)
    monkeypatch.setattr(prefetch, "TRITON_EVICTIONS", ("lru", "adaptive"))  # as an eviction without a kernel
    with pytest.raises(ValueError, match="prefetch kernel serves lru, adaptive eviction and the oracle, not 'lfu'"):
        simulate_prefetch(traces, 2, "never", "lfu", backend="triton")
    from kernels.prefetch import serve

    with pytest.raises(ValueError, match="prefetch kernel evicts with"):
        serve(traces, traces, torch.ones(1, dtype=torch.int64), "belady")


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_oracle_refuses_a_latent_state_that_does_not_cover_the_traces(backend):
    traces, latent = zipf_traces(ZipfParams(M=20, W=5, shift=10, T=30), seed=[1, 2], return_latent=True)
    with pytest.raises(ValueError, match="does not cover 1 traces of 30"):
        simulate_prefetch(traces[:1], 4, "lookahead", None, L=2, latent=latent, backend=backend)
    short = ZipfLatent(latent.working_sets[:, :2], latent.shift)
    with pytest.raises(ValueError, match="does not cover 2 traces of 30"):
        simulate_prefetch(traces, 4, "lookahead", None, L=2, latent=short, backend=backend)
