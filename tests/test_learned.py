"""The ``learned`` policy: numba CPU path == plain-Python reference == Triton kernel, bit for bit;
its checkpoints, options and one-line errors; DAgger collection; the float model's export."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.zoo import learned as L
from gpupage.zoo import learned_dagger as LD
from gpupage.zoo.learned import LearnedNet
from gpupage.zoo.learned_reference import naive_learned

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "learned_v1.pt"
CLOUD = ROOT.parent / "shared" / "traces" / "cloudPhysicsIO.txt"
HELD_OUT = [1000, 1001, 1002, 1003]  # evaluation seeds, never trained or tuned on
interpreter = pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                                 reason="needs CUDA or TRITON_INTERPRET=1")


def random_net(gen, H1=8, H2=4, scale=300) -> LearnedNet:
    """A network with random weights inside the specification's bounds (ties are common at small scale)."""
    return LearnedNet(gen.integers(-scale, scale + 1, (H1, L.N_IN)), gen.integers(-5000, 5001, H1),
                      int(gen.integers(0, 9)), gen.integers(-scale, scale + 1, (H2, H1)), gen.integers(-5000, 5001, H2),
                      int(gen.integers(0, 9)), gen.integers(-scale, scale + 1, H2))


def mru_net(H1=4, H2=2) -> LearnedNet:
    """Scores a slot by its recency feature alone: evicts the most recently used (whatever the candidates allow)."""
    W1, W2, w3 = np.zeros((H1, L.N_IN), np.int64), np.zeros((H2, H1), np.int64), np.zeros(H2, np.int64)
    W1[0, 0] = W2[0, 0] = w3[0] = 1
    return LearnedNet(W1, np.zeros(H1, np.int64), 0, W2, np.zeros(H2, np.int64), 0, w3)


def _batch(gen, B, T, M, pad_prob=0.0):
    tr = gen.integers(0, M, size=(B, T))
    tr[gen.random((B, T)) < pad_prob] = -1
    return torch.from_numpy(tr.astype(np.int32))


def _configs(seed=7, n=14):
    """(traces, K per lane, network, candidates) covering K=1, T=1, pads, an all-pad lane, mixed K,
    K beyond the distinct blocks, tiny and wide networks, and candidate sets."""
    gen = np.random.default_rng(seed)
    out = [(_batch(gen, 3, 1, 4), [1, 2, 3], random_net(gen), None),
           (_batch(gen, 2, 40, 1), [1, 3], random_net(gen, 1, 1), None)]
    for i in range(n):
        B, T, M = int(gen.integers(1, 5)), int(gen.integers(2, 120)), int(gen.integers(2, 30))
        tr = _batch(gen, B, T, M, pad_prob=0.15 * (i % 2))
        if i == 3:
            tr[0] = -1
        H1, H2 = (32, 16) if i == 5 else (int(gen.integers(1, 9)), int(gen.integers(1, 7)))
        cand = int(gen.integers(1, 6)) if i % 3 == 0 else None
        out.append((tr, [int(k) for k in gen.integers(1, 12, size=B)], random_net(gen, H1, H2), cand))
    return out


def _options(net, cand):
    return {"checkpoint": net} if cand is None else {"checkpoint": net, "candidates": cand}


def test_cpu_equals_naive_reference():
    for traces, K, net, cand in _configs():
        res = simulate(traces, "learned", torch.tensor(K), return_hits=True, options=_options(net, cand))
        for b in range(traces.shape[0]):
            f, h, v = naive_learned(traces[b].tolist(), K[b], net, cand)
            assert int(res.faults[b]) == f, (K[b], cand)
            assert res.hits[b].tolist() == h
            assert res.victims[b].tolist() == v, (K[b], cand)


def test_cpu_equals_naive_on_zipf_with_long_gaps():
    """App. B traces: decayed counts reach every half-life's table and saturate (T > 17 * 1024)."""
    gen = np.random.default_rng(3)
    tr = zipf_traces(ZipfParams(M=40, W=8, shift=700, T=20000), seed=[5])
    net = random_net(gen, 4, 3, scale=2000)
    res = simulate(tr, "learned", 6, return_hits=True, options={"checkpoint": net})
    f, h, v = naive_learned(tr[0].tolist(), 6, net)
    assert int(res.faults[0]) == f and res.victims[0].tolist() == v


def test_cpu_equals_naive_with_many_slots_sharing_their_features():
    """At K in the hundreds most slots share their feature vector with another at a decision (the CPU path
    scores each distinct one once, see learned.memo_find): still the reference's victims, every slot or
    candidates; and the recorded decisions show the sharing, so the comparison exercises it."""
    gen = np.random.default_rng(11)
    tr = torch.from_numpy(np.where(gen.random((1, 1500)) < 0.5, gen.integers(0, 30, (1, 1500)),
                                   gen.integers(0, 2000, (1, 1500))).astype(np.int32))
    for K, cand, net in ((300, None, random_net(gen, 8, 4, scale=40)), (257, 120, random_net(gen, 6, 5, scale=40))):
        res = simulate(tr, "learned", K, return_hits=True, options=_options(net, cand))
        f, h, v = naive_learned(tr[0].tolist(), K, net, cand)
        assert int(res.faults[0]) == f and res.victims[0].tolist() == v, (K, cand)
    feats, *_ = LD.collect(tr.numpy().astype(np.int64), np.array([300]), net, 0.0, [0], stride=50)
    distinct = [len(np.unique(d[:, :L.N_SLOT], axis=0)) for d in feats]
    assert max(distinct) < 250, distinct  # every recorded decision has slots that share features


def test_memo_table_finds_each_key_of_its_decision_and_gives_up_when_full():
    """memo_find: a key written this decision is found at its entry; another decision's entries are free;
    a full neighbourhood returns -1 (the score is then computed without the table), never a wrong entry."""
    tkey = np.zeros((16, 2), dtype=np.uint64)
    tstamp = np.zeros(16, dtype=np.int64)
    gen = np.random.default_rng(2)
    feats = [gen.integers(0, 256, L.N_SLOT).astype(np.float32) for _ in range(40)]
    written = {}
    for i, f in enumerate(feats):
        e, a, b = L.memo_find(tkey, tstamp, f, 1)
        if e < 0:
            break
        assert tstamp[e] != 1
        tstamp[e], tkey[e] = 1, (a, b)
        written[i] = e
    assert e < 0 and 8 <= len(written) <= 16  # filled before the 40 keys were in
    for i, e in written.items():
        assert L.memo_find(tkey, tstamp, feats[i], 1)[0] == e
        assert tstamp[L.memo_find(tkey, tstamp, feats[i], 2)[0]] != 2  # a new decision sees a free entry
    one_key, one_stamp = np.zeros((1, 2), dtype=np.uint64), np.zeros(1, dtype=np.int64)  # every probe hits entry 0
    e, a, b = L.memo_find(one_key, one_stamp, feats[0], 1)
    one_stamp[e], one_key[e] = 1, (a, b)
    for q in (0, 7, 8, L.N_SLOT - 1):  # a key that differs in one feature, in either key word
        f = feats[0].copy()
        f[q] = (f[q] + 1) % 256
        assert L.memo_find(one_key, one_stamp, f, 1)[0] == -1, q
    assert L.memo_find(one_key, one_stamp, feats[0], 1)[0] == 0
    assert L.memo_entries(np.array([4096]), 0) == 16384 and L.memo_entries(np.array([4096]), 64) == 256
    assert L.memo_entries(np.array([1 << 20]), 0) == L.MEMO_MAX and L.memo_entries(np.array([1]), 0) == 16


def adaptive_net() -> LearnedNet:
    """score = epoch priority + 256 * 255 when protected: adaptive's key while counts stay below 256."""
    W1 = np.zeros((2, L.N_IN), dtype=np.int64)
    W1[0, L.FEATURES.index("epoch")] = 1
    W1[1, L.FEATURES.index("protected")] = 1
    return LearnedNet(W1, [0, 0], 0, np.eye(2, dtype=np.int64), [0, 0], 0, [1, 256])


def test_the_change_detector_features_make_adaptive():
    """Features 8 and 10 are adaptive's priority and protection, computed after request t's access: a network
    reading only them evicts adaptive's victim at every fault (phase changes of every length, several K)."""
    for shift, K in ((200, 4), (500, 8), (2000, 16), (90, 6)):
        tr = zipf_traces(ZipfParams(M=64, W=16, shift=shift, T=3000), seed=[11, 12])
        got = simulate(tr, "learned", K, return_hits=True, options={"checkpoint": adaptive_net()})
        ref = simulate(tr, "adaptive", K, return_hits=True)
        assert torch.equal(got.victims, ref.victims), (shift, K)
        assert torch.equal(got.faults, ref.faults)
    f, _, v = naive_learned(tr[0].tolist(), 6, adaptive_net())
    assert v == ref.victims[0].tolist() and f == int(ref.faults[0])


def test_a_version_1_checkpoint_loads_with_zero_weights_on_the_new_features(tmp_path):
    net = random_net(np.random.default_rng(9))
    v1_cols = [L.FEATURES.index(f) for f in L.FEATURES_V1]
    d = L.checkpoint_dict(net)
    d["spec_version"], d["features"] = 1, list(L.FEATURES_V1)
    d["network"]["W1"] = d["network"]["W1"][:, v1_cols]
    torch.save(d, tmp_path / "v1.pt")
    back = L.load_network(tmp_path / "v1.pt")
    assert np.array_equal(back.W1[:, v1_cols], net.W1[:, v1_cols])
    assert not back.W1[:, [i for i in range(L.N_IN) if i not in v1_cols]].any()
    raw = torch.load(SHIPPED, weights_only=True)
    assert raw["spec_version"] == 1 and L.load_network(SHIPPED).W1.shape[1] == L.N_IN


def test_log2fx_is_mitchell_with_three_fraction_bits():
    vals = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 255, 256, 65535, 65536, 2**30, 2**31 - 2, 2**31 - 1]
    vals += list(np.random.default_rng(0).integers(0, 2**31 - 1, 200))
    for v in vals:
        u = int(v) + 1
        e = math.floor(math.log2(u))
        assert L.log2fx(int(v)) == 8 * e + math.floor(8 * (u / 2**e - 1)), v
    assert [L.log2fx(v) for v in (0, 1, 2, 2**31 - 1)] == [0, 8, 12, 248]


def test_decay_tables():
    frac = L.decay_fracs()
    assert frac.shape == (sum(L.HALF_LIVES),)
    for h, off in zip(L.HALF_LIVES, L.FRAC_OFFSETS):
        block = frac[off:off + h]
        assert block[0] == L.ONE and (np.diff(block) < 0).all() and block[-1] > L.ONE // 2
        assert abs(block[h // 2] / L.ONE - 2 ** -0.5) < 1e-4
    assert L.rate_muls().tolist() == [round(L.ONE * (1 - 2 ** (-1 / h))) for h in L.HALF_LIVES]


def test_one_candidate_is_lru_and_enough_candidates_are_all():
    gen = np.random.default_rng(4)
    tr = zipf_traces(ZipfParams(T=2000), seed=[1, 2, 3])
    net = random_net(gen, 8, 4)
    lru = simulate(tr, "lru", 8, return_hits=True)
    one = simulate(tr, "learned", 8, return_hits=True, options={"checkpoint": net, "candidates": 1})
    assert torch.equal(one.victims, lru.victims)
    every = simulate(tr, "learned", 8, return_hits=True, options={"checkpoint": net})
    for c in (8, 9, 1000):
        same = simulate(tr, "learned", 8, return_hits=True, options={"checkpoint": net, "candidates": c})
        assert torch.equal(same.victims, every.victims)
    assert not torch.equal(every.victims, lru.victims)  # the network is not LRU: the checks can fail


def test_network_bounds():
    gen = np.random.default_rng(5)
    net = random_net(gen)
    args = dict(W1=net.W1, b1=net.b1, s1=net.s1, W2=net.W2, b2=net.b2, s2=net.s2, w3=net.w3)
    big = dict(args, W1=np.full_like(net.W1, 32767))  # |b| + 255 sum |w| reaches 2**24
    for bad, words in [(dict(args, W1=net.W1[:, :5]), "inconsistent shapes"), (dict(args, s1=31), "shifts"),
                       (dict(args, W2=net.W2 * 200), "int16"), (big, r"2\*\*24"),
                       (dict(args, W1=np.zeros((33, L.N_IN)), b1=np.zeros(33), W2=np.zeros((4, 33))), "H1, H2 <= 32")]:
        with pytest.raises(ValueError, match=words):
            LearnedNet(**bad)
    assert net.macs_per_decision(8) == 8 * (11 * 8 + 8 * 4 + 4) + 9 * 8


def test_checkpoint_round_trip_and_one_line_errors(tmp_path):
    net = random_net(np.random.default_rng(6))
    path = tmp_path / "n.pt"
    torch.save(L.checkpoint_dict(net, {"command": "x"}), path)
    raw = torch.load(path, weights_only=True)  # plain types and tensors only
    assert raw["spec_version"] == L.SPEC_VERSION and raw["features"] == list(L.FEATURES)
    back = L.load_network(path)
    for name in ("W1", "b1", "W2", "b2", "w3"):
        assert np.array_equal(getattr(back, name), getattr(net, name))
    tr = torch.randint(0, 20, (2, 300), generator=torch.Generator().manual_seed(0))
    assert torch.equal(simulate(tr, "learned", 5, options={"checkpoint": str(path)}).faults,
                       simulate(tr, "learned", 5, options={"checkpoint": net}).faults)
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"not a checkpoint")
    other = tmp_path / "o.pt"
    torch.save({"format": "gpupage-controller-1"}, other)
    old = tmp_path / "v0.pt"
    torch.save(dict(L.checkpoint_dict(net), spec_version=0), old)
    feats = tmp_path / "f.pt"
    torch.save(dict(L.checkpoint_dict(net), features=list(L.FEATURES)[:-1]), feats)
    cases = [({}, ValueError, "needs a checkpoint"),
             ({"checkpoint": str(tmp_path / "none.pt")}, OSError, "no checkpoint"),
             ({"checkpoint": str(garbage)}, ValueError, "not a learned-policy checkpoint"),
             ({"checkpoint": str(other)}, ValueError, "gpupage-controller-1"),
             ({"checkpoint": str(old)}, ValueError, "spec version 0"),
             ({"checkpoint": str(feats)}, ValueError, "features"),
             ({"checkpoint": net, "candidates": 0}, ValueError, r"candidates must be an integer in \[1, 2\*\*31\]"),
             ({"checkpoint": net, "candidates": 2**64}, ValueError, "candidates"),
             ({"checkpoint": net, "candidates": True}, ValueError, "candidates"),
             ({"checkpoint": net, "candidates": "8"}, ValueError, "candidates")]
    for options, err, words in cases:
        with pytest.raises(err, match=words) as info:
            simulate(tr, "learned", 5, options=options)
        assert "\n" not in str(info.value)


def test_an_option_learned_does_not_read_is_refused():
    net = random_net(np.random.default_rng(7))
    tr = zipf_traces(ZipfParams(T=500), seed=[5])
    with pytest.raises(ValueError, match="policy 'learned' reads no option 'eta'; it reads checkpoint, candidates"):
        simulate(tr, "learned", 4, options={"checkpoint": net, "eta": 1.0})


def test_collect_rolls_out_belady_or_the_network_itself():
    zp = ZipfParams(M=40, W=12, shift=150, T=1500)
    seeds = [10001, 10002, 10003]
    tr = zipf_traces(zp, seed=seeds).numpy()
    K = np.array([4, 6, 8])
    feats, dist, faults, decisions = LD.collect(tr, K, None, 1.0, seeds)
    opt = simulate(torch.from_numpy(tr), "belady", torch.from_numpy(K)).faults.numpy()
    assert np.array_equal(faults, opt) and np.array_equal(decisions, opt - K)
    assert feats.shape == (decisions.sum(), 8, L.N_IN) and dist.shape == (decisions.sum(), 8)
    rows = np.repeat(K, decisions)
    assert ((dist >= 0).sum(1) == rows).all() and (dist[rows == 4, 4:] == -1).all()
    assert (feats[:, :, L.FEATURES.index("log2_k")][dist >= 0] == np.repeat([L.log2fx(k) for k in K], decisions * K)).all()
    net = random_net(np.random.default_rng(8))
    _, _, learner, _ = LD.collect(tr, K, net, 0.0, seeds)
    assert np.array_equal(learner, simulate(torch.from_numpy(tr), "learned", torch.from_numpy(K),
                                            options={"checkpoint": net}).faults.numpy())
    _, _, mixed, _ = LD.collect(tr, K, net, 0.5, seeds)
    assert (mixed != learner).any() and (mixed != opt).any()
    assert np.array_equal(mixed, LD.collect(tr, K, net, 0.5, seeds)[2])  # mixing draws are deterministic


def _table_expert_loop(trace, k, cls, rank):
    """Faults of demand paging that evicts the block of largest rank[cls[L(count)], L(age)], ties to the least
    recently accessed, as a plain loop."""
    cache, count, last, faults = [], {}, {}, 0
    for t, b in enumerate(trace.tolist()):
        if b < 0:
            continue
        if b not in cache:
            faults += 1
            if len(cache) == k:
                cache.remove(max(cache, key=lambda c: (rank[cls[L.log2fx(count[c])], L.log2fx(t - last[c])], -last[c])))
            cache.append(b)
        count[b], last[b] = count.get(b, 0) + 1, t
    return faults


def test_collect_with_a_table_expert_rolls_out_the_table():
    """teacher=(cls, rank): the expert is the table (largest rank by count class and L(age), LRU ties), a plain
    loop's policy; what is recorded (features, next-use distances) is as with Belady acting."""
    zp = ZipfParams(M=40, W=12, shift=150, T=1500)
    seeds = [10001, 10002, 10003]
    tr = zipf_traces(zp, seed=seeds).numpy()
    K = np.array([4, 6, 8])
    g = np.random.default_rng(3)
    cls = np.minimum(np.arange(256) // 10, 3)
    rank = g.integers(0, 6, (3, 4, 249))  # few values: many ties
    feats, dist, faults, decisions = LD.collect(tr, K, None, 1.0, seeds, teacher=(cls, rank))
    assert faults.tolist() == [_table_expert_loop(tr[b], K[b], cls, rank[b]) for b in range(3)]
    opt = simulate(torch.from_numpy(tr), "belady", torch.from_numpy(K)).faults.numpy()
    assert (faults > opt).all() and np.array_equal(decisions, faults - K)
    rows = np.repeat(K, decisions)
    assert ((dist >= 0).sum(1) == rows).all() and feats.shape == (decisions.sum(), 8, L.N_IN)
    net = random_net(np.random.default_rng(8))
    learner = LD.collect(tr, K, net, 0.0, seeds, teacher=(cls, rank))
    assert all(np.array_equal(a, b) for a, b in zip(learner, LD.collect(tr, K, net, 0.0, seeds)))  # the net alone
    mixed = LD.collect(tr, K, net, 0.5, seeds, teacher=(cls, rank))[2]
    assert (mixed != LD.collect(tr, K, net, 0.5, seeds)[2]).any() and (mixed != learner[2]).any()
    for bad, words in (((cls[:10], rank), "cls"), ((cls, rank[:2]), "rank"), ((cls + 3, rank), "index")):
        with pytest.raises(ValueError, match=words):
            LD.collect(tr, K, None, 1.0, seeds, teacher=bad)


def test_collect_with_candidates_records_the_least_recently_used():
    zp = ZipfParams(M=40, W=12, shift=150, T=1500)
    seeds = [10001, 10002]
    tr = zipf_traces(zp, seed=seeds).numpy()
    K = np.array([6, 8])
    net = random_net(np.random.default_rng(9))
    feats, dist, learner, decisions = LD.collect(tr, K, net, 0.0, seeds, candidates=3)
    assert feats.shape == (decisions.sum(), 3, L.N_IN) and (dist >= 0).all()
    assert (np.diff(feats[:, :, 0].astype(int), axis=1) <= 0).all()  # oldest access first
    assert np.array_equal(learner, simulate(torch.from_numpy(tr), "learned", torch.from_numpy(K),
                                            options={"checkpoint": net, "candidates": 3}).faults.numpy())
    every = LD.collect(tr, K, net, 0.3, seeds)
    for a, b in zip(LD.collect(tr, K, net, 0.3, seeds, candidates=8), every):
        assert np.array_equal(a, b)  # C >= K: every slot, in slot order
    opt = simulate(torch.from_numpy(tr), "belady", torch.from_numpy(K)).faults.numpy()
    assert (LD.collect(tr, K, None, 1.0, seeds, candidates=3)[2] >= opt).all()
    f3, d3, _, dec3 = LD.collect(tr, K, net, 0.0, seeds, candidates=3, stride=3)
    keep = np.concatenate([np.arange(n) % 3 == 0 for n in decisions])
    assert np.array_equal(dec3, decisions) and np.array_equal(f3, feats[keep]) and np.array_equal(d3, dist[keep])


def test_quantised_export_tracks_the_float_model():
    from gpupage.controller.slotnet import SlotNet, float_net, quantise

    torch.manual_seed(0)
    model = SlotNet((16, 8))
    tr = zipf_traces(ZipfParams(T=3000), seed=[10005, 10006]).numpy()
    feats = torch.from_numpy(LD.collect(tr, np.array([8, 8]), None, 1.0, [10005, 10006])[0].reshape(-1, L.N_IN))
    net = quantise(model, feats)
    _, _, score = model.activations(feats)
    x = feats.long().numpy()
    h1 = np.clip((x @ net.W1.T.astype(np.int64) + net.b1) >> net.s1, 0, 255)
    h2 = np.clip((h1 @ net.W2.T.astype(np.int64) + net.b2) >> net.s2, 0, 255)
    iscore = h2 @ net.w3.astype(np.int64)
    corr = np.corrcoef(iscore, score.detach().numpy())[0, 1]
    assert corr > 0.99, corr
    flt = LD.float_faults(tr, np.array([8, 8]), float_net(model))
    quant = simulate(torch.from_numpy(tr), "learned", 8, options={"checkpoint": net}).faults.numpy()
    assert abs(quant.sum() / flt.sum() - 1) < 0.02


def test_a_quantile_export_saturates_outliers_and_keeps_levels_for_the_rest():
    from gpupage.controller.slotnet import SlotNet, quantise

    torch.manual_seed(0)
    model = SlotNet((16, 8))
    bulk = torch.randint(0, 40, (20000, L.N_IN), dtype=torch.uint8)
    calib = torch.cat([bulk, torch.full((4, L.N_IN), 255, dtype=torch.uint8)])  # a few outlier rows
    a1 = model.activations(calib)[0].detach()
    assert float(a1.max()) > 2 * float(torch.quantile(a1.flatten(), 0.999))  # the outliers dominate the maximum
    top, q = quantise(model, calib), quantise(model, calib, 0.999)
    x = bulk.long().numpy()

    def levels(net):
        return len(np.unique(np.clip((x @ net.W1.T.astype(np.int64) + net.b1) >> net.s1, 0, 255)))

    assert q.s1 < top.s1 and levels(q) > levels(top)  # a finer activation scale: more levels on the bulk
    h = np.clip((np.full(L.N_IN, 255) @ q.W1.T.astype(np.int64) + q.b1) >> q.s1, 0, 255)
    assert h.max() == 255  # and the outliers saturate


def test_training_round_trip(tmp_path):
    from gpupage.controller.slotnet import TrainConfig, checkpoint, train

    cfg = TrainConfig(lanes=6, rounds=1, epochs=1, check_lanes=4, batch_size=256)
    model, net, report = train(cfg)
    assert [r["round"] for r in report["rounds"]] == [0, 1] and report["rounds"][1]["beta"] == 0.5
    assert set(report["check"]) == {"randomised", "default_K4", "default_K8", "default_K16"}
    path = tmp_path / "c.pt"
    torch.save(checkpoint(model, net, cfg, report, "test"), path)
    ck = torch.load(path, weights_only=True)
    assert ck["meta"]["trained_K"] == [4, 8, 16] and ck["meta"]["command"] == "test"
    assert np.array_equal(L.load_network(path).W1, net.W1)


@pytest.mark.skipif(not SHIPPED.exists(), reason="checkpoints/learned_v1.pt not built")
def test_shipped_checkpoint_beats_lru_on_held_out_seeds():
    ck = torch.load(SHIPPED, weights_only=True)
    assert ck["meta"]["command"].startswith("python -m gpupage.controller.slotnet ")
    assert SHIPPED.stat().st_size < 64 * 1024
    tr = zipf_traces(ZipfParams(), seed=HELD_OUT)
    for K in (4, 8):
        mine = simulate(tr, "learned", K, options={"checkpoint": str(SHIPPED)}).faults
        assert (mine < simulate(tr, "lru", K).faults).all(), K
    net = L.load_network(SHIPPED)
    f, h, v = naive_learned(tr[0, :1500].tolist(), 8, net)
    res = simulate(tr[:1, :1500], "learned", 8, return_hits=True, options={"checkpoint": net})
    assert int(res.faults[0]) == f and res.victims[0].tolist() == v


def test_cli_simulate_and_sweep(tmp_path):
    from gpupage.cli import main

    trace = tmp_path / "t.txt"
    ids = zipf_traces(ZipfParams(T=800), seed=[3])[0].tolist()
    trace.write_text("\n".join(str(i + 10**9) for i in ids) + "\n")
    net = random_net(np.random.default_rng(9))
    ckpt = tmp_path / "n.pt"
    torch.save(L.checkpoint_dict(net), ckpt)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    res = run("simulate", trace, "--policy", "learned,adaptive", "--K", "4,8", "--checkpoint", ckpt, "--json")
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if '"learned"' in ln]
    want = simulate(torch.tensor(ids).expand(2, -1), "learned", torch.tensor([4, 8]), options={"checkpoint": net})
    assert [int(ln.split('"faults": ')[1].split(",")[0]) for ln in lines] == want.faults.tolist()
    res = run("simulate", trace, "--policy", "learned", "--K", "4", "--checkpoint", ckpt, "--candidates", "1")
    lru = simulate(torch.tensor(ids), "lru", 4).faults
    assert res.exit_code == 0 and f"faults={int(lru[0])} " in res.output
    for args, words in [((), "needs a checkpoint"), (("--checkpoint", ROOT / "checkpoints" / "pagecontroller_k8.pt"),
                                                     "not a learned-policy checkpoint"),
                        (("--checkpoint", ckpt, "--candidates", "0"), "candidates"),
                        (("--checkpoint", ckpt, "--candidates", str(2**64)), "candidates")]:
        res = run("simulate", trace, "--policy", "learned", "--K", "4", *args)
        assert res.exit_code != 0 and "Traceback" not in res.output
        errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
        assert len(errors) == 1 and words in errors[0], res.output
    out = tmp_path / "s.csv"
    res = run("sweep", "--policies", "lru,learned", "--K", "4", "--seeds", "1-2", "--T", "600", "--out", out,
              "--checkpoint", ckpt, "--quiet")
    assert res.exit_code == 0, res.output
    rows = [ln.split(",") for ln in out.read_text().splitlines()[1:]]
    mine = simulate(zipf_traces(ZipfParams(T=600), seed=[1, 2]), "learned", 4, options={"checkpoint": net}).faults
    assert [int(r[6]) for r in rows if r[0] == "learned"] == mine.tolist()


def test_cli_mrc_runs_learned_and_records_the_checkpoints_content(tmp_path):
    """``mrc --policies learned --checkpoint C [--candidates N]`` against the plain-Python reference; the
    results' specification names the checkpoint by its SHA-256, so a resume after the file changed is refused
    (as a sweep's is) instead of mixing two networks' rows."""
    from gpupage.cli import main

    trace = tmp_path / "t.txt"
    ids = zipf_traces(ZipfParams(T=500), seed=[4])[0].tolist()
    trace.write_text("\n".join(str(i) for i in ids) + "\n")
    dense = {}
    lane = [dense.setdefault(i, len(dense)) for i in ids]  # the file's ids, densified as read_trace does
    net = random_net(np.random.default_rng(11))
    ckpt = tmp_path / "n.pt"
    torch.save(L.checkpoint_dict(net), ckpt)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    out = tmp_path / "m"
    res = run("mrc", trace, "--policies", "learned,lru", "--K", "3,8", "--checkpoint", ckpt, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    rows = {(r.split(",")[0], int(r.split(",")[1])): int(r.split(",")[3])
            for r in (out / "mrc.csv").read_text().splitlines()[1:]}
    for K in (3, 8):
        assert rows[("learned", K)] == naive_learned(lane, K, net)[0]
    res = run("mrc", trace, "--policies", "learned", "--K", "8", "--checkpoint", ckpt, "--candidates", "1",
              "--out", tmp_path / "c1", "--quiet")
    assert res.exit_code == 0 and (tmp_path / "c1" / "mrc.csv").read_text().splitlines()[1].split(",")[3] == \
        str(rows[("lru", 8)])  # one candidate is LRU
    torch.save(L.checkpoint_dict(random_net(np.random.default_rng(12))), ckpt)  # retrained in place
    res = run("mrc", trace, "--policies", "learned,lru", "--K", "3,8", "--checkpoint", ckpt, "--out", out, "--quiet")
    assert res.exit_code != 0 and "different run" in res.output and "Traceback" not in res.output
    sweep = tmp_path / "s.csv"
    args = ["sweep", "--policies", "learned", "--K", "4", "--seeds", "1", "--T", "300", "--out", sweep,
            "--checkpoint", ckpt, "--quiet"]
    assert run(*args).exit_code == 0
    torch.save(L.checkpoint_dict(net), ckpt)
    res = run(*args)
    assert res.exit_code != 0 and "different run" in res.output
    for cmd in (["mrc", trace, "--out", tmp_path / "x", "--policies", "lru"], ["simulate", trace, "--policy", "lru"],
                ["sweep", "--policies", "lru", "--out", tmp_path / "x.csv"]):
        res = run(*cmd, "--checkpoint", ckpt, "--quiet" if cmd[0] != "simulate" else "--json")
        assert res.exit_code != 0 and "is read by none of lru" in res.output  # refused, not ignored


# ---------------------------------------------------------------------------------------------
# The Triton kernel under the interpreter (or on a GPU) equals the CPU path exactly.


def _triton_cases():
    """Both kernels: register tiles (K <= 8, 16, 64, mixed K and pads, an all-pad lane, T = 1, K = 1)
    and the chunked scan (small chunks, so several per decision), with and without candidates
    (one candidate: LRU; C >= K on some lanes: every slot; C over several chunks)."""
    gen = np.random.default_rng(11)
    cases = [(_batch(gen, 9, 36, 14, 0.1), [1, 2, 3, 5, 8, 8, 7, 4, 6], random_net(gen, 4, 2), None, None),
             (_batch(gen, 5, 40, 24), [9, 16, 12, 3, 16], random_net(gen, 8, 3), 4, None),
             (_batch(gen, 2, 40, 50), [40, 23], random_net(gen, 2, 2), 17, None),
             (_batch(gen, 2, 50, 90), [70, 41], random_net(gen, 4, 3), None, 16),
             (_batch(gen, 1, 60, 100), [75], random_net(gen, 2, 2), 19, 32),
             (_batch(gen, 8, 1, 5), [1, 2, 3, 4, 5, 6, 7, 8], random_net(gen, 2, 1), None, None),
             (_batch(gen, 6, 33, 9, 0.2), [1, 1, 2, 3, 5, 7], random_net(gen, 4, 4), 1, None),
             (_batch(gen, 1, 45, 80), [65], random_net(gen, 2, 2), 1, 64),
             (_batch(gen, 2, 160, 100, 0.05), [60, 37], mru_net(), 40, 16)]
    cases[0][0][3] = -1
    return cases


@pytest.mark.interpreter
@interpreter
@pytest.mark.parametrize("case", range(9))
def test_triton_equals_cpu(case):
    _assert_triton_equals_cpu(*_triton_cases()[case])


def _assert_triton_equals_cpu(traces, K, net, cand, chunk):
    """Faults, hits and victims of the kernel equal the CPU path's (chunk: the chunked kernel with chunks small
    enough to need several per decision); returns the CPU result."""
    from kernels import learned as KL

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    options = _options(net, cand)
    cpu = simulate(traces, "learned", torch.tensor(K), backend="cpu", return_hits=True, options=options)
    if chunk is None:
        tri = simulate(traces.to(dev), "learned", torch.tensor(K), backend="triton", return_hits=True, options=options)
        faults, hits, victims = tri.faults, tri.hits, tri.victims
    else:
        faults, hits, victims = KL.launch(traces.t().contiguous().to(dev), torch.tensor(K).to(dev), net, cand or 0,
                                          int(traces.max()) + 1, max(K), True, chunk=chunk)
        hits, victims = hits.t().bool(), victims.t().long()
    assert torch.equal(faults.cpu(), cpu.faults)
    assert torch.equal(hits.cpu(), cpu.hits)
    assert torch.equal(victims.cpu(), cpu.victims)
    return cpu


@pytest.mark.interpreter
@interpreter
@pytest.mark.parametrize("case", [1, 2, 6])
def test_triton_candidates_by_the_other_method(case, monkeypatch):
    """The register kernel's cases with candidates, by the method the installed Triton does not use (rank
    before 3.9, the binary search from 3.9 on; kernels.learned.RANK_CANDIDATES)."""
    from kernels import learned as KL

    monkeypatch.setattr(KL, "RANK_CANDIDATES", not KL.RANK_CANDIDATES)
    _assert_triton_equals_cpu(*_triton_cases()[case])


@pytest.mark.interpreter
@interpreter
def test_triton_equals_cpu_with_the_shipped_widths():
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    net = L.load_network(SHIPPED) if SHIPPED.exists() else random_net(np.random.default_rng(12), 32, 16, scale=200)
    traces = zipf_traces(ZipfParams(M=30, W=10, shift=20, T=40), seed=[1, 2, 3, 4, 5])
    K = torch.tensor([4, 8, 2, 7, 5])
    cpu = simulate(traces, "learned", K, return_hits=True, options={"checkpoint": net})
    tri = simulate(traces.to(dev), "learned", K, backend="triton", return_hits=True, options={"checkpoint": net})
    assert torch.equal(tri.faults.cpu(), cpu.faults) and torch.equal(tri.victims.cpu(), cpu.victims)


def test_triton_rejects_non_power_of_two_width():
    from kernels import learned as KL

    net = random_net(np.random.default_rng(13), 6, 2)
    with pytest.raises(ValueError, match="power-of-two"):
        KL.launch(torch.zeros((4, 1), dtype=torch.int32), torch.tensor([2]), net, 0, 1, 2, False)


def _phased(gen, K, T, M, W, shift, pad_prob=0.0):
    """Zipf phases for lanes of cache sizes K (working-set changes fire the change detector), with pads."""
    tr = zipf_traces(ZipfParams(M=M, W=W, shift=shift, T=T), seed=gen.integers(0, 2**31, len(K)).tolist())
    tr[torch.from_numpy(gen.random(tr.shape) < pad_prob)] = -1
    return tr.to(torch.int32), K


def _v1_of(net: LearnedNet) -> LearnedNet:
    """net without its weights on the change detector's features (as a version-1 checkpoint loads)."""
    W1 = net.W1.copy()
    W1[:, [i for i, f in enumerate(L.FEATURES) if f not in L.FEATURES_V1]] = 0
    return LearnedNet(W1, net.b1, net.s1, net.W2, net.b2, net.s2, net.w3)


def _phased_cases():
    """(traces, K, network, candidates, chunk): K = 1, 3, 8, 17, 64 on the register kernel and a chunked
    case with several chunks per decision, each with per-lane K, pads and phase changes."""
    gen = np.random.default_rng(21)
    return [(*_phased(gen, [1, 3], 300, 24, 4, 90, 0.1), random_net(gen, 8, 4), None, None),
            (*_phased(gen, [8, 3, 5], 300, 40, 10, 100, 0.05), random_net(gen, 8, 4), None, None),
            (*_phased(gen, [17, 12], 300, 60, 20, 100), random_net(gen, 4, 4), 6, None),
            (*_phased(gen, [64, 40], 300, 200, 70, 100, 0.05), random_net(gen, 4, 2), None, None),
            (*_phased(gen, [80, 66], 300, 300, 90, 100, 0.05), random_net(gen, 4, 2), 30, 32)]


@pytest.mark.interpreter
@interpreter
@pytest.mark.parametrize("case", range(5))
def test_triton_equals_cpu_through_working_set_changes(case):
    traces, K, net, cand, chunk = _phased_cases()[case]
    cpu = _assert_triton_equals_cpu(traces, K, net, cand, chunk)
    v1 = simulate(traces, "learned", torch.tensor(K), backend="cpu", return_hits=True,
                  options=_options(_v1_of(net), cand))
    assert not torch.equal(v1.victims, cpu.victims)  # the new features change decisions: the check can fail


def _fresh_residents(Ks, n=100, seed=1):
    """Lanes where adaptive is not LRU at large K: K - 1 blocks, one block twice, the K - 1 again (every resident
    block is fresh and their epoch counts differ), then new blocks (40%), five hot ones (20%) and revisits."""
    gen, rows = np.random.default_rng(seed), []
    for K in Ks:
        old, new = list(range(10, 9 + K)), iter(range(500, 500 + n))
        tail = [next(new) if u < 0.4 else int(gen.integers(0, 5)) if u < 0.6 else int(gen.choice(old))
                for u in gen.random(n)]
        rows.append(old + [0, 0] + old + tail)
    tr = torch.full((len(rows), max(map(len, rows))), -1, dtype=torch.int64)
    for i, row in enumerate(rows):
        tr[i, :len(row)] = torch.tensor(row)
    return tr


@pytest.mark.interpreter
@interpreter
def test_triton_adaptive_mimic_is_adaptive():
    """The network reading only features 8 and 10 evicts adaptive's victims on both kernels."""
    from kernels import learned as KL

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tr = zipf_traces(ZipfParams(M=160, W=40, shift=100, T=220), seed=[31, 32])
    K = torch.tensor([4, 16])
    ref = simulate(tr, "adaptive", K, return_hits=True)
    assert not torch.equal(simulate(tr, "lru", K, return_hits=True).victims, ref.victims)  # the check can fail
    got = simulate(tr.to(dev), "learned", K, backend="triton", return_hits=True, options={"checkpoint": adaptive_net()})
    assert torch.equal(got.victims.cpu(), ref.victims) and torch.equal(got.faults.cpu(), ref.faults)
    K = torch.tensor([40, 35])  # the chunked kernel, three chunks of 16 slots a decision
    tr = _fresh_residents(K.tolist())
    ref = simulate(tr, "adaptive", K, return_hits=True)
    assert all(not torch.equal(a, b) for a, b in zip(simulate(tr, "lru", K, return_hits=True).victims, ref.victims))
    faults, _, victims = KL.launch(tr.t().contiguous().to(torch.int32).to(dev), K.to(dev), adaptive_net(), 0,
                                   int(tr.max()) + 1, 40, True, chunk=16)
    assert torch.equal(victims.t().long().cpu(), ref.victims) and torch.equal(faults.cpu(), ref.faults)
