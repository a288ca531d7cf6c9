"""The prefetch env (issue 13, part 2) serves exactly as core.prefetch and the plain-Python reference."""

import numpy as np
import pytest
import torch

import gpupage
from gpupage.controller.prefetch_env import FEATURES, PrefetchEnv
from gpupage.core.prefetch import make_hints, simulate_prefetch
from gpupage.zoo.prefetch_reference import naive_prefetch

SEEDS = list(range(1000, 1006))


def _lanes(eps, T=600):
    params = gpupage.ZipfParams(T=T)
    traces, latent = gpupage.zipf_traces(params, SEEDS, return_latent=True)
    return traces, latent, make_hints(traces, 4, eps, params.M, seed=SEEDS)


def _replay(env, policy):
    """Run the env with ``policy(obs, b) -> 0/1`` and return the hints it acted on (the others -1)."""
    taken = np.full(env.hints.shape, -1, dtype=np.int64)
    obs = torch.from_numpy(env.obs.copy())
    while not env.done.all():
        live = env.pending
        act = np.array([policy(obs[b], b) if live[b] else 0 for b in range(len(live))], dtype=np.int64)
        t = env.t
        for b in np.flatnonzero(live & (act == 1)):
            taken[b, t[b] - env.L] = env.hints[b, t[b] - env.L]
        obs, _, _ = env.step(act)
    return torch.from_numpy(taken)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_always_and_never_equal_follow_hint_and_demand_paging(eps):
    traces, _, hints = _lanes(eps)
    for act, rule in ((1, "follow_hint"), (0, "never")):
        env = PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.3)
        _replay(env, lambda o, b: act)
        ref = simulate_prefetch(traces, 8, rule, "adaptive", hints=hints, L=4, lam_fetch=0.3)
        got = env.counts()
        for k in ("faults", "prefetches", "evictions"):
            assert torch.equal(got[k], getattr(ref, k)), (rule, k)


def test_random_decisions_replay_as_masked_hints_against_the_reference():
    traces, _, hints = _lanes(0.2, T=400)
    gen = np.random.default_rng(3)
    env = PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.3, lam_evict=0.5)
    costs = torch.from_numpy(env.cost.copy())  # served before the first decisions
    taken = np.full(env.hints.shape, -1, dtype=np.int64)
    while not env.done.all():
        live, t = env.pending, env.t
        act = (gen.random(len(live)) < 0.5).astype(np.int64) * live
        for b in np.flatnonzero(act):
            taken[b, t[b] - 4] = env.hints[b, t[b] - 4]
        _, r, _ = env.step(act)
        costs -= r
    got = env.counts()
    assert got["prefetches"].sum() > 0 and (got["prefetches"] < simulate_prefetch(
        traces, 8, "follow_hint", "adaptive", hints=hints, L=4).prefetches).all()
    for b in range(len(SEEDS)):
        ref = naive_prefetch(traces[b].tolist(), 8, "follow_hint", "adaptive", hints=taken[b].tolist(), L=4)
        assert (got["faults"][b], got["prefetches"][b], got["evictions"][b]) == tuple(ref[:3])
        assert costs[b] == pytest.approx(ref[0] + 0.3 * ref[1] + 0.5 * ref[2])


def test_observations_say_how_reliable_the_hints_are():
    means = []
    for eps in (0.0, 1.0):
        traces, latent, hints = _lanes(eps)
        env = PrefetchEnv(traces, hints, 4, 8, mode="whitebox", latent=latent)
        seen = []
        while not env.done.all():
            obs, _, _ = env.step(np.ones(len(SEEDS), dtype=np.int64))
            seen.append(obs[torch.from_numpy(env.pending)])
        means.append(torch.cat(seen).mean(0))
    rel = FEATURES.index("hint_reliability")
    assert means[0][rel] > 0.9 and means[1][rel] < 0.2
    assert means[0][len(FEATURES)] > 0.9 > means[1][len(FEATURES)]  # hinted block in the working set


def test_bad_input_is_one_line():
    traces, latent, hints = _lanes(0.1, T=50)
    with pytest.raises(ValueError, match="lambda_fetch"):
        PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.0)
    with pytest.raises(ValueError, match="latent"):
        PrefetchEnv(traces, hints, 4, 8, mode="whitebox")
    with pytest.raises(ValueError, match="lookahead"):
        PrefetchEnv(traces, hints, 0, 8)


def test_a_replaced_lane_serves_as_a_fresh_one():
    traces, latent, hints = _lanes(0.1, T=300)
    env = PrefetchEnv(traces[:3], hints[:3], 4, 8)
    for _ in range(40):
        env.step(np.ones(3, dtype=np.int64))
    lanes = np.array([True, False, True])
    env.replace(lanes, traces[3:5], hints[3:5])
    fresh = PrefetchEnv(traces[3:5], hints[3:5], 4, 8)
    assert np.array_equal(env.obs[lanes], fresh.obs) and np.array_equal(env.sc[lanes], fresh.sc)
    kept = env.sc[1].copy()
    env.step(np.array([-1, -1, -1]))
    assert np.array_equal(env.sc[1], kept)
