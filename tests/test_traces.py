"""Trace families against plain-Python re-implementations of their written rules."""

import numpy as np
import pytest
import torch

from gpupage.core import rng
from gpupage.core.traces import (ZipfParams, cyclic_traces, hamming_count, perturb, perturbed_pairs, retrieval_noise,
                            zipf_traces)


def _fmix32_py(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) % 2**32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) % 2**32
    return h ^ (h >> 16)


def test_hash_is_murmur3_fmix32_chain():
    for x in (0, 1, 12345, 2**32 - 1, 0xDEADBEEF):
        assert rng.fmix32(x) == _fmix32_py(x)
    key = rng.lane_key(42, 3)
    expect = _fmix32_py(_fmix32_py(_fmix32_py(42 ^ rng.GOLDEN) ^ 0) ^ 3)
    assert key == expect
    skey = rng.stream_key(key, 5)
    assert rng.draw(skey, 77) == _fmix32_py(_fmix32_py(skey ^ 77) ^ rng.GOLDEN)


def test_uniform_below_is_in_range_and_roughly_uniform():
    skey = rng.stream_key(rng.lane_key(1, 0), 1)
    vals = np.array([rng.uniform_below(rng.draw(skey, i), 7) for i in range(7000)])
    assert vals.min() == 0 and vals.max() == 6
    counts = np.bincount(vals, minlength=7)
    assert np.all(np.abs(counts - 1000) < 150)


def _zipf_reference(p: ZipfParams, seed: int):
    """App. B written as a loop: partial Fisher-Yates working set per phase, Zipf rank by thresholds."""
    key = rng.lane_key(seed, 0)
    wkey = rng.stream_key(key, rng.STREAM_WORKING_SET)
    zkey = rng.stream_key(key, rng.STREAM_ZIPF)
    thr = p.thresholds().tolist()
    out, sets = [], []
    for phase in range(p.phases):
        perm = list(range(p.M))
        for i in range(p.W):
            j = i + rng.uniform_below(rng.draw(wkey, phase * p.W + i), p.M - i)
            perm[i], perm[j] = perm[j], perm[i]
        ws = perm[:p.W]
        sets.append(ws)
        for t in range(phase * p.shift, min(p.T, (phase + 1) * p.shift)):
            h = rng.draw(zkey, t)
            out.append(ws[sum(1 for x in thr if h >= x)])
    return out, sets


@pytest.mark.parametrize("p", [ZipfParams(T=1200), ZipfParams(M=10, W=10, shift=7, T=50, alpha=0.5),
                               ZipfParams(M=5, W=1, shift=3, T=11)])
def test_zipf_matches_reference_and_latent(p):
    traces, latent = zipf_traces(p, [42, 7], return_latent=True)
    for b, seed in enumerate([42, 7]):
        ref, sets = _zipf_reference(p, seed)
        assert traces[b].tolist() == ref
        assert latent.working_sets[b].tolist() == sets


def test_zipf_latent_explains_every_request():
    p = ZipfParams()
    traces, latent = zipf_traces(p, seed=0, batch=3, return_latent=True)
    phase = torch.arange(p.T) // p.shift
    ws = latent.working_sets.long()
    for b in range(3):
        assert all(len(set(s)) == p.W for s in ws[b].tolist())
        in_set = (ws[b, phase] == traces[b].long().unsqueeze(1)).any(1)
        assert in_set.all()
    # rank 0 is the most popular: its share matches the Zipf law (deterministic given the seeds)
    w = 1 / np.arange(1, p.W + 1) ** p.alpha
    rank0 = (ws[:, phase, 0] == traces.long()).float().mean().item()
    assert abs(rank0 - w[0] / w.sum()) < 0.02


def test_lanes_depend_only_on_their_seed():
    p = ZipfParams(T=400)
    both = zipf_traces(p, [3, 9])
    assert torch.equal(both[1], zipf_traces(p, [9])[0])
    batch = zipf_traces(p, seed=3, batch=2)
    assert not torch.equal(batch[0], batch[1])
    assert torch.equal(zipf_traces(p, seed=3, batch=2), batch)


def test_hamming_count_is_exact_for_decimal_betas():
    assert hamming_count(0.29, 100) == 29
    assert hamming_count(0.15, 5000) == 750
    assert hamming_count(0.5, 3) == 1


@pytest.mark.parametrize("beta", [0.0, 0.02, 0.29, 1.0])
def test_perturbation_has_exact_hamming_distance(beta):
    p = ZipfParams(T=1000)
    base, pert = perturbed_pairs(p, beta, seed=[1, 2, 3])
    d = (base != pert).sum(1)
    assert d.tolist() == [hamming_count(beta, p.T)] * 3
    assert int(pert.min()) >= 0 and int(pert.max()) < p.M


def test_perturbation_reference():
    base = zipf_traces(ZipfParams(T=300), [5])
    out = perturb(base, 0.1, 64, [5])[0].tolist()
    key = rng.lane_key(5, 0)
    pk, vk = rng.stream_key(key, rng.STREAM_PERTURB_POS), rng.stream_key(key, rng.STREAM_PERTURB_VALUE)
    d, chosen, T = 30, 0, 300
    for t, orig in enumerate(base[0].tolist()):
        if chosen < d and rng.uniform_below(rng.draw(pk, t), T - t) < d - chosen:
            chosen += 1
            v = rng.uniform_below(rng.draw(vk, t), 63)
            assert out[t] == (v + 1 if v >= orig else v)
        else:
            assert out[t] == orig


def test_retrieval_noise_rate_and_values():
    base = zipf_traces(ZipfParams(T=5000), seed=0, batch=4)
    assert torch.equal(retrieval_noise(base, 1.0, 64, seed=0), base)
    noisy = retrieval_noise(base, 0.8, 64, seed=0)
    rate = (noisy != base).double().mean().item()
    assert abs(rate - 0.2) < 0.01
    assert int(noisy.max()) < 64
    assert (retrieval_noise(base, 0.0, 64, seed=0) != base).all()


def test_cyclic():
    assert cyclic_traces(2, 7).tolist() == [[0, 1, 2, 0, 1, 2, 0]]


@pytest.mark.parametrize("kwargs, match", [
    (dict(W=65), "W must be"), (dict(M=0), "M must be"), (dict(shift=0), "shift"), (dict(T=0), "T must be"),
    (dict(alpha=-1.0), "alpha"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ZipfParams(**kwargs)


def test_bad_beta_and_rho():
    base = zipf_traces(ZipfParams(T=10), [1])
    with pytest.raises(ValueError, match="beta must be in"):
        perturb(base, 1.5, 64, [1])
    with pytest.raises(ValueError, match="rho must be in"):
        retrieval_noise(base, -0.1, 64, [1])
