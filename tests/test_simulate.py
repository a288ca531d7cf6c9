"""The CPU backend against the plain Python reference, and the simulator's invariants."""

import numpy as np
import pytest
import torch

from gpupage.core import rng
from gpupage.core.policies import POLICIES, parse_policies
from gpupage.core.reference import naive_simulate
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, cyclic_traces, zipf_traces

CORE = ["belady", "lru", "lfu", "fifo", "random", "fixed"]


def _random_batch(gen, B, T, n_ids, pad_prob=0.0):
    tr = gen.integers(0, n_ids, size=(B, T))
    if pad_prob:
        tr[gen.random((B, T)) < pad_prob] = -1
    return torch.from_numpy(tr)


def _check_against_reference(traces, policy, K, seed):
    B = traces.shape[0]
    Ks = torch.as_tensor(K).expand(B) if np.ndim(K) == 0 else torch.as_tensor(K)
    res = simulate(traces, policy, Ks, backend="cpu", seed=seed, return_hits=True)
    keys = rng.lane_keys(seed, B)
    for b in range(B):
        f, h, v = naive_simulate(traces[b].tolist(), policy, int(Ks[b]), int(keys[b]))
        assert int(res.faults[b]) == f, (policy, b)
        assert res.hits[b].tolist() == h, (policy, b)
        assert res.victims[b].tolist() == v, (policy, b)


@pytest.mark.parametrize("policy", CORE)
def test_random_configurations_match_reference(policy):
    gen = np.random.default_rng(1234 + POLICIES[policy].code)
    for trial in range(12):
        B = int(gen.integers(1, 5))
        T = int(gen.integers(1, 120))
        n_ids = int(gen.integers(1, 30))
        K = gen.integers(1, 12, size=B)  # mixed per-lane K, some >= distinct blocks
        traces = _random_batch(gen, B, T, n_ids, pad_prob=0.15 if trial % 2 else 0.0)
        _check_against_reference(traces, policy, torch.from_numpy(K), seed=trial)


@pytest.mark.parametrize("policy", CORE)
def test_large_k_tree_path_matches_reference(policy):
    gen = np.random.default_rng(7)
    traces = _random_batch(gen, 2, 900, 160)
    _check_against_reference(traces, policy, torch.tensor([50, 97]), seed=3)


@pytest.mark.parametrize("policy", CORE)
def test_edge_shapes(policy):
    _check_against_reference(torch.tensor([[5]]), policy, 1, seed=0)  # B=1, T=1, K=1
    _check_against_reference(torch.tensor([[3, 3, 3, 3]]), policy, 1, seed=0)
    _check_against_reference(torch.tensor([[-1, -1, 2, -1]]), policy, 2, seed=0)
    _check_against_reference(torch.tensor([[0, 1, 2, 0, 1, 2]]), policy, 5, seed=0)  # K >= distinct


def test_zipf_traces_match_reference_all_policies():
    traces = zipf_traces(ZipfParams(T=400), seed=[1, 2])
    for policy in CORE:
        _check_against_reference(traces, policy, 8, seed=[1, 2])


def test_sparse_ids_are_remapped_and_victims_keep_original_ids():
    traces = torch.tensor([[42932745, 7, 42932745, 9_000_000_000, 7, 5]])
    res = simulate(traces, "lru", 2, return_hits=True)
    dense = torch.tensor([[0, 1, 0, 2, 1, 3]])
    ref = simulate(dense, "lru", 2, return_hits=True)
    assert res.faults.tolist() == ref.faults.tolist()
    assert res.hits.tolist() == ref.hits.tolist()
    lookup = {0: 42932745, 1: 7, 2: 9_000_000_000, 3: 5, -1: -1}
    assert res.victims.tolist() == [[lookup[v] for v in ref.victims[0].tolist()]]


def test_belady_never_worse_than_any_policy():
    traces = zipf_traces(ZipfParams(T=2000), seed=list(range(8)))
    for K in (2, 5, 8, 13):
        opt = simulate(traces, "belady", K).faults
        for policy in CORE:
            assert (simulate(traces, policy, K, seed=3).faults >= opt).all(), (policy, K)


@pytest.mark.parametrize("K", [1, 2, 7, 8])
def test_lru_and_fifo_fault_on_every_request_of_the_cycle(K):
    traces = cyclic_traces(K, 500, batch=2)
    for policy in ("lru", "fifo"):
        assert simulate(traces, policy, K).faults.tolist() == [500, 500]
    # Belady faults once per K requests after the cold fill (Theorem 3's ratio -> K)
    opt = int(simulate(traces, "belady", K).faults[0])
    assert opt == K + -(-(500 - K) // K)


def test_stack_policies_are_monotone_in_k():
    traces = zipf_traces(ZipfParams(T=3000), seed=list(range(6)))
    for policy in ("lru", "belady"):
        prev = None
        for K in range(1, 20):
            f = simulate(traces, policy, K).faults
            if prev is not None:
                assert (f <= prev).all(), (policy, K)
            prev = f


@pytest.mark.parametrize("policy", CORE)
def test_lane_result_is_independent_of_its_batch(policy):
    traces = zipf_traces(ZipfParams(T=700), seed=[5, 6, 7, 8])
    seeds = [11, 12, 13, 14]
    Ks = torch.tensor([3, 8, 5, 16])
    batch = simulate(traces, policy, Ks, seed=seeds, return_hits=True)
    for b in range(4):
        alone = simulate(traces[b:b + 1], policy, Ks[b:b + 1], seed=seeds[b:b + 1], return_hits=True)
        assert int(alone.faults[0]) == int(batch.faults[b])
        assert torch.equal(alone.victims[0], batch.victims[b])


def test_fixed_keeps_first_k_distinct_blocks():
    res = simulate(torch.tensor([[1, 2, 3, 1, 2, 3, 4, 1]]), "fixed", 2, return_hits=True)
    assert res.hits[0].tolist() == [False, False, False, True, True, False, False, True]
    assert res.victims[0].tolist() == [-1] * 8


def test_integer_dtypes_and_1d_input_agree():
    tr = zipf_traces(ZipfParams(T=300), seed=[3])
    a = simulate(tr, "lfu", 4).faults
    b = simulate(tr.long(), "lfu", 4).faults
    c = simulate(tr[0], "lfu", 4).faults
    assert a.tolist() == b.tolist() == c.tolist()


@pytest.mark.parametrize("bad, match", [
    (dict(policy="lru", K=0), "K must be >= 1"),
    (dict(policy="nope", K=2), "unknown policy"),
    (dict(policy="lru", K=2, backend="gpu"), "unknown backend"),
    (dict(policy="lru", K=torch.tensor([1, 2, 3])), r"K must be an int or a \[B\]"),
])
def test_bad_arguments_raise_one_line_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        simulate(torch.tensor([[1, 2]]), **bad)


def test_negative_ids_other_than_pad_are_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        simulate(torch.tensor([[1, -2]]), "lru", 2)


def test_triton_backend_without_cuda_or_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA"):
        simulate(torch.tensor([[1, 2]]), "lru", 2, backend="triton")


def test_parse_policies():
    assert [p.name for p in parse_policies("LRU, belady")] == ["lru", "belady"]
    with pytest.raises(ValueError, match="unknown policy 'x'"):
        parse_policies("lru,x")


def test_every_trace_type_and_layout_runs_one_compiled_batch():
    """int64, int16, Fortran-order, sliced and shared (``expand``) traces reach the CPU policies as int32
    ``[B, T]`` or ``[1, T]`` rows, so numba compiles each batch once; the faults equal separate int32 copies."""
    from gpupage.core import cpu
    from gpupage.zoo import baselines, heuristics, modern

    gen = np.random.default_rng(7)
    base = gen.integers(0, 40, size=(3, 300)).astype(np.int32)
    one = torch.from_numpy(base[0])
    variants = [torch.from_numpy(base.astype(np.int64)), torch.from_numpy(base.astype(np.int16)),
                torch.from_numpy(np.asfortranarray(base.astype(np.int64))), torch.from_numpy(base)[:, :],
                torch.from_numpy(np.concatenate([base, base], axis=1))[:, :300], one.expand(3, -1)]
    for policy in ("lru", "belady", "arc", "clock", "adaptive", "s3fifo", "lirs"):
        want = simulate(torch.from_numpy(base), policy, 6).faults.tolist()
        assert simulate(one.unsqueeze(0).repeat(3, 1), policy, 6).faults.tolist() == [want[0]] * 3
        for tr in variants:
            expect = [want[0]] * 3 if tr.stride(0) == 0 else want
            assert simulate(tr, policy, 6).faults.tolist() == expect, (policy, tr.dtype, tr.stride())
    for batch in (cpu._simulate_batch, baselines._simulate_batch, heuristics._simulate_batch,
                  modern._simulate_batch):
        assert len(batch.signatures) == 1, batch.signatures
