"""scripts/mooncake_signal.py: its probe loop against the registry, its conversation statistics against a loop."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

from gpupage.core.io import read_trace
from gpupage.core.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("mooncake_signal", ROOT / "scripts" / "mooncake_signal.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # numba's cache finds its jitted functions' module by name
    spec.loader.exec_module(mod)
    return mod


def _conversation_file(tmp_path, seed=0, n_calls=120):
    """Calls that start new conversations or extend an earlier one's prefix, all behind a shared block 0."""
    g = np.random.default_rng(seed)
    chains, calls, nxt = [], [], 1
    for _ in range(n_calls):
        if chains and g.random() < 0.4:
            c = chains[int(g.integers(len(chains)))]
        else:
            c = []
            chains.append(c)
        c.extend(range(nxt, nxt + int(g.integers(1, 6))))
        nxt = c[-1] + 1
        calls.append([0] + list(c))
    path = tmp_path / "conv.jsonl"
    path.write_text("".join(json.dumps({"timestamp": i, "hash_ids": c}) + "\n" for i, c in enumerate(calls)))
    return read_trace(str(path), "mooncake"), calls


def test_lfu_probe_equals_the_registry_lfu(tmp_path):
    mod = _script()
    trace, _ = _conversation_file(tmp_path)
    for K in (3, 8, 32):
        ref = int(simulate(torch.from_numpy(trace.ids)[None], "lfu", K).faults[0]) - trace.distinct
        assert mod.probe(trace, K, mod.PROBES["lfu"]) == ref


def test_lfu_mru_probe_is_a_loop_evicting_the_most_recent_of_the_fewest_accessed(tmp_path):
    mod = _script()
    trace, _ = _conversation_file(tmp_path, seed=2)
    differs = []
    for K in (3, 8, 32):
        cache, count, last, want = [], {}, {}, 0
        for t, b in enumerate(trace.ids.tolist()):
            if b not in cache:
                want += b in count
                if len(cache) == K:
                    cache.remove(min(cache, key=lambda c: (count[c], -last[c])))
                cache.append(b)
            count[b], last[b] = count.get(b, 0) + 1, t
        assert mod.probe(trace, K, mod.PROBES["lfu, the most recent first among equals"]) == want
        differs.append(want != mod.probe(trace, K, mod.PROBES["lfu"]))
    assert any(differs)


def test_conversation_turns_and_returns_match_a_loop(tmp_path):
    mod = _script()
    trace, calls = _conversation_file(tmp_path, seed=1)
    conv = mod.conversations(trace)
    roots = [c[1] for c in calls]
    for i, r in enumerate(roots):
        assert conv["turn"][i] == roots[: i + 1].count(r)
        later = [j for j in range(i + 1, len(roots)) if roots[j] == r]
        assert conv["gap"][i] == (later[0] - i if later else 0)
        earlier = [j for j in range(i) if roots[j] == r]
        assert conv["since"][i] == (i - earlier[-1] if earlier else 0)
        assert conv["length"][i] == len(calls[i])


def test_regression_rollout_records_features_and_true_next_uses(tmp_path):
    """The regressor's data: an LFU rollout (equal to the registry's LFU) recording every decision's features
    of the resident blocks and log2 of their next-use distances, checked against a loop over the trace."""
    mod = _script()
    trace, _ = _conversation_file(tmp_path, seed=2)
    K = 8
    record = []
    ref = int(simulate(torch.from_numpy(trace.ids)[None], "lfu", K).faults[0]) - trace.distinct
    assert mod._rollout(trace, K, meta=True, every=1, record=record) == ref
    ids = trace.ids.tolist()
    assert len(record) > 10
    for F, y in record:
        assert F.shape == (K, 9) and y.shape == (K,)
    # the first decision: the first fault on a full cache
    resident, t = [], 0
    for t, x in enumerate(ids):
        if x not in resident:
            if len(resident) == K:
                break
            resident.append(x)
    F, y = record[0]
    want = [min(next((j for j in range(t, len(ids)) if ids[j] == b), 1 << 40) - t, 1 << 17) for b in resident]
    assert np.array_equal(y, np.log2(np.array(want, dtype=np.float64)).astype(np.float32))
    assert np.array_equal(F[:, 0], np.log2(np.array([t - max(j for j in range(t) if ids[j] == b) for b in resident])
                                           + 1.0).astype(np.float32))


def test_lrfu_probe_is_lfu_undecayed_and_matches_a_loop(tmp_path):
    mod = _script()
    trace, _ = _conversation_file(tmp_path, seed=3)
    ids = trace.ids.astype(np.int64)
    for K in (3, 8):
        ref = int(simulate(torch.from_numpy(trace.ids)[None], "lfu", K).faults[0]) - trace.distinct
        assert mod.lrfu(ids, K, 0.0) == ref
        for h in (2.0, 16.0, 200.0):  # a plain loop: decayed counts recomputed from every past access
            cache, faults = [], 0
            for t, x in enumerate(ids.tolist()):
                if x not in cache:
                    faults += 1
                    if len(cache) == K:
                        def score(b):
                            past = [j for j in range(t) if ids[j] == b]
                            return sum(2.0 ** (-(t - j) / h) for j in past), past[-1]
                        cache.remove(min(cache, key=score))
                    cache.append(x)
            assert mod.lrfu(ids, K, h) == faults - trace.distinct, (K, h)


def test_class_schemes_read_only_the_past(tmp_path):
    """Every class a request gets is known when it arrives: the same on any prefix of the calls."""
    from gpupage.core.traces import call_slice

    mod = _script()
    trace, calls = _conversation_file(tmp_path, seed=2)
    full = mod.class_schemes(trace)
    assert len(np.unique(full["count x since x last"])) > 10  # the splits do split
    for n in (1, 7, 40, 119):
        part = mod.class_schemes(call_slice(trace, 0, n))
        t = len(part["count"])
        assert t == sum(len(c) for c in calls[:n])
        assert all(np.array_equal(part[k], full[k][:t]) for k in full)
