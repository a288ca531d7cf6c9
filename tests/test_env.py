"""The batched paging environment: invariants, purity, heuristic replay, features."""

import numpy as np
import pytest
import torch

from gpupage.controller import env as E
from gpupage.controller import state as S
from gpupage.controller.features import SLOT_DIM, observe, resident_rank
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces


def _replay(traces, K, victims, params=None):
    """Drive the env with a heuristic's victims; returns the final state."""
    params = params or E.EnvParams(K=K)
    _, st = E.reset_traces(params, traces)
    lanes = torch.arange(st.batch)
    while not bool(st.done.all()):
        tt = st.t.clamp(max=st.T - 1)
        v = victims[lanes, tt]
        hit = st.blk == v[:, None]
        assert bool(hit.any(1)[~st.done].all()), "victim not resident at a decision"
        _, st, *_ = E.step(st, hit.long().argmax(1), params)
    return st


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu", "random", "belady"])
@pytest.mark.parametrize("K", [1, 3, 8])
def test_replaying_a_heuristic_reproduces_its_faults(policy, K):
    traces = zipf_traces(ZipfParams(M=23, W=9, shift=97, T=613), seed=[5, 6, 7])
    traces[1, ::11] = -1  # pads are skipped
    res = simulate(traces, policy, K, seed=[5, 6, 7], return_hits=True)
    st = _replay(traces, K, res.victims)
    assert torch.equal(st.faults, res.faults)
    assert bool(st.done.all())


def test_decisions_are_faults_on_a_full_cache_and_state_is_consistent():
    params = E.EnvParams(K=5, zipf=ZipfParams(M=30, W=10, shift=111, T=400))
    obs, st = E.reset(params, [1, 2, 3, 4])
    g = torch.Generator().manual_seed(0)
    while not bool(st.done.all()):
        live = ~st.done
        x = st.traces[torch.arange(st.batch), st.t.clamp(max=st.T - 1)].long()
        # pending request is a miss, the cache is full and holds distinct blocks
        assert not bool((st.blk == x[:, None]).any(1)[live].any())
        assert bool((st.blk >= 0).all(1)[live].all())
        for b in range(st.batch):
            res = st.blk[b][st.blk[b] >= 0]
            assert res.numel() <= 5 and res.unique().numel() == res.numel()
            assert torch.equal(st.slot_of[b][res], torch.nonzero(st.blk[b] >= 0).squeeze(1))
        before = st.clone()
        a = torch.randint(0, 5, (st.batch,), generator=g)
        obs, st, reward, term, trunc, info = E.step(before, a, params)
        assert torch.equal(reward[live], -torch.ones(int(live.sum())))
        assert bool((reward[~live] == 0).all()) and not bool(trunc.any())
        assert bool((info["dt"][live] >= 1).all())
        assert torch.equal(term, st.done)


def test_step_does_not_mutate_its_input():
    params = E.EnvParams(K=4, zipf=ZipfParams(T=300))
    _, st = E.reset(params, [9, 10])
    snap = st.clone()
    E.step(st, torch.tensor([0, 3]), params)
    for name in ("t", "blk", "last", "count", "dc", "faults", "fr"):
        assert torch.equal(getattr(st, name), getattr(snap, name))


def test_bad_actions_are_rejected():
    params = E.EnvParams(K=4, zipf=ZipfParams(T=300))
    _, st = E.reset(params, [9])
    with pytest.raises(ValueError):
        E.step(st, torch.tensor([4]), params)
    with pytest.raises(ValueError):
        E.EnvParams(K=0)


def test_decayed_counts_match_a_float_reference():
    trace = torch.tensor([[0, 1, 0, 2, 0, 0, 3, 1, 2, 0] * 7])
    _, st = E.reset_traces(E.EnvParams(K=8), trace)  # never faults with a full cache: runs to the end
    assert bool(st.done.all())
    T = trace.shape[1]
    for x in range(4):
        times = [t for t in range(T) if int(trace[0, t]) == x]
        for hi, h in enumerate(S.HALF_LIVES):
            exact = sum(2 ** (-(times[-1] - s) / h) for s in times)
            assert abs(int(st.dc[0, x, hi]) / S.ONE - exact) < 1e-3 * len(times)
        assert int(st.count[0, x]) == len(times) and int(st.last_use[0, x]) == times[-1]
        assert int(st.gap[0, x]) == times[-1] - times[-2]


def test_belady_mask_marks_farthest_next_use():
    trace = torch.tensor([[0, 1, 2, 3, 1, 0, 2]])
    _, st = E.reset_traces(E.EnvParams(K=3), trace)
    # at t=3 (block 3 pending): next uses 0->5, 1->4, 2->6: evict block 2
    assert int(st.t[0]) == 3
    assert E.belady_mask(st)[0].tolist() == [False, False, True]


def test_features_shapes_ranks_and_whitebox_latent():
    zp = ZipfParams(M=40, W=8, shift=150, T=600)
    params = E.EnvParams(K=6, zipf=zp, mode="whitebox")
    obs, st = E.reset(params, [3, 4, 5])
    assert obs.slots.shape == (3, 6, SLOT_DIM["whitebox"]) and torch.isfinite(obs.slots).all()
    _, latent = zipf_traces(zp, seed=[3, 4, 5], return_latent=True)
    for b in range(3):
        ws = set(latent.working_sets[b, int(st.t[b]) // zp.shift].tolist())
        inws = [int(x) in ws for x in st.blk[b]]
        assert obs.slots[b, :, -2].bool().tolist() == inws
    bb = observe(st, "blackbox")
    assert torch.equal(bb.slots, obs.slots[..., :SLOT_DIM["blackbox"]])
    x = torch.tensor([[[1.0], [3.0], [3.0], [0.0]]])
    r = resident_rank(x, torch.tensor([[True, True, True, False]]))
    assert r.squeeze().tolist()[:3] == [0.0, 0.75, 0.75]


def test_whitebox_without_latent_is_an_error():
    with pytest.raises(ValueError):
        E.reset_traces(E.EnvParams(mode="whitebox"), torch.zeros((1, 10), dtype=torch.int32))


def test_large_sparse_ids_are_remapped():
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array([5, 10**9, 3 * 10**9, 77, 123456789]), size=(2, 300))
    traces = torch.from_numpy(ids)
    res = simulate(traces, "lru", 3, return_hits=True)
    st = _replay(torch.from_numpy(np.unique(ids, return_inverse=True)[1].reshape(ids.shape)), 3,
                 torch.from_numpy(np.searchsorted(np.unique(ids), np.maximum(res.victims.numpy(), 0)))
                 .masked_fill(res.victims < 0, -1))
    assert torch.equal(st.faults, res.faults)
    _, st2 = E.reset_traces(E.EnvParams(K=3), traces)
    assert st2.count.shape[1] == 5
