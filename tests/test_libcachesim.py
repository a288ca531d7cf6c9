"""LRU, FIFO and Belady against libCacheSim's C implementations (skipped when it is not installed)."""

import os

import numpy as np
import pytest
import torch

from gpupage.core.io import read_trace, write_oracle
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

lcs = pytest.importorskip("libcachesim")
CLOUD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "traces", "cloudPhysicsIO.txt")
LCS_NAMES = {"lru": "LRU", "fifo": "FIFO", "belady": "Belady"}


def lcs_faults(ids: np.ndarray, policy: str, K: int, tmp_path) -> int:
    path = str(tmp_path / f"trace_{policy}_{K}.oracleGeneral")
    write_oracle(path, ids)
    reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(lcs, LCS_NAMES[policy])(cache_size=K, hashpower=16)
    miss_ratio, _ = cache.process_trace(reader)
    return round(miss_ratio * ids.size)


@pytest.mark.parametrize("policy", list(LCS_NAMES))
def test_zipf_traces_match_libcachesim(policy, tmp_path):
    traces = zipf_traces(ZipfParams(T=3000), seed=[1, 2, 3])
    for K in (1, 3, 8, 16):
        ours = simulate(traces, policy, K).faults.tolist()
        theirs = [lcs_faults(traces[b].numpy().astype(np.int64), policy, K, tmp_path) for b in range(3)]
        assert ours == theirs, (policy, K)


@pytest.mark.skipif(not os.path.exists(CLOUD), reason="../shared/traces/cloudPhysicsIO.txt not present")
@pytest.mark.parametrize("policy", list(LCS_NAMES))
def test_cloudphysics_matches_libcachesim(policy, tmp_path):
    trace = read_trace(CLOUD)
    Ks = [7, 64, 1000, 4096]
    ours = simulate(torch.from_numpy(trace.ids).expand(len(Ks), -1), policy, torch.tensor(Ks)).faults.tolist()
    theirs = [lcs_faults(trace.original[trace.ids], policy, K, tmp_path) for K in Ks]
    assert ours == theirs
    # the reference counts published with the trace
    published = {"lru": {7: 108525, 64: 101578}, "fifo": {7: 108549, 64: 102862}, "belady": {7: 103704, 64: 95375}}
    assert ours[:2] == [published[policy][7], published[policy][64]]
