"""The shipped controllers: plain-type checkpoints that still do their job on held-out seeds."""

from pathlib import Path

import pytest
import torch

from gpupage.controller.evaluate import controller_rollout
from gpupage.controller.network import load_controller
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

# the learned policy's checkpoints (learned_*.pt, their copies blackbox_*.pt, llm_*.pt) and the prefetch controller's
# (prefetch_*.pt) are other formats, tested in tests/test_learned.py, tests/test_learned_families.py,
# tests/test_evaluate_learned.py and tests/test_prefetch_controller.py
SHIPPED = sorted(p for p in (Path(__file__).resolve().parents[1] / "checkpoints").glob("*.pt")
                 if not p.name.startswith(("learned_", "blackbox_", "llm_", "prefetch_")))
HELD_OUT = [1000, 1001, 1002, 1003]  # evaluation seeds, never trained or tuned on


def test_every_controller_the_readme_promises_ships():
    assert {p.name for p in SHIPPED} >= {"pagecontroller_k8.pt", "whitebox_k8.pt", "pagecontroller_k16.pt"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_controller(path):
    ck = torch.load(path, map_location="cpu", weights_only=True)  # plain types only
    model, meta = load_controller(path)
    assert sum(p.numel() for p in model.parameters()) <= 20_000
    assert meta["command"].startswith("gpupage train ")
    K = meta["bc"]["K"]
    assert path.stem.endswith(f"_k{K}") and ck["config"]["mode"] == ("whitebox" if "whitebox" in path.stem else "blackbox")
    traces, latent = zipf_traces(ZipfParams(), seed=HELD_OUT, return_latent=True)
    faults = controller_rollout(model, traces, K, latent if ck["config"]["mode"] == "whitebox" else None)[0]
    lru = simulate(traces, "lru", K).faults
    if K == 16 and ck["config"]["mode"] == "blackbox":
        # LRU is the black-box optimum at K = W = 16 (scripts/blackbox_limit.py): tie it
        assert faults.sum() <= 1.01 * lru.sum()
    else:
        assert (faults < lru).all()
