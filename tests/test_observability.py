"""Told-phase eviction rules (scripts/blackbox_limit.py): numba == plain Python, and u_lru == LRU."""

import pytest
import torch

from gpupage.controller.observability import RULES, naive_told_phase_faults, told_phase_faults
from gpupage.core.rng import lane_keys
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces


@pytest.mark.parametrize("K", [1, 3, 6, 9])
def test_rules_match_the_python_reference(K):
    params = ZipfParams(M=20, W=6, shift=37, T=300)
    seeds = [3, 4, 5]
    traces, latent = zipf_traces(params, seed=seeds, return_latent=True)
    keys = lane_keys(seeds, len(seeds))
    for rule in RULES:
        fast = told_phase_faults(traces, latent, K, rule, seed=seeds)
        for b in range(len(seeds)):
            ws = latent.working_sets[b].tolist()
            assert fast[b] == naive_told_phase_faults(traces[b].tolist(), ws, params.shift, K, rule, int(keys[b])), rule


def test_least_recent_first_within_u_is_lru():
    """A block not requested since the phase began is older than any block requested since."""
    params = ZipfParams(M=40, W=12, shift=90, T=900)
    traces, latent = zipf_traces(params, seed=list(range(8)), return_latent=True)
    for K in (2, 8, 12, 20):
        assert told_phase_faults(traces, latent, K, "u_lru").tolist() == simulate(traces, "lru", K).faults.tolist()


def test_white_box_ordering_beats_lru_at_k_equal_w():
    traces, latent = zipf_traces(ZipfParams(), seed=list(range(20)), return_latent=True)
    lru = simulate(traces, "lru", 16).faults
    assert (torch.from_numpy(told_phase_faults(traces, latent, 16, "u_outside_n")) < lru).all()


def test_bad_rule_and_k():
    traces, latent = zipf_traces(ZipfParams(T=50), seed=[1], return_latent=True)
    with pytest.raises(ValueError, match="unknown rule"):
        told_phase_faults(traces, latent, 4, "lfu")
    with pytest.raises(ValueError, match="K must be"):
        told_phase_faults(traces, latent, 0, "u_lru")
