"""Each policy declares the options it reads: simulate refuses others, a sweep gives each policy its own."""

import pytest
import torch
from click.testing import CliRunner

from gpupage import simulate
from gpupage.cli import main
from gpupage.core.policies import POLICIES, check_options
from gpupage.zoo import heuristics


def test_adaptive_declares_its_tuning_constants():
    assert POLICIES["adaptive"].options == heuristics.PARAMS


def test_simulate_refuses_an_option_the_policy_does_not_read():
    tr = torch.tensor([[1, 2, 1, 3]])
    with pytest.raises(ValueError, match="policy 'lru' reads no option 'eta'; it reads none"):
        simulate(tr, "lru", 2, options={"eta": 1.0})
    with pytest.raises(ValueError, match="'candiates'"):
        simulate(tr, "learned", 2, options={"checkpoint": "x.pt", "candiates": 4})


def test_check_options_names_who_reads_it():
    pols = [POLICIES["lru"], POLICIES["adaptive"]]
    with pytest.raises(ValueError, match="option 'eta' is read by none of lru, adaptive .it is read by blind_oracle"):
        check_options(pols, {"eta": 1.0})
    check_options(pols + [POLICIES["blind_oracle"]], {"eta": 1.0})


def test_sweep_shares_eta_between_adaptive_and_a_predictor(tmp_path):
    out = tmp_path / "s.csv"
    args = ["sweep", "--policies", "adaptive,blind_oracle", "--K", "4", "--seeds", "1-2", "--T", "300", "--eta", "1",
            "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rows = out.read_text().splitlines()[1:]
    tr = __import__("gpupage").zipf_traces(__import__("gpupage").ZipfParams(T=300), seed=[1, 2])
    want = {("adaptive", s): int(f) for s, f in zip((1, 2), simulate(tr, "adaptive", 4, seed=[1, 2]).faults)}
    want.update({("blind_oracle", s): int(f) for s, f in
                 zip((1, 2), simulate(tr, "blind_oracle", 4, seed=[1, 2], options={"eta": 1.0}).faults)})
    got = {(r.split(",")[0], int(r.split(",")[2])): int(r.split(",")[6]) for r in rows}
    assert got == want
    bad = CliRunner().invoke(main, ["sweep", "--policies", "lru", "--K", "4", "--seeds", "1", "--T", "300", "--eta", "1",
                                    "--out", str(tmp_path / "b.csv"), "--quiet"])
    assert bad.exit_code != 0 and "read by none of lru" in bad.output and not (tmp_path / "b.csv").exists()
