"""Closed-loop traces: numba path and Triton kernel against the plain Python reference."""

import os

import numpy as np
import pytest
import torch

from gpupage.core import rng
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.experiments.closedloop import (ClosedLoopParams, association_graph, closed_loop, hamming,
                                naive_closed_loop)

POLICIES = ["lru", "fifo", "lfu", "random", "fixed"]


def _reference(params, policy, K, seed, B):
    exo = zipf_traces(params.zipf, seed, B)
    assoc = association_graph(params, seed, B)
    keys = rng.lane_keys(seed, B)
    return [naive_closed_loop(exo[b].tolist(), assoc[b].tolist(), params.degree, params.sigma, policy, K, int(keys[b]))
            for b in range(B)]


def _check(res, ref):
    for b, (f, tr, h) in enumerate(ref):
        assert int(res.faults[b]) == f, b
        assert res.traces[b].tolist() == tr, b
        assert res.hits[b].tolist() == h, b


@pytest.mark.parametrize("policy", POLICIES)
def test_cpu_matches_reference(policy):
    gen = np.random.default_rng(11)
    for trial in range(4):
        M = int(gen.integers(2, 25))
        W = int(gen.integers(1, M + 1))
        params = ClosedLoopParams(ZipfParams(M=M, W=W, shift=int(gen.integers(5, 80)), T=int(gen.integers(1, 200))),
                                  sigma=float(gen.choice([0.0, 0.3, 0.8, 1.0])), degree=int(gen.integers(1, 5)))
        K = int(gen.integers(1, 10))
        B = int(gen.integers(1, 5))
        _check(closed_loop(params, policy, K, seed=trial, batch=B, return_hits=True),
               _reference(params, policy, K, trial, B))


@pytest.mark.parametrize("policy", POLICIES)
def test_induced_trace_replays_as_fixed_sequence(policy):
    """The closed loop is the simulator on its own induced trace: same faults and hits."""
    params = ClosedLoopParams(ZipfParams(M=40, W=10, shift=100, T=700), sigma=0.5, degree=3)
    res = closed_loop(params, policy, 6, seed=9, batch=6, return_hits=True)
    rep = simulate(res.traces, policy, 6, seed=9, return_hits=True)
    assert torch.equal(rep.faults, res.faults)
    assert torch.equal(rep.hits, res.hits)


def test_sigma_zero_is_the_exogenous_stream():
    params = ClosedLoopParams(ZipfParams(M=30, W=8, shift=50, T=400), sigma=0.0)
    exo = zipf_traces(params.zipf, 4, 3)
    for policy in ("lru", "fifo"):
        assert torch.equal(closed_loop(params, policy, 4, seed=4, batch=3).traces, exo)


def test_policies_induce_different_traces_when_sigma_positive():
    params = ClosedLoopParams(ZipfParams(T=2000), sigma=0.4)
    a = closed_loop(params, "lru", 8, seed=1, batch=4).traces
    b = closed_loop(params, "fifo", 8, seed=1, batch=4).traces
    d = hamming(a, b)
    assert (d > 0).all() and (d < 2000).all()


def test_association_graph_has_no_self_loops_and_is_deterministic():
    params = ClosedLoopParams(ZipfParams(M=7, W=3), degree=5)
    g = association_graph(params, seed=2, batch=3)
    assert torch.equal(g, association_graph(params, seed=2, batch=3))
    own = torch.arange(7).repeat_interleave(5)
    assert (g != own).all() and int(g.min()) >= 0 and int(g.max()) < 7


@pytest.mark.parametrize("bad", [dict(sigma=-0.1), dict(sigma=1.5), dict(degree=0)])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        ClosedLoopParams(**bad)


def test_policies_that_cannot_drive_a_loop_are_refused():
    with pytest.raises(ValueError, match="closed loop"):
        closed_loop(ClosedLoopParams(), "belady", 4, seed=0, batch=1)


def _triton_available():
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"


@pytest.mark.interpreter
@pytest.mark.skipif(not _triton_available(), reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("policy,K,sigma,degree", [
    ("lru", 4, 0.5, 3), ("fifo", 3, 0.8, 2), ("lfu", 5, 0.3, 4), ("random", 4, 0.6, 3),
    ("fixed", 3, 0.5, 1), ("lru", 1, 1.0, 2), ("lfu", 9, 0.0, 3),
])
def test_triton_matches_cpu(policy, K, sigma, degree):
    # awkward sizes: B not a multiple of the lane block, K not a power of two
    params = ClosedLoopParams(ZipfParams(M=19, W=6, shift=17, T=45), sigma=sigma, degree=degree)
    cpu = closed_loop(params, policy, K, seed=K, batch=35, return_hits=True)
    tri = closed_loop(params, policy, K, seed=K, batch=35, return_hits=True, backend="triton")
    assert torch.equal(tri.faults.cpu(), cpu.faults)
    assert torch.equal(tri.traces.cpu(), cpu.traces)
    assert torch.equal(tri.hits.cpu(), cpu.hits)
