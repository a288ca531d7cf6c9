"""train --resume continues and never restarts: finished runs are a no-op, totals may grow, other settings may not."""

import os

import pytest
import torch
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.controller.imitation import BCConfig
from gpupage.controller.ppo import PPOConfig, train_controller

ZIPF = dict(M=16, W=6, shift=30, T=60)
BC = dict(K=4, hidden=16, lanes=3, epochs=1, batch_size=64, zipf=ZIPF)
PPO_ = dict(K=4, lanes=8, lr=2e-3, hidden=16, zipf=ZIPF)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_finished_run_resumed_with_the_same_totals_is_a_no_op(tmp_path):
    out = tmp_path / "c.pt"
    train_controller(out, BCConfig(**BC, dagger_rounds=1), PPOConfig(**PPO_, iterations=2))
    before, log = out.read_bytes(), (tmp_path / "train_log.csv").read_bytes()
    meta = train_controller(out, BCConfig(**BC, dagger_rounds=1), PPOConfig(**PPO_, iterations=2), resume=out)
    assert meta["nothing_to_do"]
    assert out.read_bytes() == before and (tmp_path / "train_log.csv").read_bytes() == log


def test_a_fresh_run_never_replaces_an_earlier_runs_checkpoint_or_log(tmp_path):
    out = tmp_path / "c.pt"
    train_controller(out, BCConfig(**BC, dagger_rounds=0), None)
    before, log = out.read_bytes(), (tmp_path / "train_log.csv").read_bytes()
    with pytest.raises(ValueError, match="c.pt exists.*--resume"):
        train_controller(out, BCConfig(**BC, dagger_rounds=0), None)
    with pytest.raises(ValueError, match="train_log.csv holds an earlier run's log"):  # another --out, same log dir
        train_controller(tmp_path / "d.pt", BCConfig(**BC, dagger_rounds=0), None)
    with pytest.raises(ValueError, match="c.pt exists; remove it or choose another --out"):  # resumed into another file
        train_controller(out, BCConfig(**BC, dagger_rounds=1), None, resume=tmp_path / "e.pt")
    assert out.read_bytes() == before and (tmp_path / "train_log.csv").read_bytes() == log
    assert not (tmp_path / "d.pt").exists()
    for more in ([], ["--nproc", "2", "--device", "cpu"]):  # refused once, before any rank starts
        res = CliRunner().invoke(main, ["train", "--out", str(out), "--K", "4", "--T", "60", "--bc-rounds", "0",
                                        "--quiet", *more])
        assert res.exit_code == 1 and res.output.count("Error") == 1 and "exists" in res.output, res.output


def test_more_bc_rounds_continue_to_an_uninterrupted_runs_weights(tmp_path):
    full = tmp_path / "full.pt"
    train_controller(full, BCConfig(**BC, dagger_rounds=2), None, log_dir=tmp_path / "a")
    part = tmp_path / "part.pt"
    train_controller(part, BCConfig(**BC, dagger_rounds=1), None, log_dir=tmp_path / "b")
    assert not same(weights(full), weights(part))
    train_controller(part, BCConfig(**BC, dagger_rounds=2), None, resume=part, log_dir=tmp_path / "b")
    assert same(weights(full), weights(part))
    assert (tmp_path / "a" / "train_log.csv").read_text().count("\nbc,") == 3
    assert (tmp_path / "b" / "train_log.csv").read_text().count("\nbc,") == 3


def test_more_ppo_iterations_continue_from_the_finished_state(tmp_path):
    out = tmp_path / "c.pt"
    train_controller(out, None, PPOConfig(**PPO_, iterations=2))
    first = weights(out)
    train_controller(out, None, PPOConfig(**PPO_, iterations=4), resume=out)
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["ppo_resume"]["iteration"] == 4 and meta["ppo"]["iterations"] == 4
    assert not same(first, weights(out))
    rows = (tmp_path / "train_log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:2] for r in rows] == [["ppo", str(i)] for i in range(1, 5)]


@pytest.mark.parametrize("change, words", [
    (dict(ppo=dict(lr=1e-3)), "PPO setting lr differs"),
    (dict(ppo=dict(iterations=1)), "1 PPO iterations is below the 2 already trained"),
    (dict(bc=dict(dagger_rounds=2)), "PPO began"),
    (dict(bc=dict(lanes=4)), "behaviour-cloning setting lanes differs"),
])
def test_changed_settings_are_refused_and_nothing_is_written(tmp_path, change, words):
    out = tmp_path / "c.pt"
    train_controller(out, BCConfig(**BC, dagger_rounds=1), PPOConfig(**PPO_, iterations=2))
    before = out.read_bytes()
    bc = BCConfig(**{**BC, "dagger_rounds": 1, **change.get("bc", {})})
    ppo = PPOConfig(**{**PPO_, "iterations": 2, **change.get("ppo", {})})
    with pytest.raises(ValueError, match=words):
        train_controller(out, bc, ppo, resume=out)
    assert out.read_bytes() == before


TRAIN = ["train", "--K", "4", "--hidden", "8", "--bc-rounds", "0", "--bc-lanes", "2", "--bc-epochs", "1",
         "--M", "16", "--W", "6", "--shift", "30", "--T", "60", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_resume_checks_every_option(tmp_path):
    out = tmp_path / "c.pt"
    assert run(*TRAIN, "--out", out).exit_code == 0
    before, mtime = out.read_bytes(), os.stat(out).st_mtime_ns
    res = run(*TRAIN, "--out", out, "--resume", out, "--threads", "2", "--log-dir", tmp_path / "logs")
    assert res.exit_code == 0 and "nothing to do" in res.output
    assert out.read_bytes() == before and os.stat(out).st_mtime_ns == mtime
    for opt, value in (("--K", "8"), ("--hidden", "16"), ("--alpha", "0.8"), ("--bc-lanes", "4")):
        args = [a for a in TRAIN]
        if opt in args:
            args[args.index(opt) + 1] = value
        else:
            args += [opt, value]
        res = run(*args, "--out", out, "--resume", out)
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert f"--resume: {opt} {value} differs from the checkpoint's" in res.output, res.output
    assert out.read_bytes() == before
    res = run(*TRAIN, "--out", out, "--resume", out, "--bc-rounds", "1")
    assert res.exit_code == 0 and "wrote" in res.output
    assert torch.load(out, weights_only=True)["meta"]["bc_resume"]["next_round"] == 2


def test_cli_reads_options_back_from_an_older_checkpoints_command(tmp_path):
    """Checkpoints written before options were recorded carry only the command line."""
    out = tmp_path / "c.pt"
    assert run(*TRAIN, "--out", out).exit_code == 0
    ck = torch.load(out, weights_only=True)
    del ck["meta"]["options"]
    ck["meta"]["command"] = "gpupage " + " ".join(TRAIN + ["--out", str(out)])
    torch.save(ck, out)
    assert "nothing to do" in run(*TRAIN, "--out", out, "--resume", out).output
    res = run(*TRAIN, "--out", out, "--resume", out, "--lr", "0.1")
    assert res.exit_code == 1 and "--lr 0.1 differs" in res.output
