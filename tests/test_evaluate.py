"""Evaluation: Prop. 6's bound, the controller rollout, and the evaluate command's JSON."""

import json

import pytest
import torch
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.controller.evaluate import controller_rollout, evaluate, prop6
from gpupage.controller.network import ControllerConfig, PageController, save_controller
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

ZP = ZipfParams(M=30, W=10, shift=120, T=500)


@pytest.mark.parametrize("policy", ["random", "lru", "lfu"])
def test_prop6_holds_on_heuristic_rollouts(policy):
    traces = zipf_traces(ZP, seed=list(range(6)))
    res = simulate(traces, policy, 5, seed=list(range(6)), return_hits=True)
    rep = prop6(traces, 5, res.victims)
    assert rep["holds"] and rep["D_f"] == 1
    assert rep["F_learned"] == res.faults.tolist()
    assert all(0 <= p < 1 for p in rep["p"])
    assert all(f <= b for f, b in zip(rep["F_learned"], rep["bound"]))


def test_prop6_is_exact_for_belady():
    traces = zipf_traces(ZP, seed=[3, 4])
    res = simulate(traces, "belady", 6, return_hits=True)
    rep = prop6(traces, 6, res.victims)
    assert rep["p"] == [1.0, 1.0] and rep["F_learned"] == rep["F_opt"] == rep["bound"]


def test_prop6_rejects_victims_that_were_not_resident():
    traces = torch.tensor([[0, 1, 2, 0]])
    with pytest.raises(ValueError):
        prop6(traces, 2, torch.tensor([[-1, -1, 7, -1]]))


def test_controller_rollout_matches_replay():
    torch.manual_seed(0)
    model = PageController(ControllerConfig(hidden=16)).eval()
    traces = zipf_traces(ZP, seed=[7, 8, 9])
    faults, victims = controller_rollout(model, traces, 4)
    rep = prop6(traces, 4, victims)
    assert rep["F_learned"] == faults.tolist() and rep["holds"]


def test_evaluate_keys_policies():
    torch.manual_seed(0)
    model = PageController(ControllerConfig(hidden=16)).eval()
    traces = zipf_traces(ZP, seed=[1, 2, 3])
    res = evaluate(model, traces, 4, policies=["lru", "belady"])
    assert res["belady"]["competitive_ratio"]["mean"] == 1.0
    assert set(res) == {"controller", "lru", "belady"} and res["controller"]["prop6"]["holds"]


def test_evaluate_command_json(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "c.pt"
    save_controller(path, PageController(ControllerConfig(hidden=16)))
    out = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(path), "--K", "4", "--seeds", "1-3",
                                    "--T", "400", "--shift", "100", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    for name in ("controller", "lru", "lfu", "fifo", "random", "belady"):
        for metric in ("fault_rate", "competitive_ratio"):
            assert set(data[name][metric]) >= {"mean", "sd"}
    assert data["controller"]["prop6"]["holds"]


def test_evaluate_command_errors_are_one_line(tmp_path):
    out = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "nope.pt")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    bad = tmp_path / "bad.pt"
    bad.write_text("x")
    out = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(bad)])
    assert out.exit_code != 0 and len(out.output.strip().splitlines()) == 1


def test_train_command_writes_checkpoint_log_and_curve(tmp_path):
    ck = tmp_path / "m.pt"
    out = CliRunner().invoke(main, ["train", "--out", str(ck), "--K", "4", "--bc-rounds", "0", "--bc-lanes", "2",
                                    "--bc-epochs", "1", "--hidden", "16", "--ppo-iterations", "1", "--lanes", "4",
                                    "--val-every", "0", "--T", "200", "--shift", "100", "--quiet"])
    assert out.exit_code == 0, out.output
    meta = torch.load(ck, weights_only=True)["meta"]
    assert meta["stage"] == "done" and meta["bc"]["K"] == 4 and meta["ppo"]["iterations"] == 1
    assert (tmp_path / "train_log.csv").exists() and (tmp_path / "train_curve.png").exists()
