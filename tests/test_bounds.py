"""The bounds report: each measurement against a plain reference, and the report's files."""

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.controller.evaluate import prop6 as prop6_check
from gpupage.core import rng
from gpupage.core.cpu import NEVER
from gpupage.core.reference import naive_simulate
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, cyclic_traces, zipf_traces
from gpupage.experiments.bounds import prop6 as bounds_prop6
from gpupage.experiments.bounds.config import BoundsConfig
from gpupage.experiments.bounds.corollary1 import first_in_phase
from gpupage.experiments.bounds.run import OUTPUTS, run_bounds
from gpupage.experiments.bounds.search import fault_delta, search_counterexample, shrink, smallest_counterexample
from gpupage.experiments.bounds.theorem3 import belady_cyclic_faults
from gpupage.experiments.bounds.theorem4 import theorem4

IDS = {"lemma1a", "lemma1b", "lemma2", "theorem3", "theorem4", "corollary1", "prop6"}


def _naive_faults(trace, policy, K):
    return naive_simulate(list(trace), policy, K)[0]


@pytest.mark.parametrize("policy", ["lru", "fifo", "lfu"])
def test_search_simulator_and_worst_change_match_reference(policy):
    gen = np.random.default_rng(3)
    for _ in range(15):
        K, M, L = int(gen.integers(1, 5)), int(gen.integers(2, 6)), int(gen.integers(2, 14))
        tr = gen.integers(0, M, L).tolist()
        d, p, v, f = fault_delta(tr, K, policy, M)
        assert f == _naive_faults(tr, policy, K)
        brute = 0
        for q in range(L):
            for w in range(M):
                if w != tr[q]:
                    other = tr[:q] + [w] + tr[q + 1:]
                    brute = max(brute, abs(_naive_faults(other, policy, K) - f))
        assert d == brute
        other = tr[:p] + [v] + tr[p + 1:]
        assert abs(_naive_faults(other, policy, K) - f) == d


def test_fifo_breaks_lemma1a_with_one_change():
    r = [0, 1, 2, 0, 1, 2, 0, 1]
    r2 = [0, 0, 2, 0, 1, 2, 0, 1]
    assert abs(_naive_faults(r, "fifo", 2) - _naive_faults(r2, "fifo", 2)) == 4  # > K + 1 = 3
    assert abs(_naive_faults(r, "lru", 2) - _naive_faults(r2, "lru", 2)) <= 3


def test_search_finds_a_verified_fifo_counterexample():
    res = search_counterexample("fifo", 2, 3, L=16, iters=300, seed=0)
    assert res["delta_F"] > 3
    assert abs(_naive_faults(res["r"], "fifo", 2) - _naive_faults(res["r_prime"], "fifo", 2)) == res["delta_F"]
    assert sum(a != b for a, b in zip(res["r"], res["r_prime"])) == 1
    small = shrink(res["r"], 2, "fifo", 3)
    assert len(small) <= len(res["r"]) and fault_delta(small, 2, "fifo", 3)[0] > 3


def test_exhaustive_smallest_counterexamples():
    assert smallest_counterexample("fifo", 2, 4, 7) is None  # nothing shorter than 8 requests
    fifo = smallest_counterexample("fifo", 2, 4, 8)
    lfu = smallest_counterexample("lfu", 2, 4, 7)
    for policy, c in (("fifo", fifo), ("lfu", lfu)):
        assert abs(_naive_faults(c["r"], policy, 2) - _naive_faults(c["r_prime"], policy, 2)) == c["delta_F"] > 3
    assert (fifo["T"], lfu["T"]) == (8, 7)
    assert smallest_counterexample("lru", 2, 4, 7) is None


@pytest.mark.parametrize("K", [1, 2, 3, 8, 17])
def test_exact_belady_on_the_cyclic_trace(K):
    for T in (1, K, K + 1, K + 2, 3 * K + 1, 500):
        f = int(simulate(cyclic_traces(K, T), "belady", K).faults[0])
        assert f == belady_cyclic_faults(K, T), (K, T)


def test_first_in_phase_matches_a_loop():
    params = ZipfParams(M=20, W=5, shift=30, T=200)
    tr = zipf_traces(params, 1, 2)
    got = first_in_phase(tr, 30, 20)
    for b in range(2):
        seen = set()
        for t, x in enumerate(tr[b].tolist()):
            assert got[b, t] == ((t // 30, x) not in seen)
            seen.add((t // 30, x))


def _naive_noisy_belady(trace, K, q, key):
    """Plain reference of the Prop. 6 fallback policy: (faults, victims)."""
    nxt = [next((u for u in range(t + 1, len(trace)) if trace[u] == trace[t]), NEVER) for t in range(len(trace))]
    skey = rng.stream_key(key, rng.STREAM_RANDOM_POLICY)
    thr = rng.probability_threshold(q)
    slots, nu = [], []
    victims = [-1] * len(trace)
    faults = 0
    for t, x in enumerate(trace):
        if x in slots:
            nu[slots.index(x)] = nxt[t]
            continue
        faults += 1
        if len(slots) < K:
            slots.append(x)
            nu.append(nxt[t])
            continue
        far = max(range(K), key=lambda i: (nu[i], -i))
        s = far if rng.draw(skey, 2 * t) < thr else rng.uniform_below(rng.draw(skey, 2 * t + 1), K)
        victims[t] = slots[s]
        slots[s], nu[s] = x, nxt[t]
    return faults, victims


@pytest.mark.parametrize("q", [0.0, 0.6, 1.0])
def test_noisy_belady_matches_reference_and_prop6_holds(q):
    tr = zipf_traces(ZipfParams(M=30, W=10, shift=60, T=300), 2, 3)
    keys = rng.lane_keys(5, 3)
    faults, victims = bounds_prop6.noisy_belady(tr, 4, q, 5)
    for b in range(3):
        f, v = _naive_noisy_belady(tr[b].tolist(), 4, q, int(keys[b]))
        assert faults[b] == f and victims[b].tolist() == v
    e = bounds_prop6._prop6_entry({q: prop6_check(tr, 4, torch.from_numpy(victims))}, "noisy Belady")
    assert e["holds"]  # D_f = 1 is exact: the bound must hold on every lane
    opt = simulate(tr, "belady", 4).faults.numpy()
    for r in e["details"]["rows"]:
        assert r["F_opt"] == opt[r["lane"]] and r["F"] <= r["bound"]
        if q == 1.0:
            assert r["F"] == r["F_opt"] and r["p"] == 1.0


def test_prop6_on_a_controller_checkpoint(tmp_path):
    import torch

    from gpupage.controller.network import ControllerConfig, PageController, save_controller

    torch.manual_seed(0)
    save_controller(tmp_path / "c.pt", PageController(ControllerConfig()), {"K": 4})
    e = bounds_prop6.prop6(BoundsConfig.quick(lanes=2, T=120, K=4, checkpoint=str(tmp_path / "c.pt")))
    assert "controller" in e["details"]["policy"] and e["holds"]  # D_f = 1 is exact: must hold on every lane
    for r in e["details"]["rows"]:
        assert r["F"] <= r["bound"] and 0 <= r["p"] <= 1


def _tiny():
    return BoundsConfig.quick(lanes=2, T=400, Ks=(2, 4), K=4, localities=((1.2, 16),), cyclic_T=(50,),
                                 search_Ks=(2,), search_iters=100, search_lengths=(12,), exhaustive_len=6, sigmas=(0.0, 0.3),
                                 etas=(0.0,))


def test_theorem4_beta_hat_is_zero_without_feedback_and_grows_with_sigma():
    e = theorem4(_tiny())
    beta = {r["sigma"]: r for r in e["details"]["beta"]}
    assert beta[0.0]["beta_lru_fifo"] == 0 and beta[0.0]["beta_max"] == 0
    assert 0 < beta[0.3]["beta_lru_fifo"] <= beta[0.3]["beta_max"] <= 1
    theorem_cases = e["details"]["cases_checked"]
    assert theorem_cases == 2 * 2 * 4 * 4 * 2  # sigma x c x A x pi x lanes


def test_bounds_writes_every_entry_and_replaces_a_run_only_when_asked(tmp_path):
    # one run of the whole command (it compiles every experiment's loops: a test of its own would compile them again)
    (tmp_path / "report.md").write_text("a user's report")
    res = CliRunner().invoke(main, ["bounds", "--out", str(tmp_path), "--quick", "--quiet"])
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert res.exit_code != 0 and len(errors) == 1 and "report.md" in errors[0] and "--overwrite" in errors[0]
    assert os.listdir(tmp_path) == ["report.md"] and (tmp_path / "report.md").read_text() == "a user's report"
    res = CliRunner().invoke(main, ["bounds", "--out", str(tmp_path), "--quick", "--quiet", "--overwrite", "--lanes", "1",
                                    "--T", "300"])
    assert res.exit_code == 0, res.output
    assert set(os.listdir(tmp_path)) <= set(OUTPUTS) and (tmp_path / "report.md").read_text().startswith("# ")
    with pytest.raises(ValueError, match="bounds.json.*--overwrite"):  # the library never replaces unasked either
        run_bounds(_tiny(), str(tmp_path))
    on_disk = json.loads((tmp_path / "bounds.json").read_text())
    assert IDS <= {e["id"] for e in on_disk}
    for e in on_disk:
        assert {"statement", "bound", "measured", "slack", "holds", "counterexample"} <= set(e)
        assert (e["counterexample"] is not None) == (not e["holds"]), e["id"]
    by = {e["id"]: e for e in on_disk}
    assert by["theorem3"]["holds"] and not by["lemma1a"]["holds"]
    report = (tmp_path / "report.md").read_text()
    for png in ("lemma1a_cascade.png", "lemma1b_noise.png", "lemma2_hints.png", "theorem3_cyclic.png", "theorem4_closed_loop.png",
                "corollary1_thrashing.png", "instance_ratio.png"):
        assert (tmp_path / png).stat().st_size > 0 and png in report


@pytest.mark.parametrize("args,word", [
    (["--sigma=-0.2"], "sigma"), (["--sigma", "1.5"], "sigma"), (["--eta=-1"], "eta"), (["--lanes", "0"], "lanes"),
])
def test_bad_parameters_give_one_line_errors(tmp_path, args, word):
    res = CliRunner().invoke(main, ["bounds", "--out", str(tmp_path), "--quick", "--quiet"] + args)
    assert res.exit_code != 0 and "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and word in errors[0]
