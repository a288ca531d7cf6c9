"""gpupage.controller.hit_density: the LHD table and its rollout, against plain loops and the registry."""

import numpy as np
import pytest
import torch

from gpupage.controller import hit_density as H
from gpupage.core.shards import sample_mask
from gpupage.core.simulate import simulate
from gpupage.zoo.learned import log2fx


def _trace(seed, T=3000, n=200):
    """Zipf-like requests with a moving hot set: hits and evictions at many ages."""
    g = np.random.default_rng(seed)
    base = (g.zipf(1.3, T) % n + (np.arange(T) // 700) * 37) % (2 * n)
    return base.astype(np.int64)


def test_bucket_ages_are_the_middles_of_the_ages_each_bucket_holds():
    mid = H.bucket_ages()
    ages = np.arange(1 << 17)
    L = np.array([log2fx(int(a)) for a in ages])
    for b in np.unique(L[L < L[-1]]):  # the buckets held whole below 2**17
        held = ages[L == b]
        assert mid[b] == (held[0] + held[-1]) / 2
    assert np.all(np.diff(mid[24:]) > 0)


def test_count_classes_match_a_loop():
    ids = _trace(0)
    got = H.count_classes(ids)
    seen = {}
    for t, x in enumerate(ids.tolist()):
        seen[x] = seen.get(x, 0) + 1
        c = seen[x]
        assert got[t] == (0 if c == 1 else 1 if c == 2 else 2 if c == 3 else 3 if c < 8 else 4)


def test_hit_density_matches_its_definition_in_a_loop():
    """Hits still to come over the space-time still to be spent, an end at age x costing mid[x] - mid[a] + 1."""
    g = np.random.default_rng(3)
    hits = g.integers(0, 5, (3, H.N_AGES)).astype(float)
    evictions = g.integers(0, 5, (3, H.N_AGES)).astype(float)
    hits[2] = evictions[2] = 0  # a class never seen has density 0
    mid = H.bucket_ages()
    D = H.hit_density(hits, evictions)
    for c in range(2):
        for a in range(0, H.N_AGES, 7):
            life = sum((hits[c, x] + evictions[c, x]) * (mid[x] - mid[a] + 1) for x in range(a, H.N_AGES))
            assert np.isclose(D[c, a], hits[c, a:].sum() / life, rtol=1e-12, atol=0)
    assert not D[2].any()


@pytest.mark.parametrize("K", [1, 5, 32])
def test_rollout_counts_events_like_a_loop_and_is_lfu_or_lru(K):
    """Without a table the rollout is the registry's LFU; with a table falling in age it is LRU.  Either way its
    hit and eviction counts, by count class and L(age), are a plain loop's."""
    ids = _trace(K)
    x = torch.from_numpy(ids)[None]
    distinct = len(np.unique(ids))
    falling = np.tile(-np.arange(H.N_AGES, dtype=float), (H.N_COUNT, 1))
    for table, name in ((None, "lfu"), (falling, "lru")):
        faults, hits, evictions = H.rollout(ids, K, table)
        assert faults == int(simulate(x, name, K).faults[0]) - distinct
        want_h, want_e = np.zeros_like(hits), np.zeros_like(evictions)
        cache, count, last = [], {}, {}
        klass = lambda b: int(np.searchsorted(H.COUNT_BOUNDS, count[b], side="right"))  # noqa: E731
        for t, b in enumerate(ids.tolist()):
            if b in cache:
                want_h[klass(b), log2fx(t - last[b])] += 1
            elif len(cache) == K:
                if name == "lru":
                    v = min(cache, key=lambda c: last[c])
                else:
                    v = min(cache, key=lambda c: (count[c], last[c]))
                want_e[klass(v), log2fx(t - last[v])] += 1
                cache.remove(v)
            if b not in cache:
                cache.append(b)
            count[b], last[b] = count.get(b, 0) + 1, t
        assert np.array_equal(hits, want_h) and np.array_equal(evictions, want_e)
        assert want_h.sum() > 50 and want_e.sum() > 50


def test_estimate_is_a_ranking_of_its_own():
    """The estimated table is a real ranking (here it is neither LFU nor LRU), and rounds < 1 are refused."""
    ids = _trace(7, T=6000)
    K = 16
    table = H.estimate(ids, K, rounds=3)
    assert table.shape == (H.N_COUNT, H.N_AGES) and table.max() > 0
    faults = H.rollout(ids, K, table)[0]
    x = torch.from_numpy(ids)[None]
    distinct = len(np.unique(ids))
    assert faults not in {int(simulate(x, p, K).faults[0]) - distinct for p in ("lfu", "lru")}
    with pytest.raises(ValueError, match="rounds"):
        H.estimate(ids, K, rounds=0)


def test_the_teacher_reads_the_table_off_the_features():
    """L(count) gives the count class exactly; the teacher's target for a recorded slot is the table at that class
    and L(recency), lower density = farther."""
    for c in range(1, 300):
        assert (np.searchsorted(H.L_COUNT_BOUNDS, log2fx(c), side="right")
                == np.searchsorted(H.COUNT_BOUNDS, c, side="right"))
    table = H.estimate(_trace(7, T=6000), 16, rounds=2)
    g = np.random.default_rng(1)
    count, age = g.integers(1, 40, (4, 6)), g.integers(0, 5000, (4, 6))
    feats = np.zeros((4, 6, 20), dtype=np.uint8)
    feats[..., 3] = np.vectorize(log2fx)(count)
    feats[..., 0] = np.vectorize(log2fx)(age)
    dist = H.teacher_distance(feats, table)
    d = table[np.searchsorted(H.COUNT_BOUNDS, count, side="right"), feats[..., 0]]
    for i in range(4):
        for j in range(6):
            for k in range(6):
                assert (dist[i, j] > dist[i, k]) == (d[i, j] < d[i, k])


def _lfu_mru_loop(ids, K, dead_age=0):
    """Non-compulsory faults of the lowest count class, then the youngest L(age), then the least recently accessed;
    with dead_age, blocks with L(age) >= L(dead_age) first, the least recently accessed of them."""
    cache, count, last, faults = [], {}, {}, 0
    klass = lambda b: int(np.searchsorted(H.COUNT_BOUNDS, count[b], side="right"))  # noqa: E731
    dead = lambda age: dead_age > 0 and log2fx(age) >= log2fx(dead_age)  # noqa: E731
    for t, b in enumerate(ids.tolist()):
        if b not in cache:
            faults += b in count
            if len(cache) == K:
                cache.remove(min(cache, key=lambda c: (0, 0, 0, last[c]) if dead(t - last[c])
                                 else (1, klass(c), log2fx(t - last[c]), last[c])))
            cache.append(b)
        count[b], last[b] = count.get(b, 0) + 1, t
    return faults


@pytest.mark.parametrize("K", [1, 5, 32])
def test_lfu_mru_evicts_the_youngest_of_the_fewest_accessed_like_a_loop(K):
    """The fixed ranking: the lowest count class, then the youngest L(age), then the least recently accessed; and
    the teacher's targets under it are those slots."""
    ids = _trace(K + 11)
    table = H.lfu_mru()
    assert table.shape == (H.N_COUNT, H.N_AGES) and table.min() > 0
    want = _lfu_mru_loop(ids, K)
    assert H.rollout(ids, K, table)[0] == want
    if K > 1:  # neither LFU nor LRU
        falling = np.tile(-np.arange(H.N_AGES, dtype=float), (H.N_COUNT, 1))
        assert want not in {H.rollout(ids, K)[0], H.rollout(ids, K, falling)[0]}
    feats = np.zeros((1, 4, 20), dtype=np.uint8)
    feats[0, :, 3] = [log2fx(1), log2fx(1), log2fx(2), log2fx(1)]
    feats[0, :, 0] = [log2fx(900), log2fx(30), log2fx(5), log2fx(30)]
    dist = H.teacher_distance(feats, table)[0]
    assert dist[1] == dist[3] == dist.max() and dist[0] > dist[2]  # count 1 before count 2 at any age


@pytest.mark.parametrize("K", [1, 5, 32])
def test_lfu_mru_with_a_dead_age_evicts_the_long_idle_first_like_a_loop(K):
    ids = _trace(K + 17)
    plain = _lfu_mru_loop(ids, K)
    changed = False
    for dead_age in (1, K + 3, 4 * K, 10**6, 2**31):
        want = _lfu_mru_loop(ids, K, dead_age if dead_age < 2**31 else 0)
        assert H.rollout(ids, K, H.lfu_mru(dead_age=dead_age))[0] == want
        changed |= want != plain
    assert changed or K == 1
    assert np.array_equal(H.lfu_mru(dead_age=10**6), np.where(np.arange(H.N_AGES) >= log2fx(10**6), 0.5,
                                                              H.lfu_mru()))
    with pytest.raises(ValueError, match="dead_age"):
        H.lfu_mru(dead_age=-1)


@pytest.mark.parametrize("table", ["lfu_mru", "estimated"])
def test_a_table_acting_in_collect_is_its_rollout(table):
    """The DAgger expert given ranks(table) (teacher_acts) evicts as rollout does (LFU's faults differ)."""
    from gpupage.zoo import learned_dagger as LD

    ids = _trace(31, T=4000)
    K = 24
    tab = H.lfu_mru(dead_age=200) if table == "lfu_mru" else H.estimate(ids, K, rounds=1)
    faults = LD.collect(ids[None].astype(np.int32), np.array([K]), None, 1.0, [7],
                       teacher=(H.CLASS_OF_L, H.ranks(tab)[None]))[2]
    assert faults[0] - len(np.unique(ids)) == H.rollout(ids, K, tab)[0] != H.rollout(ids, K)[0]


def test_bagged_is_the_mean_of_the_scaled_tables_at_doubling_sizes():
    g = np.random.default_rng(5)
    ids = (g.zipf(1.3, 5000) % 400).astype(np.int64)
    tables = [H.estimate(ids, k) for k in (16, 32, 64)]
    want = sum(t / t.max() for t in tables) / 3
    assert np.allclose(H.bagged(ids, 16, 3), want, rtol=1e-12, atol=0)
    assert np.array_equal(H.bagged(ids, 16, 1), tables[0] / tables[0].max())
    with pytest.raises(ValueError, match="sizes"):
        H.bagged(ids, 16, 0)


def _online_loop(ids, K, period, decay, rate):
    """online_rollout with sizes 2 as a plain loop: the real cache and shadow LFU caches of K and 2K slots, or
    round(rate * K) and round(rate * 2K) for shadows that see only the blocks a SHARDS sample keeps."""
    shape = (H.N_COUNT, H.N_AGES)
    caches, sizes = [[], [], []], [K, max(round(rate * K), 1), max(round(rate * 2 * K), 1)]
    kept = set(ids[sample_mask(ids, rate)].tolist())
    seen_by_shadows = kept.__contains__
    acc = [(np.zeros(shape), np.zeros(shape)) for _ in range(2)]
    new = [(np.zeros(shape), np.zeros(shape)) for _ in range(2)]
    table, faults, count, last = None, 0, {}, {}
    klass = lambda b: int(np.searchsorted(H.COUNT_BOUNDS, count[b], side="right"))  # noqa: E731
    for t, b in enumerate(ids.tolist()):
        if t and t % period == 0:  # a new table from the shadows' decayed counts of the past
            acc = [(decay * a + h, decay * e + v) for (a, e), (h, v) in zip(acc, new)]
            new = [(np.zeros(shape), np.zeros(shape)) for _ in range(2)]
            table = H.mean_table([H.hit_density(a, e) for a, e in acc])
        for i, cache in enumerate(caches):
            if i and not seen_by_shadows(b):
                continue
            if b in cache:
                if i:
                    new[i - 1][0][klass(b), log2fx(t - last[b])] += 1
                continue
            faults += i == 0 and b in count
            if len(cache) == sizes[i]:
                if i == 0 and table is not None:
                    v = min(cache, key=lambda c: (table[klass(c), log2fx(t - last[c])], last[c]))
                else:
                    v = min(cache, key=lambda c: (count[c], last[c]))
                if i:
                    new[i - 1][1][klass(v), log2fx(t - last[v])] += 1
                cache.remove(v)
            cache.append(b)
        count[b], last[b] = count.get(b, 0) + 1, t
    return faults


@pytest.mark.parametrize("K,period,rate", [(6, 400, 1.0), (20, 300, 1.0), (20, 300, 0.5), (12, 500, 0.25)])
def test_online_rollout_is_a_loop_over_shadow_lfu_caches(K, period, rate):
    """Every ``period`` requests the table becomes the mean density of shadow LFU caches at K and 2K over the
    past (decayed; miniature ones on a SHARDS sample with ``sample_rate``), and the real cache evicts by it; it is
    neither LFU nor the hindsight table, and sampling changes it (the checks can fail); bad parameters are
    refused."""
    ids = _trace(11, T=2500)
    got = H.online_rollout(ids, K, sizes=2, period=period, decay=0.8, sample_rate=rate)
    assert got == _online_loop(ids, K, period, 0.8, rate)
    assert got != H.rollout(ids, K)[0] and got != H.rollout(ids, K, H.bagged(ids, K, 2))[0]
    if rate < 1:
        assert 0.3 < sample_mask(ids, rate).mean() / rate < 1.7 and got != H.online_rollout(ids, K, 2, period, 0.8)
    for bad, match in (({"sizes": 0}, "sizes >= 1"), ({"period": 0}, "sizes >= 1"), ({"decay": 1.5}, "sizes >= 1"),
                       ({"sample_rate": 1.5}, "sample rate")):
        with pytest.raises(ValueError, match=match):
            H.online_rollout(ids, K, **bad)


def test_table_transfer_rows_are_the_rollouts_and_the_best_baseline_per_K():
    """scripts/table_transfer.py: each row's best baseline is the registry's argmin at that K alone, its hindsight
    column the rollout of the table fitted on the trace itself, its online column ``online_rollout``'s, and a
    table carried from a trace with another hot set ranks differently (the check can fail)."""
    import importlib.util
    from pathlib import Path

    from gpupage.controller.evaluate import BASELINES

    path = Path(__file__).resolve().parents[1] / "scripts" / "table_transfer.py"
    spec = importlib.util.spec_from_file_location("table_transfer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ids, other = _trace(3), _trace(4, n=60)
    rows = mod.table_rows(ids, other, [8, 32], sizes=2, sample_rate=0.5)
    for r in rows:
        alone = {b: int(simulate(torch.from_numpy(ids)[None], b, r["K"]).non_compulsory[0]) for b in BASELINES}
        assert r["best_faults"] == min(alone.values()) == alone[r["best"]] and r["lfu"] == alone["lfu"]
        assert r["hindsight"] == H.rollout(ids, r["K"], H.bagged(ids, r["K"], 2))[0]
        assert r["transfer"] == H.rollout(ids, r["K"], H.bagged(other, r["K"], 2))[0]
        assert r["online"] == H.online_rollout(ids, r["K"], 2, sample_rate=0.5)
    assert any(r["hindsight"] != r["transfer"] for r in rows)
    with pytest.raises(SystemExit, match="--sample-rate must be in"):
        mod.main(["--sample-rate", "2"])
