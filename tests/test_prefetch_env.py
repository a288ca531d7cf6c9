"""Prefetch env v2 (issue 13): the numba env equals the plain-Python reference of its written specification, serves
as core.prefetch with adaptive's victims, and its features do not depend on the trace length."""

import numpy as np
import pytest
import torch

import gpupage
from gpupage.controller.prefetch_env import NN, PrefetchEnv, prefetch_features
from gpupage.core.prefetch import make_hints, simulate_prefetch

SEEDS = list(range(1000, 1006))


def _lanes(eps, T=600, seeds=SEEDS):
    params = gpupage.ZipfParams(T=T)
    traces, latent = gpupage.zipf_traces(params, seeds, return_latent=True)
    return traces, latent, make_hints(traces, 4, eps, params.M, seed=seeds)


def _play(env, choose):
    """Run ``env`` to the end with ``choose(env) -> (prefetch, victim)``; per lane the decisions taken and the
    raw observations seen (as lists), and the summed rewards."""
    B = env.traces.shape[0]
    dec, obs = [[] for _ in range(B)], [[] for _ in range(B)]
    rewards = torch.zeros(B, dtype=torch.float64)
    while not env.done.all():
        pf, vi = choose(env)
        for b in np.flatnonzero(env.pending):
            dec[b].append((int(pf[b]), int(vi[b])))
            obs[b].append((env.obs_global[b].tolist(), env.obs_slots[b].tolist()))
        _, _, r, _ = env.step(pf, vi)
        rewards += r
    return dec, obs, rewards


@pytest.mark.parametrize("mode", ["blackbox", "whitebox"])
def test_random_decisions_equal_a_plain_loop_of_the_spec(mode):
    """Step by step against the plain-Python reference of the spec (``kernels.prefetch_env.NaiveLanes``):
    raw observations, done flags, rewards and the counts."""
    from kernels.prefetch_env import NaiveLanes, naive_prefetch_env_step

    traces, latent, hints = _lanes(0.3, T=500)
    B = len(SEEDS)
    gen = np.random.default_rng(5)
    env = PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.3, lam_evict=0.5, mode=mode, latent=latent)
    ref = NaiveLanes(traces, hints, 4, 8, latent.working_sets if mode == "whitebox" else None, latent.shift)

    def cost(acc):
        acc = acc.double()
        return acc[:, 0] + 0.3 * acc[:, 1] + 0.5 * acc[:, 2]

    _, _, acc, _ = naive_prefetch_env_step(ref, [0] * B, [0] * B)  # the env serves to the first decisions when built
    assert torch.equal(torch.from_numpy(env.cost), cost(acc))
    kinds, victims = [], []
    while not env.done.all():
        pf, vi = gen.integers(0, 2, B), gen.integers(-1, 8, B)
        kinds += env.obs_global[env.pending, 0].tolist()
        victims += vi[env.pending].tolist()
        og, os_, r, done = env.step(pf, vi)
        g, sl, acc, d = naive_prefetch_env_step(ref, pf.tolist(), vi.tolist())
        assert torch.equal(og, g) and torch.equal(os_, sl) and torch.equal(done, d)
        assert torch.equal(r, -cost(acc))
    assert 0 < sum(kinds) < len(kinds)  # both kinds occurred
    assert min(victims) < 0 <= max(victims)
    got = env.counts()
    for b in range(B):
        assert [int(got[k][b]) for k in ("faults", "prefetches", "evictions")] == ref.counts[b]


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_adaptive_victims_replay_as_masked_hints(eps):
    """victim = -1 everywhere: the decisions taken, replayed as masked hints, are follow_hint with adaptive."""
    traces, _, hints = _lanes(eps)
    gen = np.random.default_rng(1)
    for always in (1, 0, None):
        env = PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.3)
        taken = np.full(env.hints.shape, -1, dtype=np.int64)

        def choose(e):
            pf = np.full(len(SEEDS), always) if always is not None else gen.integers(0, 2, len(SEEDS))
            for b in np.flatnonzero((e.kind == 0) & (pf == 1)):
                taken[b, e.t[b] - 4] = e.hints[b, e.t[b] - 4]
            return pf, np.full(len(SEEDS), -1)

        _play(env, choose)
        masked = torch.from_numpy(taken) if always is None else (hints if always else torch.full_like(hints, -1))
        ref = simulate_prefetch(traces, 8, "follow_hint", "adaptive", hints=masked, L=4, lam_fetch=0.3)
        got = env.counts()
        for k in ("faults", "prefetches", "evictions"):
            assert torch.equal(got[k], getattr(ref, k)), (always, k)


def test_features_do_not_depend_on_the_trace_length():
    long_tr, _, long_h = _lanes(0.2, T=900, seeds=SEEDS[:3])
    T = 400
    short_h = make_hints(long_tr[:, :T], 4, 0.2, 64, seed=SEEDS[:3])
    assert torch.equal(short_h[:, :T - 4], long_h[:, :T - 4])
    feats = []
    for tr, h in ((long_tr[:, :T], short_h), (long_tr, long_h)):
        env = PrefetchEnv(tr, h, 4, 8)
        rows = []

        def choose(e):
            for b in np.flatnonzero(e.pending & (e.t < T - 4)):
                g, s = prefetch_features(torch.from_numpy(e.obs_global[b:b + 1]),
                                         torch.from_numpy(e.obs_slots[b:b + 1]), 0.3, 8)
                rows.append((b, int(e.t[b]), g, s))
            return (e.t % 3 > 0).astype(np.int64), np.where(e.t % 2 == 0, -1, e.t % 8)

        _play(env, choose)
        feats.append(rows)
    assert len(feats[0]) > 100 and len(feats[1]) == len(feats[0])
    for (b0, t0, g0, s0), (b1, t1, g1, s1) in zip(*(sorted(f, key=lambda r: r[:2]) for f in feats)):
        assert (b0, t0) == (b1, t1) and torch.equal(g0, g1) and torch.equal(s0, s1)
    g, s = feats[1][-1][2:]
    assert 0 <= g[0, 5] <= 1 and s[..., 0].min() >= 0 and s[..., 0].max() <= 1  # recencies


def test_bad_input_is_one_line():
    traces, latent, hints = _lanes(0.1, T=50)
    with pytest.raises(ValueError, match="lambda_fetch"):
        PrefetchEnv(traces, hints, 4, 8, lam_fetch=0.0)
    with pytest.raises(ValueError, match="latent"):
        PrefetchEnv(traces, hints, 4, 8, mode="whitebox")
    with pytest.raises(ValueError, match="lookahead"):
        PrefetchEnv(traces, hints, 0, 8)
    env = PrefetchEnv(traces, hints, 4, 8)
    with pytest.raises(ValueError, match="victim slots"):
        env.step(np.ones(len(SEEDS), dtype=np.int64), np.full(len(SEEDS), 8))
    with pytest.raises(ValueError, match="prefetch actions"):
        env.step(np.full(len(SEEDS), 2))


def test_a_replaced_lane_serves_as_a_fresh_one():
    traces, latent, hints = _lanes(0.1, T=300)
    env = PrefetchEnv(traces[:3], hints[:3], 4, 8)
    for _ in range(40):
        env.step(np.ones(3, dtype=np.int64), np.array([-1, 2, 5]))
    lanes = np.array([True, False, True])
    env.replace(lanes, traces[3:5], hints[3:5])
    fresh = PrefetchEnv(traces[3:5], hints[3:5], 4, 8)
    assert np.array_equal(env.obs_global[lanes], fresh.obs_global) and np.array_equal(env.sc[lanes], fresh.sc)
    assert np.array_equal(env.obs_slots[lanes], fresh.obs_slots)
    kept = env.sc[1].copy()
    env.step(np.array([-1, -1, -1]), np.array([3, 3, 3]))
    assert np.array_equal(env.sc[1], kept)


def test_next_use_is_each_slot_blocks_next_request():
    """The future that Belady imitation labels read (never an observation)."""
    traces, _, hints = _lanes(0.1, T=300)
    env = PrefetchEnv(traces, hints, 4, 8)
    for _ in range(30):
        env.step(np.ones(len(SEEDS), dtype=np.int64))
    nu, t = env.next_use(), env.t
    for b in range(len(SEEDS)):
        row = traces[b].tolist()
        for s in range(8):
            want = next((j for j in range(t[b], 300) if row[j] == env.blk[b, s]), 300) if s < env.sc[b, NN] else 300
            assert nu[b, s] == want
