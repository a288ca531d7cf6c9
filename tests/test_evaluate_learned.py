"""``gpupage evaluate`` for learned-policy checkpoints, against ``gpupage.simulate`` lane by lane."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_cli import assert_one_line_error

import gpupage
from gpupage.cli import main
from gpupage.controller.evaluate import BASELINES
from gpupage.core.io import read_trace
from gpupage.core.traces import ZipfParams, zipf_traces

ROOT = Path(__file__).resolve().parents[1]
CKPT = str(ROOT / "checkpoints" / "learned_v1.pt")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def calls_file(tmp_path):
    g = np.random.default_rng(7)
    lines = []
    for i in range(120):  # conversations that re-send their growing prefix, plus a shared system block
        conv = int(g.integers(0, 15))
        lines.append(json.dumps({"timestamp": i, "hash_ids": [0] + [1000 * conv + j for j in range(int(g.integers(1, 12)))]}))
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_evaluate_learned_on_a_trace_file(calls_file):
    res = run("evaluate", "--checkpoint", CKPT, "--trace-file", calls_file, "--format", "mooncake", "--K", "16",
              "--candidates", "4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert list(out) == ["controller", *BASELINES, "belady"]
    ft = read_trace(calls_file, "mooncake")
    lane = torch.from_numpy(ft.ids)[None]
    for name, r in out.items():
        opts = {"checkpoint": CKPT, "candidates": 4} if name == "controller" else None
        f = int(gpupage.simulate(lane, "learned" if name == "controller" else name, 16, options=opts).faults[0])
        assert r == {"faults": f, "non_compulsory_faults": f - ft.distinct}, name
    assert out["belady"]["faults"] < out["lru"]["faults"]


def test_evaluate_learned_on_zipf_seeds():
    res = run("evaluate", "--checkpoint", CKPT, "--K", "8", "--seeds", "1000-1003", "--T", "600",
              "--policies", "lru,lfu", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == {"controller", "lru", "lfu", "gap_to_best_baseline"}
    tr = zipf_traces(ZipfParams(T=600), seed=[1000, 1001, 1002, 1003])
    mine = gpupage.simulate(tr, "learned", 8, options={"checkpoint": CKPT}).faults.double()
    base = {n: gpupage.simulate(tr, n, 8, seed=1000).faults.double() for n in ("lru", "lfu")}
    opt = gpupage.simulate(tr, "belady", 8).faults.double()
    assert out["controller"]["faults"]["mean"] == pytest.approx(float(mine.mean()))
    assert out["controller"]["faults"]["sd"] == pytest.approx(float(mine.std()))
    assert out["lfu"]["competitive_ratio"]["mean"] == pytest.approx(float((base["lfu"] / opt).mean()))
    best = min(base, key=lambda n: float(base[n].mean()))
    gap = mine - base[best]
    assert out["gap_to_best_baseline"] == pytest.approx(
        {"baseline": best, "mean": float(gap.mean()), "se": float(gap.std() / 2)})
    for r in (out["controller"], out["lru"]):
        assert set(r) == {"faults", "non_compulsory_faults", "fault_rate", "competitive_ratio"}


def test_evaluate_learned_bad_input(calls_file):
    assert_one_line_error(run("evaluate", "--checkpoint", CKPT, "--trace-file", calls_file, "--format", "mooncake",
                              "--candidates", "0"), "--candidates")
    assert_one_line_error(run("simulate", calls_file, "--format", "mooncake", "--policy", "learned",
                              "--K", "8"), "checkpoint")
    blackbox = str(ROOT / "checkpoints" / "pagecontroller_k8.pt")
    assert_one_line_error(run("evaluate", "--checkpoint", blackbox, "--candidates", "4"), "--candidates")


def test_train_learned_on_a_trace_file_then_evaluate(calls_file, tmp_path):
    out = tmp_path / "llm.pt"
    args = ["train", "--policy", "learned", "--trace-file", calls_file, "--format", "mooncake", "--bc-Ks", "6,10",
            "--train-calls", "0.75", "--window", "150", "--candidates", "4", "--stride", "2", "--bc-rounds", "1",
            "--bc-lanes", "4", "--bc-epochs", "1", "--learned-hidden", "8,4", "--teacher", "hit_density",
            "--tie-rule", "lru", "--hard-weight", "4", "--batch-size", "64", "--max-decisions", "5000",
            "--check-lanes", "2", "--density-sizes", "2", "--quiet", "--out", out]
    res = run(*args)
    assert res.exit_code == 0, res.output
    ck = torch.load(out, weights_only=True)
    cfg = ck["meta"]["config"]
    assert (cfg["trace_file"], cfg["Ks"], cfg["candidates"], cfg["stride"], cfg["window"]) == (calls_file, [6, 10], 4, 2, 150)
    got = [cfg[k] for k in ("teacher", "tie_rule", "hard_weight", "batch_size", "max_decisions", "check_lanes",
                            "density_sizes")]
    assert got == ["hit_density", "lru", 4.0, 64, 5000, 2, 2]
    # its windows came from calls 0..89 only
    from gpupage.controller.slotnet import TrainConfig, training_part
    ids, starts = training_part(TrainConfig(trace_file=calls_file, train_calls=0.75, window=150))
    ft = read_trace(calls_file, "mooncake")
    assert np.array_equal(ids, ft.ids[ft.meta["call"] < 90]) and (ft.meta["pos_in_call"][starts] == 0).all()
    res = run("evaluate", "--checkpoint", out, "--trace-file", calls_file, "--format", "mooncake", "--K", "6", "--json")
    assert res.exit_code == 0 and "controller" in json.loads(res.output)
    assert_one_line_error(run(*args), "exists")
    assert_one_line_error(run("train", "--out", tmp_path / "x.pt", "--trace-file", calls_file), "--policy learned")
    assert_one_line_error(run("train", "--policy", "learned", "--out", tmp_path / "y.pt", "--learned-hidden", "8"),
                          "two widths")
    # an option the chosen policy would ignore is refused, not ignored
    assert_one_line_error(run("train", "--policy", "learned", "--out", tmp_path / "z.pt", "--alpha", "0.8"),
                          "--alpha", "--policy learned")
    assert_one_line_error(run("train", "--out", tmp_path / "w.pt", "--teacher", "hit_density"), "--teacher",
                          "add --policy learned")
    # windows too short to fill the cache leave nothing to learn (was a ZeroDivisionError in the schedule)
    short = [a if a != "150" else "6" for a in args[:-1]] + [tmp_path / "v.pt"]
    assert_one_line_error(run(*short), "no eviction to learn from", "--window")
    assert not any((tmp_path / f).exists() for f in ("y.pt", "z.pt", "w.pt", "v.pt"))


def test_train_learned_options_default_to_the_trainers():
    """The CLI's defaults for the learned trainer are TrainConfig's own (they are written twice so that --help
    need not import torch)."""
    from gpupage.cli.rlcmds import LEARNED_ONLY, train
    from gpupage.controller.slotnet import TrainConfig

    defaults = {p.name: p.default for p in train.params}
    for name in sorted(LEARNED_ONLY - {"trace_file", "trace_format", "candidates", "learned_hidden"}):
        assert defaults[name] == getattr(TrainConfig, name), name
    assert defaults["learned_hidden"] == ",".join(map(str, TrainConfig.hidden))


@pytest.mark.parametrize("name", ["llm_k1024.pt", "llm_k4096.pt"])
def test_shipped_mooncake_checkpoints_saw_only_the_training_calls(name):
    from gpupage.zoo.learned import is_checkpoint, load_network

    path = ROOT / "checkpoints" / name
    assert is_checkpoint(path)
    load_network(str(path))
    cfg = torch.load(path, weights_only=True)["meta"]["config"]
    assert Path(cfg["trace_file"]).name == "mooncake_conversation_train.jsonl" and cfg["train_calls"] == 0.8
    assert cfg["candidates"] == 0 and cfg["Ks"] == [1024]  # every slot scored; both trained at K = 1024
    if name == "llm_k4096.pt":  # the mean of the hit-density tables at K..16K; longer windows
        assert (cfg["teacher"], cfg["density_sizes"], cfg["window"]) == ("hit_density", 5, 120000)
    else:  # blocks idle for 16 K requests first, then the fewest accesses, then the youngest; longer windows
        assert (cfg["teacher"], cfg["dead_age"], cfg["teacher_acts"], cfg["window"]) == ("lfu_mru", 16, False, 80000)


def test_train_learned_is_the_trainer_modules_recipe_bit_for_bit(tmp_path):
    """Every option `train --policy learned` maps reaches TrainConfig: the CLI and `python -m
    gpupage.controller.slotnet` given the same recipe write the same config and the same weights."""
    from gpupage.controller.slotnet import main as slotnet_main

    cli, mod = tmp_path / "cli.pt", tmp_path / "mod.pt"
    res = run("train", "--policy", "learned", "--out", cli, "--bc-Ks", "4,8", "--bc-rounds", "1", "--bc-lanes", "6",
              "--bc-epochs", "1", "--bc-lr", "0.002", "--bc-beta", "0.4", "--bc-rank-coef", "0.5", "--seed-start", "10100",
              "--torch-seed", "3", "--learned-hidden", "8,4", "--tie-rule", "lru", "--hard-weight", "2",
              "--batch-size", "128", "--max-decisions", "4000", "--check-lanes", "2", "--variant-frac", "0.5",
              "--val-lanes", "2", "--far-horizon", "8", "--teacher-horizon", "3", "--candidates", "3", "--stride", "2",
              "--quiet")
    assert res.exit_code == 0, res.output
    assert slotnet_main(["--out", str(mod), "--Ks", "4,8", "--rounds", "1", "--lanes", "6", "--epochs", "1",
                         "--lr", "0.002", "--beta", "0.4", "--rank-coef", "0.5", "--seed-start", "10100",
                         "--torch-seed", "3", "--hidden", "8,4", "--tie-rule", "lru", "--hard-weight", "2",
                         "--batch-size", "128", "--max-decisions", "4000", "--check-lanes", "2", "--variant-frac", "0.5",
                         "--val-lanes", "2", "--far-horizon", "8", "--teacher-horizon", "3", "--candidates", "3",
                         "--stride", "2"]) == 0
    a, b = (torch.load(p, weights_only=True) for p in (cli, mod))
    assert a["meta"]["config"] == b["meta"]["config"]
    assert all(np.array_equal(np.asarray(a["network"][k]), np.asarray(b["network"][k])) for k in a["network"])
    assert all(torch.equal(v, b["meta"]["float_state_dict"][k]) for k, v in a["meta"]["float_state_dict"].items())
    assert a["meta"]["report"]["kept_round"] == b["meta"]["report"]["kept_round"] is not None


def test_an_interrupted_learned_run_keeps_its_finished_rounds(tmp_path, monkeypatch):
    """Ctrl-C in round 2 of 3: the checkpoint holds rounds 0-1's network (the uninterrupted 2-round run's, bit for
    bit), marked as interrupted, and the command says the finished results were kept."""
    from gpupage.controller import slotnet

    args = ["train", "--policy", "learned", "--bc-Ks", "4", "--bc-lanes", "4", "--bc-epochs", "1",
            "--learned-hidden", "8,4", "--max-decisions", "3000", "--check-lanes", "2", "--quiet"]
    whole = tmp_path / "whole.pt"
    assert run(*args, "--bc-rounds", "1", "--out", whole).exit_code == 0
    fit, calls = slotnet.fit, []

    def fit_then_stop(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return fit(*a, **k)

    monkeypatch.setattr(slotnet, "fit", fit_then_stop)
    cut = tmp_path / "cut.pt"
    res = run(*args, "--bc-rounds", "2", "--out", cut)
    assert res.exit_code == 130 and "finished results were kept" in res.output, res.output
    a, b = (torch.load(p, weights_only=True) for p in (whole, cut))
    assert b["meta"]["report"]["interrupted_after_round"] == 1 and "check" not in b["meta"]["report"]
    assert all(np.array_equal(np.asarray(a["network"][k]), np.asarray(b["network"][k])) for k in a["network"])
    res = run("evaluate", "--checkpoint", cut, "--K", "4", "--seeds", "1000", "--T", "300", "--json")
    assert res.exit_code == 0 and "controller" in json.loads(res.output)
