"""Stack distances give LRU's faults at every K, equal to simulating each K."""

import numpy as np
import pytest
import torch

from gpupage.core.simulate import simulate
from gpupage.core.stack import lru_fault_curve
from gpupage.core.traces import ZipfParams, zipf_traces


def test_curve_equals_per_k_simulation_with_pads_and_sparse_ids():
    gen = np.random.default_rng(0)
    tr = gen.integers(0, 40, size=(3, 400))
    tr[gen.random(tr.shape) < 0.1] = -1
    tr[0, tr[0] >= 0] += 10**10  # sparse ids take the remap path
    tr = torch.from_numpy(tr)
    curve = lru_fault_curve(tr, 45)
    for K in range(1, 46):
        assert curve[:, K - 1].tolist() == simulate(tr, "lru", K).faults.tolist(), K


def test_curve_on_zipf_is_monotone_and_matches():
    tr = zipf_traces(ZipfParams(T=2000), seed=[1, 2])
    curve = lru_fault_curve(tr, 20)
    assert (curve[:, 1:] <= curve[:, :-1]).all()
    assert curve[:, 7].tolist() == simulate(tr, "lru", 8).faults.tolist()


def test_bad_k():
    with pytest.raises(ValueError, match="K must be >= 1"):
        lru_fault_curve(torch.tensor([[1, 2]]), 0)
