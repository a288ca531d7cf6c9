"""Triton simulation kernels equal the CPU path (and the naive reference) exactly.

Runs on CUDA when present, otherwise under TRITON_INTERPRET=1 (set by
conftest.py); shapes stay small because the interpreter is slow.
"""

import os

import numpy as np
import pytest
import torch

from gpupage.core.policies import get_policy
from gpupage.core.reference import naive_simulate, next_uses
from gpupage.core.rng import lane_keys
from gpupage.core.simulate import simulate

pytestmark = [
    pytest.mark.interpreter,
    pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                       reason="needs CUDA or TRITON_INTERPRET=1"),
]
DEV = "cuda" if torch.cuda.is_available() else "cpu"
CORE = ("belady", "lru", "lfu", "fifo", "random", "fixed")  # the scoring kernel's policies


def _batch(gen, B, T, M, pad_prob=0.0):
    tr = gen.integers(0, M, size=(B, T))
    tr[gen.random((B, T)) < pad_prob] = -1
    return torch.from_numpy(tr.astype(np.int32))


def _assert_same(traces, policy, K, seed=0):
    cpu = simulate(traces, policy, K, backend="cpu", seed=seed, return_hits=True)
    tri = simulate(traces.to(DEV), policy, torch.as_tensor(K), backend="triton", seed=seed, return_hits=True)
    assert torch.equal(tri.faults.cpu(), cpu.faults), (policy, tri.faults, cpu.faults)
    assert torch.equal(tri.hits.cpu(), cpu.hits), policy
    assert torch.equal(tri.victims.cpu(), cpu.victims), policy
    return cpu


@pytest.mark.parametrize("policy", CORE)
def test_small_k_mixed_lanes_match_cpu_and_naive(policy):
    # 37 lanes: a partly padded second tile; per-lane K of 1, odd sizes, 64 and K >= distinct blocks; -1 pads
    gen = np.random.default_rng(3)
    B, T, M = 37, 90, 80
    traces = _batch(gen, B, T, M, pad_prob=0.1)
    traces[5, :] = torch.from_numpy(gen.integers(0, 6, size=T))  # 6 distinct blocks, K >= 6 below
    K = torch.tensor([1, 3, 5, 7, 64, 6, 13, 2, 33, 17] * 3 + [1, 2, 3, 4, 5, 6, 64])
    cpu = _assert_same(traces, policy, K, seed=9)
    faults_only = simulate(traces.to(DEV), policy, K, backend="triton", seed=9)
    assert faults_only.hits is None and torch.equal(faults_only.faults.cpu(), cpu.faults)
    keys = lane_keys(9, B)
    for b in (0, 4, 5, 8):
        f, h, v = naive_simulate(traces[b].tolist(), policy, int(K[b]), int(keys[b]))
        assert f == int(cpu.faults[b]) and h == cpu.hits[b].tolist() and v == cpu.victims[b].tolist()


@pytest.mark.parametrize("case", range(12))
def test_random_configurations(case):
    gen = np.random.default_rng(100 + case)
    policy = CORE[case % len(CORE)]
    B, T, M = int(gen.integers(1, 40)), int(gen.integers(1, 80)), int(gen.integers(1, 90))
    traces = _batch(gen, B, T, M, pad_prob=float(gen.choice([0.0, 0.2])))
    _assert_same(traces, policy, torch.from_numpy(gen.integers(1, 70, size=B)), seed=case)


@pytest.mark.parametrize("policy", CORE)
def test_each_small_block_k(policy):
    gen = np.random.default_rng(4)
    traces = _batch(gen, 3, 40, 24)
    for K in (1, 9, 20):  # BLOCK_K 8, 16, 32
        _assert_same(traces, policy, K, seed=K)


@pytest.mark.parametrize("policy", CORE)
def test_degenerate_shapes(policy):
    _assert_same(torch.tensor([[7]], dtype=torch.int32), policy, 1)  # B = T = K = 1
    _assert_same(torch.tensor([[-1]], dtype=torch.int32), policy, 1)  # a pad only
    _assert_same(torch.tensor([[2, 2, 3, 2]]), policy, 1000)  # K far above T; int64 ids cast to int32


@pytest.mark.parametrize("policy", CORE)
def test_large_k_path(policy):
    gen = np.random.default_rng(5)
    traces = _batch(gen, 2, 140, 260, pad_prob=0.05)
    _assert_same(traces, policy, torch.tensor([70, 130]), seed=2)  # BLOCK_K 256, one lane per program


def test_large_k_4096_path():
    gen = np.random.default_rng(6)
    traces = _batch(gen, 1, 1100, 1400)
    _assert_same(traces, "lru", 1030)  # BLOCK_K 4096


@pytest.mark.parametrize("policy", ["lru", "belady", "random"])
def test_sparse_int64_ids_are_remapped(policy):
    gen = np.random.default_rng(7)
    ids = np.array([3, 2**40, 2**33 + 5, 17, 2**31, 9], dtype=np.int64)
    traces = torch.from_numpy(ids[gen.integers(0, len(ids), size=(3, 30))])
    traces[1, 4] = -1
    _assert_same(traces, policy, torch.tensor([2, 3, 4]))


def test_k_beyond_large_path_is_a_clear_error():
    from kernels.simulate import MAX_K, block_shape

    with pytest.raises(ValueError, match="backend='cpu'"):
        block_shape(MAX_K + 1)


@pytest.mark.parametrize("code_name", ["lfu", "belady"])
def test_aux_keys_order_like_the_contract(code_name):
    """The precomputed per-request keys sort requests exactly like the contract's
    (count, t) for LFU and (-next_use, t) for Belady (plain torch, no kernel)."""
    from kernels.simulate import aux_keys

    gen = np.random.default_rng(8)
    traces = _batch(gen, 4, 60, 7, pad_prob=0.1)
    keys = aux_keys(traces, get_policy(code_name).code)
    for b in range(4):
        tr = traces[b].tolist()
        if code_name == "belady":
            nxt = next_uses(tr)
            want = [(-nxt[t], t) for t in range(len(tr))]
        else:
            seen = {}
            want = []
            for t, x in enumerate(tr):
                seen[x] = seen.get(x, 0) + 1
                want.append((seen[x], t))
        live = [t for t, x in enumerate(tr) if x >= 0]
        by_key = sorted(live, key=lambda t: int(keys[b, t]))
        assert by_key == sorted(live, key=lambda t: want[t])
