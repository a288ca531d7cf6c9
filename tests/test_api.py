"""The public Python API as the README shows it, and its answers to odd input."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import gpupage

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs_twice_in_one_process(i, tmp_path, monkeypatch):
    for module in re.findall(r"^# needs: (\w+)", BLOCKS[i], flags=re.M):  # an optional extra's example
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    for _ in range(2):
        exec(compile(BLOCKS[i], f"README.md python block {i}", "exec"), {})


def test_simulate_stays_the_function():
    import gpupage.core.simulate  # noqa: F401  (the module that defines it, as other code imports it)

    tr = gpupage.zipf_traces(gpupage.ZipfParams(T=200), seed=[1])
    for _ in range(2):
        assert callable(gpupage.simulate)
        assert int(gpupage.simulate(tr, "lru", K=4).faults[0]) > 0


TRACES = gpupage.zipf_traces(gpupage.ZipfParams(T=300), seed=[1, 2])


@pytest.mark.parametrize("K", [8, 8.0, np.int64(8), np.float32(8), [8, 8], (8.0, 8), torch.tensor([8, 8]),
                               torch.tensor([8.0, 8.0]), np.array([8, 8], dtype=np.uint16)])
def test_integral_k_in_any_form(K):
    assert gpupage.simulate(TRACES, "lru", K=K).faults.tolist() == gpupage.simulate(TRACES, "lru", 8).faults.tolist()


@pytest.mark.parametrize("K, words", [(8.7, "integral"), (float("nan"), "integral"), (torch.tensor([8.5, 8.0]), "integral"),
                                      ([8, 8.5], "integral"), (True, "integer"), ("8", "integer"), (None, "integer"),
                                      (0, ">= 1"), (-(10**30), "integer"), (torch.tensor([4, 0]), ">= 1"),
                                      ([4, 4, 4], "shape")])
def test_bad_k_is_a_one_line_error(K, words):
    with pytest.raises(ValueError, match=words) as err:
        gpupage.simulate(TRACES, "lru", K=K)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu", "belady", "random", "fixed", "arc", "clock", "adaptive"])
@pytest.mark.parametrize("K", [300, 301, 2**62 + 1, 2**63, 10**30, 1e300, np.array([2**64 - 1, 2**40], dtype=np.uint64)])
def test_k_beyond_the_trace_acts_as_the_trace_length(policy, K):
    """No lane holds more than T blocks: a huge K neither hangs nor allocates, and equals K = T."""
    res = gpupage.simulate(TRACES, policy, K=K, return_hits=True)
    ref = gpupage.simulate(TRACES, policy, K=300, return_hits=True)
    assert torch.equal(res.faults, ref.faults) and torch.equal(res.victims, ref.victims)
    assert int((res.victims >= 0).sum()) == 0
