"""blind_oracle, predictive_marker, arc and clock: CPU == plain reference == Triton, and
against Belady, marking theory and libCacheSim."""

import math
import os

import numpy as np
import pytest
import torch

from gpupage.core.policies import POLICIES
from gpupage.core.reference import next_uses
from gpupage.core.rng import lane_keys
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, cyclic_traces, zipf_traces
from gpupage.zoo.arc import naive_arc
from gpupage.zoo.baselines import harmonic_floor, naive_baseline
from gpupage.zoo.predictions import (FRAC_BITS, LEVEL_BITS, MAX_MULTIPLIER, NEVER, naive_predictions, noise_table,
                                 predict_next_arrivals)

BASELINES = ("blind_oracle", "predictive_marker", "arc", "clock")
OPTIONS = (None, {"eta": 0.5}, {"eta": 4.0, "replace": 0.3}, {"replace": 1.0})
CLOUD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "traces", "cloudPhysicsIO.txt")


def _batch(gen, B, T, M, pad_prob=0.0):
    tr = gen.integers(0, M, size=(B, T))
    tr[gen.random((B, T)) < pad_prob] = -1
    return torch.from_numpy(tr.astype(np.int32))


def _configs():
    """(traces, K per lane, seed) covering K=1, T=1, pads, all-pad lanes, mixed K, K > distinct."""
    gen = np.random.default_rng(7)
    out = [(_batch(gen, 3, 1, 4), [1, 2, 3], 1), (_batch(gen, 2, 40, 1), [1, 3], 2)]
    for i in range(14):
        B, T, M = int(gen.integers(1, 5)), int(gen.integers(2, 90)), int(gen.integers(2, 25))
        tr = _batch(gen, B, T, M, pad_prob=0.15 * (i % 2))
        if i == 3:
            tr[0] = -1
        out.append((tr, [int(k) for k in gen.integers(1, 12, size=B)], 100 + i))
    return out


@pytest.mark.parametrize("policy", BASELINES)
def test_cpu_equals_naive_reference(policy):
    for options in OPTIONS:
        for traces, K, seed in _configs():
            res = simulate(traces, policy, torch.tensor(K), seed=seed, return_hits=True,
                           options=POLICIES[policy].own_options(options))
            keys = lane_keys(seed, traces.shape[0])
            for b in range(traces.shape[0]):
                f, h, v = naive_baseline(traces[b].tolist(), policy, K[b], int(keys[b]), options)
                assert int(res.faults[b]) == f, (policy, options, K[b])
                assert res.hits[b].tolist() == h, (policy, options)
                assert res.victims[b].tolist() == v, (policy, options)


def test_predictions_match_reference_and_noise_model():
    traces = zipf_traces(ZipfParams(T=4000), seed=[3, 4]).numpy()
    keys = lane_keys([3, 4], 2)
    for options in OPTIONS:
        pred = predict_next_arrivals(traces, keys, options)
        for b in range(2):
            assert pred[b].tolist() == naive_predictions(traces[b].tolist(), int(keys[b]), options)
    truth = np.array([[min(u, NEVER) for u in next_uses(row.tolist())] for row in traces])
    assert np.array_equal(predict_next_arrivals(traces, keys), truth)  # eta = 0: exact
    t = np.arange(traces.shape[1])
    finite = truth < NEVER
    for eta in (0.5, 2.0):
        pred = predict_next_arrivals(traces, keys, {"eta": eta})
        assert np.array_equal(pred >= NEVER, ~finite)  # "never" stays never
        gap = (truth - t)[finite & (truth - t >= 50)]  # rounding is negligible on long gaps
        log_err = np.log((pred - t)[finite & (truth - t >= 50)] / gap)
        assert abs(log_err.mean()) < 0.1 * eta and abs(log_err.std() - eta) < 0.1 * eta
    pred = predict_next_arrivals(traces, keys, {"replace": 1.0})
    assert ((pred > t) & (pred <= t + traces.shape[1])).all()
    assert (pred != truth).mean() > 0.9


def test_blind_oracle_with_exact_predictions_is_belady():
    for traces, K, seed in _configs():
        bo = simulate(traces, "blind_oracle", torch.tensor(K), seed=seed, return_hits=True, options={"eta": 0.0})
        opt = simulate(traces, "belady", torch.tensor(K), return_hits=True)
        assert torch.equal(bo.faults, opt.faults)
        assert torch.equal(bo.victims, opt.victims)  # same tie-breaking: least recently accessed


def _phase_violations(trace, K, victims):
    """Evictions of a block already requested in the current phase (the trace's own
    partition into maximal segments of K distinct blocks): zero for a marking algorithm."""
    seen: set = set()
    bad = 0
    for t, x in enumerate(trace):
        if x < 0:
            continue
        if x not in seen and len(seen) == K:
            seen = set()
        if victims[t] >= 0 and victims[t] in seen:
            bad += 1
        seen.add(x)
    return bad


def test_predictive_marker_is_a_marking_algorithm():
    for options in ({"eta": 0.0}, {"eta": 4.0}, {"replace": 1.0}):
        for traces, K, seed in _configs():
            res = simulate(traces, "predictive_marker", torch.tensor(K), seed=seed, return_hits=True, options=options)
            for b in range(traces.shape[0]):
                assert _phase_violations(traces[b].tolist(), K[b], res.victims[b].tolist()) == 0
    # blind_oracle is not one: the check can fail
    traces, K = cyclic_traces(4, 200), 4
    res = simulate(traces, "blind_oracle", K, return_hits=True, options={"replace": 1.0})
    assert _phase_violations(traces[0].tolist(), K, res.victims[0].tolist()) > 0


def test_predictive_marker_stays_within_2hk_of_belady_when_predictions_are_noise():
    """Lykouris & Vassilvitskii: O(log K)-competitive whatever the predictions.  On
    Theorem 3's cyclic adversary (LRU's ratio ~K) with pure-noise predictions, and on
    the App. B Zipf family with eta = 4, its ratio to Belady stays below 2 H_K."""
    K = 8
    bound = 2 * sum(1 / i for i in range(1, K + 1))
    cyc = cyclic_traces(K, 4000, batch=4)
    opt = simulate(cyc, "belady", K).faults.double()
    lru = simulate(cyc, "lru", K).faults.double()
    pm = simulate(cyc, "predictive_marker", K, seed=[1, 2, 3, 4], options={"replace": 1.0}).faults.double()
    assert (lru / opt).min() > bound  # the trace is hard for an unlucky deterministic policy
    assert (pm / opt).max() < bound
    seeds = list(range(42, 52))
    z = zipf_traces(ZipfParams(), seed=seeds)
    opt = simulate(z, "belady", K).faults.double()
    pm = simulate(z, "predictive_marker", K, seed=seeds, options={"eta": 4.0}).faults.double()
    assert (pm / opt).max() < bound
    # and with exact predictions it is 2-consistent
    pm0 = simulate(z, "predictive_marker", K, seed=seeds, options={"eta": 0.0}).faults.double()
    assert (pm0 / opt).max() <= 2


def test_huge_k_behaves_like_k_equal_t():
    traces = zipf_traces(ZipfParams(T=300), seed=[8, 9])
    for policy in BASELINES:
        big = simulate(traces, policy, torch.tensor([10**9, 10**12]), seed=[8, 9], return_hits=True)
        same = simulate(traces, policy, 300, seed=[8, 9], return_hits=True)
        assert torch.equal(big.hits, same.hits) and torch.equal(big.faults, same.faults), policy


def test_harmonic_floor():
    assert harmonic_floor(np.array([1, 2, 3, 4, 10, 30, 31, 83])).tolist() == [1, 1, 1, 2, 2, 3, 4, 5]


@pytest.mark.parametrize("options,match", [
    ({"eta": -0.5}, "eta must be >= 0"),
    ({"replace": 1.5}, r"replace must be in \[0, 1\]"),
    ({"replace": -0.1}, r"replace must be in \[0, 1\]"),
    ({"eta": "big"}, "eta must be a number"),
    ({"eta": float("nan")}, "eta must be finite"),
])
@pytest.mark.parametrize("policy", BASELINES)
def test_bad_options_are_one_line_errors(policy, options, match):
    if policy in ("arc", "clock"):  # they read no option at all
        match = f"policy '{policy}' reads no option"
    with pytest.raises(ValueError, match=match) as err:
        simulate(torch.tensor([[1, 2, 3]]), policy, 2, options=options)
    assert "\n" not in str(err.value)


def test_options_default_and_refuse_other_keys():
    tr = zipf_traces(ZipfParams(T=500), seed=[5])
    for policy in ("blind_oracle", "predictive_marker"):
        a = simulate(tr, policy, 4, seed=[5]).faults
        b = simulate(tr, policy, 4, seed=[5], options={"eta": 0.0, "replace": 0.0}).faults
        assert torch.equal(a, b), policy
        with pytest.raises(ValueError, match=f"policy '{policy}' reads no option 'sigma'; it reads eta, replace"):
            simulate(tr, policy, 4, seed=[5], options={"eta": 0.0, "sigma": 3})


@pytest.mark.interpreter
@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
@pytest.mark.parametrize("policy", BASELINES)
def test_triton_equals_cpu(policy):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = np.random.default_rng(11)
    cases = [(_batch(gen, 5, 40, 12, 0.1), [1, 2, 5, 9, 16], None),
             (_batch(gen, 3, 30, 30), [20, 3, 7], {"eta": 1.0, "replace": 0.2}),  # K > 16: one lane a program
             (_batch(gen, 1, 1, 3), [1], {"eta": 2.0})]
    for i, (traces, K, options) in enumerate(cases):
        options = POLICIES[policy].own_options(options)
        cpu = simulate(traces, policy, torch.tensor(K), backend="cpu", seed=i, return_hits=True, options=options)
        tri = simulate(traces.to(dev), policy, torch.tensor(K), backend="triton", seed=i, return_hits=True,
                       options=options)
        assert torch.equal(tri.faults.cpu(), cpu.faults), (policy, tri.faults, cpu.faults)
        assert torch.equal(tri.hits.cpu(), cpu.hits), policy
        assert torch.equal(tri.victims.cpu(), cpu.victims), policy


@pytest.mark.interpreter
@pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                    reason="needs CUDA or TRITON_INTERPRET=1")
def test_prediction_kernel_equals_cpu():
    from kernels.predictions import predict_next_arrivals as predict_on_device

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = np.random.default_rng(12)
    cases = [(_batch(gen, 1, 1, 3), [0]), (_batch(gen, 3, 1031, 40, 0.1), [1, 2, 3]),
             (zipf_traces(ZipfParams(T=900), seed=[5, 6]), [5, 6])]
    cases[1][0][2] = -1  # an all-pad lane
    for traces, seeds in cases:
        keys = lane_keys(seeds, len(seeds))
        for options in OPTIONS + ({"eta": 40.0},):  # eta 40: multipliers hit the cap
            cpu = predict_next_arrivals(traces.numpy(), keys, options)
            tri = predict_on_device(traces.t().contiguous().to(dev), torch.from_numpy(keys).to(dev), options)
            assert np.array_equal(tri.t().cpu().numpy(), cpu), options


def test_noise_table_is_fixed_point_exp_of_quantised_normal():
    assert (noise_table(0.0) == 1 << FRAC_BITS).all()  # eta = 0: predictions exact
    for eta in (0.25, 2.0):
        table = noise_table(eta)
        assert table.shape == (1 << LEVEL_BITS,) and (np.diff(table) > 0).all()
        log_mult = np.log(table / 2**FRAC_BITS)
        assert abs(log_mult.mean()) < 1e-6 and abs(log_mult.std() / eta - 1) < 1e-3
    assert noise_table(40.0).max() == MAX_MULTIPLIER


# ---------------------------------------------------------------------------------------------
# libCacheSim (its CLOCK is ours exactly; its ARC keeps p in a double, ours in fixed point)

def _lcs_hits(lcs, name, ids, K):
    cache = getattr(lcs, name)(cache_size=K, hashpower=16)
    out = []
    for x in ids:
        req = lcs.Request()
        req.obj_id = int(x)
        req.obj_size = 1
        out.append(bool(cache.get(req)))
    return out


def test_clock_and_arc_match_libcachesim_on_zipf():
    lcs = pytest.importorskip("libcachesim")
    traces = zipf_traces(ZipfParams(T=2000), seed=[42, 43, 44])
    for K in (1, 3, 8, 16):
        clock = simulate(traces, "clock", K, return_hits=True)
        arc = simulate(traces, "arc", K, return_hits=True)
        for b in range(3):
            ids = traces[b].tolist()
            assert clock.hits[b].tolist() == _lcs_hits(lcs, "Clock", ids, K), K
            # libCacheSim's double p: same decisions as our structure with p as a double
            assert naive_arc(ids, K, float_p=True)[1] == _lcs_hits(lcs, "ARC", ids, K), K
            assert abs(int(arc.faults[b]) - naive_arc(ids, K, float_p=True)[0]) <= 2


@pytest.mark.skipif(not os.path.exists(CLOUD), reason="../shared/traces/cloudPhysicsIO.txt not present")
def test_cloudphysics_against_libcachesim():
    lcs = pytest.importorskip("libcachesim")
    ids = np.loadtxt(CLOUD, dtype=np.int64)  # one id per line, read without gpupage
    Ks = [2, 7, 8, 64, 1000]
    trace = torch.from_numpy(ids).expand(len(Ks), -1)
    ours = {p: simulate(trace, p, torch.tensor(Ks)).faults.tolist() for p in ("clock", "arc")}
    theirs = {}
    for policy, name in (("clock", "Clock"), ("arc", "ARC")):
        for K in Ks:
            reader = lcs.TraceReader(CLOUD, lcs.TraceType.PLAIN_TXT_TRACE)
            miss_ratio, _ = getattr(lcs, name)(cache_size=K, hashpower=16).process_trace(reader)
            theirs[policy, K] = round(miss_ratio * ids.size)
    assert ours["clock"] == [theirs["clock", K] for K in Ks]
    # ARC: equal where p's rounding never flips a decision, within 0.01% elsewhere
    for K, f in zip(Ks, ours["arc"]):
        if K in (2, 64, 1000):
            assert f == theirs["arc", K], K
        assert abs(f - theirs["arc", K]) <= 1e-4 * ids.size, K
    assert naive_arc(ids.tolist(), 7, float_p=True)[1] == _lcs_hits(lcs, "ARC", ids, 7)
    assert math.isclose(ours["arc"][1], theirs["arc", 7], rel_tol=1e-4)
