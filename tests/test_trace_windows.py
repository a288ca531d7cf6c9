"""Held-out call ranges and training windows of a trace file, against plain-Python loops."""

import json

import numpy as np
import pytest

from gpupage.core import rng
from gpupage.core.io import read_trace
from gpupage.core.traces import call_slice, trace_windows


def _calls_file(tmp_path, calls):
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps({"timestamp": i, "hash_ids": c}) + "\n" for i, c in enumerate(calls)))
    return str(path)


def test_call_slice_is_its_calls_renumbered_from_scratch(tmp_path):
    g = np.random.default_rng(3)
    calls = [[int(v) for v in g.integers(0, 40, size=g.integers(1, 9))] for _ in range(30)]
    ft = read_trace(_calls_file(tmp_path, calls), "mooncake")
    part = call_slice(ft, 12, 25)
    stream = [b for c in calls[12:25] for b in c]
    dense = {}
    for b in stream:
        dense.setdefault(b, len(dense))
    assert part.ids.tolist() == [dense[b] for b in stream]
    assert part.original.tolist() == list(dense)
    assert part.distinct == len(dense)
    assert part.meta["call"].tolist() == [i for i in range(12, 25) for _ in calls[i]]
    assert part.meta["pos_in_call"].tolist() == [j for i in range(12, 25) for j in range(len(calls[i]))]
    assert part.meta["call_len"].tolist() == [len(calls[i]) for i in range(12, 25) for _ in calls[i]]


def test_call_slice_bad_input(tmp_path):
    ft = read_trace(_calls_file(tmp_path, [[1, 2], [3]]), "mooncake")
    with pytest.raises(ValueError, match="not a non-empty range"):
        call_slice(ft, 1, 1)
    with pytest.raises(ValueError, match="not a non-empty range"):
        call_slice(ft, 0, 3)
    txt = tmp_path / "a.txt"
    txt.write_text("1\n2\n")
    with pytest.raises(ValueError, match="no calls"):
        call_slice(read_trace(str(txt)), 0, 1)


def test_trace_windows_follow_their_registered_stream():
    ids = np.arange(100, dtype=np.int32) * 3
    starts = np.array([0, 10, 50, 90, 97])
    out = trace_windows(ids, 6, 8, seed=5, starts=starts)
    for b in range(6):
        key = rng.lane_key(5, b)
        h = rng.draw(rng.stream_key(key, rng.STREAM_TRACE_WINDOWS), 0)
        s = int(starts[(h * len(starts)) >> 32])
        want = [int(ids[t]) if t < 100 else -1 for t in range(s, s + 8)]
        assert out[b].tolist() == want
    assert np.array_equal(trace_windows(ids, 3, 8, seed=5, starts=starts), out[:3])  # a lane depends on (seed, b)
    assert not np.array_equal(trace_windows(ids, 6, 8, seed=6, starts=starts), out)
    full = trace_windows(ids, 4, 20, seed=1)
    assert all(full[b, 0] % 3 == 0 and full[b, 0] // 3 <= 80 and full[b, -1] == full[b, 0] + 57 for b in range(4))
    with pytest.raises(ValueError, match="lanes >= 1"):
        trace_windows(ids, 0, 8, seed=1)
