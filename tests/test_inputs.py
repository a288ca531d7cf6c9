"""Every input gets a one-line error, never a traceback and never a hang; huge K acts as the trace length."""

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_cli import assert_one_line_error

import gpupage
from gpupage.core import limits
from gpupage.experiments.bounds.config import BoundsConfig
from gpupage.cli import main
from gpupage.controller.network import ControllerConfig, PageController, load_controller
from gpupage.controller.env import init_state
from gpupage.controller.imitation import BCConfig
from gpupage.experiments.multiagent import MultiAgentParams
from gpupage.controller.ppo import PPOConfig

ROOT = Path(__file__).resolve().parents[1]
CKPT = str(ROOT / "checkpoints" / "pagecontroller_k8.pt")
BIG = str(2**64)  # fits no 64-bit seed


def run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


@pytest.fixture
def trace_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("".join(f"{x % 37}\n" for x in range(2000)))
    return p


@pytest.fixture
def outs(tmp_path):
    return {"csv": str(tmp_path / "s.csv"), "dir": str(tmp_path / "b"), "pt": str(tmp_path / "c.pt")}


# ------------------------------------------------------------------------------------------- the CLI

CASES = [
    # trace lengths past int32 next-use times, and past memory
    (["sweep", "--T", "10000000000", "--out", "CSV"], ["--T", "1073741823"]),
    (["evaluate", "--checkpoint", CKPT, "--T", "10000000000"], ["--T"]),
    (["train", "--out", "PT", "--T", "10000000000"], ["--T"]),
    (["bounds", "--out", "DIR", "--T", "10000000000"], ["--T"]),
    (["multiagent", "--T", "10000000000"], ["--T"]),
    (["sweep", "--T", "300000000", "--out", "CSV", "--memory-limit", "1G"], ["300000000 requests", "needs about 4.5 GiB",
                                                                          "--memory-limit"]),
    (["bounds", "--out", "DIR", "--lanes", "1000000000"], ["needs about", "bounds"]),
    (["evaluate", "--checkpoint", CKPT, "--seeds", "1-100000000"], ["needs about", "100000000 lanes"]),
    (["multiagent", "--n", "100000000"], ["needs about", "100000000 agents"]),
    (["train", "--out", "PT", "--hidden", "1000000000"], ["needs about", "controller"]),
    (["train", "--out", "PT", "--M", "2147483648", "--W", "2"], ["needs about", "Zipf"]),
    # seeds beyond 64 bits
    (["sweep", "--seeds", BIG, "--out", "CSV"], ["--seeds", "<= 9223372036854775807"]),
    (["evaluate", "--checkpoint", CKPT, "--seeds", BIG], ["--seeds"]),
    (["multiagent", "--seeds", f"1-{BIG}"], ["--seeds"]),
    (["simulate", "TRACE", "--seed", BIG], ["--seed"]),
    (["bounds", "--out", "DIR", "--seed", BIG], ["--seed"]),
    (["train", "--out", "PT", "--seed-start", BIG], ["--seed-start"]),
    (["train", "--out", "PT", "--torch-seed", "-1"], ["--torch-seed"]),
    (["train", "--out", "PT", "--seed-start", str(2**63 - 5)], ["seed_start"]),
    # structural K: the env's per-slot arrays and the bounds' sections
    (["train", "--out", "PT", "--K", "6000"], ["K must be", "[1, 5000]"]),
    (["bounds", "--out", "DIR", "--K", "1000000000000"], ["K must be", "[1, 5000]"]),
    (["sweep", "--K", "0", "--out", "CSV"], ["--K must be >= 1"]),
    (["sweep", "--K", "5-3", "--out", "CSV"], ["--K", "'5-3' runs backwards"]),
    (["sweep", f"--seeds=-{2**63}-{2**63 - 1}", "--out", "CSV"], ["--seeds", "more than the 2**63 - 1"]),
    (["sweep", "--beta", "0.1000001,0.1000004", "--out", "CSV"], ["--beta", "6 significant digits"]),
    (["sweep", "--rho", "0.5000001,0.5000004", "--out", "CSV"], ["--rho", "6 significant digits"]),
    (["sweep", "--K", "1-2000000", "--out", "CSV"], ["--K", "1048576"]),
    (["sweep", "--K", f"1-{10**30}", "--out", "CSV"], ["--K", "1048576"]),
    # training settings the library cannot use
    (["train", "--out", "PT", "--bc-epochs", "0"], ["--bc-epochs"]),
    (["train", "--out", "PT", "--bc-epochs", "-2"], ["--bc-epochs"]),
    (["train", "--out", "PT", "--bc-rounds", "-1", "--ppo-iterations", "1", "--lanes", "0"], ["--lanes"]),
    (["train", "--out", "PT", "--bc-rounds", "-1", "--reward-baseline", "belady"], ["reward_baseline", "online"]),
    (["train", "--out", "PT", "--val-seeds", "5"], ["at least 2 seeds"]),
    (["train", "--out", "PT", "--val-every", "0", "--val-seeds", "5-3"], ["--val-seeds", "runs backwards"]),
    (["train", "--out", "PT", "--hidden", "0"], ["--hidden"]),
    (["train", "--out", "PT", "--bc-beta", "2"], ["--bc-beta", "0<=x<=1"]),
    (["train", "--out", "PT", "--ppo-iterations", "-3"], ["--ppo-iterations"]),
    (["train", "--out", "PT", "--ent-coef", "-5"], ["--ent-coef"]),
    (["train", "--out", "PT", "--lr", "nan"], ["--lr", "finite"]),
    (["train", "--out", "PT", "--bc-lr", "inf"], ["--bc-lr", "finite"]),
    (["train", "--out", "PT", "--bc-Ks", "4,0"], ["--bc-Ks must be >= 1"]),
    (["train", "--out", "PT", "--threads", "0"], ["--threads"]),
    # lists, floats and the rest
    (["evaluate", "--checkpoint", CKPT, "--policies", ""], ["no policy given"]),
    (["sweep", "--eta", "nan", "--out", "CSV"], ["--eta", "finite"]),
    (["sweep", "--beta", "inf", "--out", "CSV"], ["--beta", "finite"]),
    (["sweep", "--alpha", "-1", "--out", "CSV"], ["--alpha"]),
    (["sweep", "--M", "0", "--out", "CSV"], ["--M"]),
    (["sweep", "--shift", "0", "--out", "CSV"], ["--shift"]),
    (["bounds", "--out", "DIR", "--eta", "nan"], ["--eta", "finite"]),
    (["bounds", "--out", "DIR", "--lanes", "0"], ["--lanes"]),
    (["multiagent", "--n", "0"], ["agents"]),
    (["multiagent", "--window", "0"], ["--window"]),
    (["multiagent", "--epoch", "-1"], ["--epoch"]),
    (["multiagent", "--W", "1-2000000"], ["--W"]),
    (["simulate", "TRACE", "--threads", "0"], ["--threads"]),
    (["prefetch", "--eviction", ","], ["--eviction", "no values given"]),
    (["prefetch", "--eviction", "learned"], ["--eviction", "'learned' eviction is not implemented"]),
    (["reproduce", "--out", "DIR", "--memory-limit", "lots"], ["--memory-limit", "cannot read"]),
    (["sweep", "--out", "CSV", "--memory-limit", "0"], ["--memory-limit", "at least 1 byte"]),
]


@pytest.mark.parametrize("args, words", CASES, ids=lambda a: " ".join(map(str, a))[:60])
def test_bad_input_is_one_line(args, words, trace_file, outs):
    sub = {"TRACE": str(trace_file), "CSV": outs["csv"], "DIR": outs["dir"], "PT": outs["pt"]}
    assert_one_line_error(run(*[sub.get(a, a) for a in args]), *words)


@pytest.mark.parametrize("cmd", [["sweep", "--T", "100", "--quiet"], ["train", "--quiet"],
                                 ["train", "--policy", "learned", "--quiet"], ["prefetch-train", "--quiet"]])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(cmd, trace_file):
    """A device is never replaced by a file, and a checkpoint's place is checked before training, not after."""
    assert_one_line_error(run(*cmd, "--out", os.devnull), "not a regular file")
    assert_one_line_error(run(*cmd, "--out", trace_file / "x.pt"), "cannot write" if "sweep" not in cmd else "")


def test_a_seed_given_twice_runs_once(tmp_path):
    """One row per (policy, K, seed) cell, as with --seeds 1,2."""
    rows = {}
    for name, seeds in (("twice", "1,1,2,1-2"), ("once", "1,2")):
        res = run("sweep", "--T", "200", "--K", "4", "--seeds", seeds, "--quiet", "--out", tmp_path / f"{name}.csv")
        assert res.exit_code == 0, res.output
        rows[name] = (tmp_path / f"{name}.csv").read_text()
    assert rows["twice"] == rows["once"] and len(rows["once"].splitlines()) == 1 + 2 * 2


def test_memory_limit_from_the_environment(outs):
    res = run("sweep", "--T", "1000000", "--out", outs["csv"], env={limits.MEMORY_ENV: "1M"})
    assert_one_line_error(res, "a sweep lane of 1000000 requests needs about 15.3 MiB", limits.MEMORY_ENV)
    assert not os.path.exists(outs["csv"])
    assert_one_line_error(run("sweep", "--out", outs["csv"], env={limits.MEMORY_ENV: "x"}), limits.MEMORY_ENV)


def test_memory_limit_holds_for_one_command_only(outs):
    assert_one_line_error(run("sweep", "--T", "1000000", "--out", outs["csv"], "--memory-limit", "1M"), "needs about")
    res = run("sweep", "--seeds", "1-3", "--T", "100", "--out", outs["csv"], "--quiet")
    assert res.exit_code == 0, res.output


def test_a_sweep_takes_fewer_lanes_a_call_when_memory_is_short(outs):
    """1 MiB holds 6 of these lanes at a time: the sweep runs in batches, and a lane never depends on its batch."""
    args = ["sweep", "--seeds", "1-40", "--T", "5000", "--beta", "0,0.1", "--quiet"]
    assert run(*args, "--out", outs["csv"] + "a").exit_code == 0
    assert run(*args, "--out", outs["csv"] + "b", "--memory-limit", "1M").exit_code == 0
    a, b = (open(outs["csv"] + x).read().splitlines() for x in "ab")
    assert len(a) == 1 + 40 * 2 * 2 and sorted(a) == sorted(b)  # the same rows ...
    assert a != b  # ... written in batches of another size


@pytest.mark.parametrize("cmd", ["simulate", "sweep", "reproduce", "train", "evaluate", "bounds", "multiagent",
                                 "prefetch", "prefetch-train"])
def test_every_numeric_option_has_a_range(cmd):
    """A plain int or float option would take any value the library cannot use."""
    from gpupage.cli.options import Finite

    for p in main.commands[cmd].params:
        if isinstance(p.type, click.types.IntParamType):
            assert isinstance(p.type, click.IntRange), (cmd, p.name)
        if isinstance(p.type, click.types.FloatParamType):
            assert isinstance(p.type, Finite), (cmd, p.name)
            with pytest.raises(click.BadParameter):
                p.type.convert("nan", p, None)
    assert {"threads", "memory_limit"} <= {p.name for p in main.commands[cmd].params}


def test_unexpected_exceptions_are_one_line_internal_errors(monkeypatch, trace_file):
    import gpupage.experiments.calls

    def broken(*a, **k):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(gpupage.experiments.calls, "simulate_file", broken)
    assert_one_line_error(run("simulate", trace_file), "internal error (ZeroDivisionError: division by zero)",
                          "please report it")

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(gpupage.experiments.calls, "simulate_file", oom)
    assert_one_line_error(run("simulate", trace_file), "out of memory")


# ------------------------------------------------------------------------------------------- K beyond T

@pytest.mark.parametrize("K", ["2000", "1000000000000", "4611686018427387905", str(2**63), str(10**30)])
def test_simulate_huge_k_acts_as_the_trace_length(trace_file, K):
    res = run("simulate", trace_file, "--policy", "fifo,belady,arc,lru", "--K", f"{K},8", "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in res.output.splitlines()]
    assert [r["K"] for r in rows] == [int(K), 8] * 4
    assert all(r["faults"] == 37 for r in rows[::2])  # 37 distinct blocks: only compulsory faults
    assert all(r["faults"] > 37 for r in rows[1::2])


@pytest.mark.parametrize("family, betas, cells", [("zipf", "0,0.1", 18), ("cyclic", "0", 9)])  # cyclic perturbs over K+1 blocks
def test_sweep_huge_k_runs_at_the_trace_length(outs, family, betas, cells):
    import csv

    rows = {}
    for K in ("200", "100000000"):
        res = run("sweep", "--T", "200", "--K", K, "--seeds", "1-3", "--policies", "lru,fifo,arc", "--beta", betas,
                  "--family", family, "--out", outs["csv"] + K, "--quiet")
        assert res.exit_code == 0, res.output
        rows[K] = [{k: v for k, v in r.items() if k != "K"} for r in csv.DictReader(open(outs["csv"] + K))]
    assert rows["200"] == rows["100000000"] and len(rows["200"]) == cells


def test_evaluate_huge_k_equals_k_at_t_and_warns_on_stderr():
    args = ["evaluate", "--checkpoint", CKPT, "--seeds", "5", "--T", "300", "--policies", "lru,fifo", "--json"]
    huge, at_t, trained = (run(*args, "--K", k) for k in ("1000000000000", "300", "8"))
    assert huge.exit_code == 0 and at_t.exit_code == 0, huge.output + at_t.output
    a, b = json.loads(huge.stdout), json.loads(at_t.stdout)  # stdout holds the JSON alone
    assert a == b and a["controller"]["prop6"]["holds"] and a["controller"]["faults"] == a["lru"]["faults"]
    assert huge.stderr.count("\n") == 1 and "trained at K = 8, evaluated at K = 1000000000000" in huge.stderr
    assert trained.exit_code == 0 and trained.stderr == ""


def test_multiagent_huge_k_per_agent_equals_k_at_t():
    args = ["multiagent", "--n", "2,3", "--T", "200", "--seeds", "0", "--json"]
    huge, at_t = run(*args, "--K-per-agent", "1000000000000"), run(*args, "--K-per-agent", "200")
    assert huge.exit_code == 0, huge.output
    strip = lambda r: {k: v for k, v in r.items() if k != "K_shared"}  # noqa: E731
    assert [strip(json.loads(ln)) for ln in huge.stdout.splitlines()] == \
        [strip(json.loads(ln)) for ln in at_t.stdout.splitlines()]


# ------------------------------------------------------------------------------------------- checkpoints

def _checkpoint(path, **changes):
    ck = torch.load(CKPT, map_location="cpu", weights_only=True)
    for key, value in changes.items():
        if value is None:
            del ck[key]
        else:
            ck[key] = value(ck[key]) if callable(value) else value
    torch.save(ck, path)
    return str(path)


@pytest.mark.parametrize("changes, words", [
    (dict(config=lambda c: {**c, "dropout": 0.1}), ["unknown setting(s) dropout"]),
    (dict(meta=None), ["damaged", "meta"]),
    (dict(state_dict=lambda sd: {k: v for k, v in sd.items() if not k.startswith("score")}), ["missing: score"]),
    (dict(config=lambda c: {**c, "hidden": 7}), ["wrong shape"]),
    (dict(config=lambda c: {**c, "hidden": 0}), ["hidden must be"]),
    (dict(config=lambda c: {**c, "mode": "greybox"}), ["mode must be"]),
])
def test_damaged_checkpoints_are_one_line(tmp_path, changes, words):
    path = _checkpoint(tmp_path / "bad.pt", **changes)
    assert_one_line_error(run("evaluate", "--checkpoint", path, "--seeds", "1", "--T", "100"), path, *words)
    with pytest.raises(ValueError, match=words[0].replace("(", r"\(").replace(")", r"\)")):
        load_controller(path)


def test_a_truncated_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "cut.pt"
    path.write_bytes(Path(CKPT).read_bytes()[:5000])
    assert_one_line_error(run("evaluate", "--checkpoint", path), "not a gpupage controller checkpoint")


# ------------------------------------------------------------------------------------------- the library

TRACES = gpupage.zipf_traces(gpupage.ZipfParams(T=300), seed=[1, 2])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_unsigned_traces_whose_ids_fit_are_simulated(dtype):
    ref = gpupage.simulate(TRACES, "lru", 8).faults
    assert torch.equal(gpupage.simulate(TRACES.numpy().astype(dtype), "lru", 8).faults, ref)


def test_unsigned_ids_beyond_the_signed_type():
    tr = TRACES.numpy().astype(np.uint32)
    tr[0, tr[0] == 5] = 2**32 - 1  # widened to int64, then remapped
    assert torch.equal(gpupage.simulate(tr, "lru", 8).faults, gpupage.simulate(TRACES, "lru", 8).faults)
    tr = tr.astype(np.uint64)
    tr[0, 0] = 2**63
    with pytest.raises(ValueError, match="block ids must be below 2\\*\\*63"):
        gpupage.simulate(tr, "lru", 8)


@pytest.mark.parametrize("T", [300, 2_500_000])  # one chunk of 2**22 requests, and three
def test_sparse_ids_are_remapped_in_chunks(T):
    gen = np.random.default_rng(T)
    tr = torch.from_numpy(gen.integers(0, 3000, size=(2, T)) * (1 << 40) + 12345)
    tr[1, :7] = -1
    uniq, inverse = torch.unique(tr[tr >= 0], return_inverse=True)
    dense = torch.full_like(tr, -1)
    dense[tr >= 0] = inverse
    for policy in ("lru", "belady"):
        a = gpupage.simulate(tr, policy, 50, return_hits=True)
        b = gpupage.simulate(dense, policy, 50, return_hits=True)
        assert torch.equal(a.faults, b.faults) and a.requests.tolist() == [T, T - 7]
        assert torch.equal(a.victims, torch.where(b.victims >= 0, uniq[b.victims.clamp(min=0)], -1))


@pytest.mark.parametrize("make, words", [
    (lambda: BCConfig(epochs=0), "epochs must be an integer >= 1"),
    (lambda: BCConfig(dagger_rounds=-2), "dagger_rounds"),
    (lambda: BCConfig(beta=2), "beta must be a finite number in \\[0, 1\\]"),
    (lambda: BCConfig(lr=float("nan")), "lr must be a finite number > 0"),
    (lambda: BCConfig(hidden=0), "hidden"),
    (lambda: BCConfig(K=6000), "K must be an integer in \\[1, 5000\\]"),
    (lambda: BCConfig(Ks=(4, 0)), "K must be"),
    (lambda: BCConfig(zipf={"bogus": 1}), "unknown Zipf setting\\(s\\) bogus"),
    (lambda: BCConfig(torch_seed=-1), "torch_seed"),
    (lambda: PPOConfig(lanes=0), "lanes"),
    (lambda: PPOConfig(iterations=-3), "iterations"),
    (lambda: PPOConfig(ent_coef=-5), "ent_coef"),
    (lambda: PPOConfig(gamma=0), "gamma"),
    (lambda: PPOConfig(target_kl=float("inf")), "target_kl"),
    (lambda: PPOConfig(seed_start=2**63), "seed_start"),
    (lambda: ControllerConfig(hidden=0), "hidden"),
    (lambda: ControllerConfig(mode="greybox"), "mode"),
    (lambda: BoundsConfig(K=10**12), "K must be"),
    (lambda: BoundsConfig(etas=(float("nan"),)), "eta must be a finite number"),
    (lambda: BoundsConfig(seed=2**63 - 3), "seed"),
    (lambda: MultiAgentParams(n=0), "n \\(agents\\)"),
    (lambda: MultiAgentParams(n=2, K_shared=4, window=0), "window"),
    (lambda: gpupage.ZipfParams(T=2**40), "T must be in"),
    (lambda: gpupage.ZipfParams(M=2**40, W=2), "M must be in"),
    (lambda: gpupage.perturb(TRACES, 0.1, 2**40), "perturbation needs 2 <= M"),
    (lambda: gpupage.zipf_traces(gpupage.ZipfParams(), seed=[2**64]), "seeds must fit in 64 bits"),
    (lambda: gpupage.simulate(TRACES, "random", 8, seed=2**64), "seeds must fit in 64 bits"),
    (lambda: init_state(TRACES, 301), "K must be in \\[1, T=300\\]"),
])
def test_library_settings_are_one_line(make, words):
    with pytest.raises(ValueError, match=words) as err:
        make()
    assert "\n" not in str(err.value)


def test_memory_estimates_refuse_before_allocating():
    limits.set_memory_limit(1 << 20)
    try:
        with pytest.raises(limits.MemoryLimitError, match="needs about 1.9 GiB, more than the 1.0 MiB available"):
            gpupage.zipf_traces(gpupage.ZipfParams(T=5000), seed=0, batch=100_000)
        with pytest.raises(limits.MemoryLimitError, match="controller"):
            PageController(ControllerConfig(hidden=1000))
        tr = torch.zeros((100, 5000), dtype=torch.int32)
        with pytest.raises(limits.MemoryLimitError, match="simulating 100 lanes x 5000 requests"):
            gpupage.simulate(tr, "lru", 8, return_hits=True)
    finally:
        limits.set_memory_limit(None)


def test_lanes_that_fit_shrink_with_the_memory():
    limits.set_memory_limit(1 << 30)
    try:
        assert limits.lanes_that_fit(1 << 20, 1 << 14) == 512
        assert limits.lanes_that_fit(1 << 40, 1 << 14) == 1
    finally:
        limits.set_memory_limit(None)
    assert limits.lanes_that_fit(1, 7) == 7


def test_available_memory_reads_the_machine_and_the_environment(monkeypatch):
    room, source = limits.available_memory()
    assert room is not None and room > 0 and source in ("MemAvailable", "the cgroup's memory limit")
    monkeypatch.setenv(limits.MEMORY_ENV, "16G")
    assert limits.available_memory() == (16 << 30, limits.MEMORY_ENV)


@pytest.mark.parametrize("text, size", [("16G", 16 << 30), ("512M", 512 << 20), ("1.5k", 1536), ("2GiB", 2 << 30),
                                        ("100", 100), ("3 tb", 3 << 40)])
def test_sizes(text, size):
    assert limits.parse_size(text) == size


def test_seed_ranges_stay_lazy():
    from gpupage.cli.options import parse_int_list
    from gpupage.experiments.sweep import _ranges

    seeds = parse_int_list("1-100000000", "--seeds", lazy=True)
    assert isinstance(seeds, range) and len(seeds) == 10**8 and _ranges(seeds) == [[1, 10**8]]
    assert _ranges(list(seeds[:5]) + [9]) == [[1, 5], [9, 9]]
    assert parse_int_list("3,1-2") == [3, 1, 2]
    assert parse_int_list("32,32") == [32, 32]  # widths may repeat
    assert parse_int_list("2,1,1-3", "--seeds", lazy=True, unique=True) == [2, 1, 3]
    with pytest.raises(click.BadParameter, match="more than the 1048576"):
        parse_int_list("1-2000000,5", "--seeds", lazy=True)


def test_work_threads_never_exceed_the_work():
    import numba

    before = limits.configure_threads()
    with limits.work_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    assert 1 <= limits.cpu_count() <= os.cpu_count()


@pytest.mark.parametrize("first,chosen,want", [("import torch, gpupage", None, "workqueue"),
                                               ("import numba, torch, gpupage", None, "workqueue"),
                                               ("import torch, gpupage", "omp", "omp")])
def test_the_api_runs_the_workqueue_layer_unless_the_user_chose_one(first, chosen, want):
    # numba fixes its layer at the first parallel call: here simulate's, not one behind a thread setting
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update({} if chosen is None else {"NUMBA_THREADING_LAYER": chosen})
    code = f"{first}, numba; gpupage.simulate(torch.randint(0, 9, (2, 50)), 'lru', 4); print(numba.threading_layer())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == [want], out.stdout + out.stderr


# ------------------------------------------------------------------------------------------- no hangs

@pytest.mark.parametrize("args", [
    ["simulate", "TRACE", "--policy", "fifo,lru,belady,adaptive,clock", "--K", "4611686018427387905"],
    ["sweep", "--T", "200", "--K", "100000000", "--seeds", "1-2", "--out", "CSV", "--quiet"],
    ["evaluate", "--checkpoint", CKPT, "--seeds", "1-100000000"],
    ["multiagent", "--n", "100000000", "--quiet"],
    ["bounds", "--out", "DIR", "--lanes", "1000000000", "--quiet"],
])
def test_no_input_hangs(args, trace_file, outs):
    sub = {"TRACE": str(trace_file), "CSV": outs["csv"], "DIR": outs["dir"]}
    proc = subprocess.run([sys.executable, "-m", "gpupage", *[sub.get(a, a) for a in args]], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0 or proc.stderr.count("Error:") == 1, proc.stderr
