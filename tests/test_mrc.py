"""Miss-ratio curves, one-pass Belady and LFU, SHARDS, and warm-up: each against an independent reference
(per-K ``simulate``, the plain-Python references, libCacheSim)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli import assert_one_line_error, run

from gpupage.controller.evaluate import controller_rollout, evaluate
from gpupage.controller.network import ControllerConfig, PageController, save_controller
from gpupage.core.curves import ONE_PASS, fault_curve
from gpupage.core.io import read_trace, write_oracle
from gpupage.core.policies import POLICIES
from gpupage.core.reference import naive_simulate
from gpupage.core.shards import sample_mask
from gpupage.core.simulate import first_touches, simulate
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.experiments.mrc import auto_sizes, miss_ratio_curves
from gpupage.zoo.arc import naive_arc

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
CLOUD = TRACES / "cloudPhysicsIO.txt"
MOONCAKE = TRACES / "mooncake_conversation_train.jsonl"
LEARNED = Path(__file__).resolve().parents[1] / "checkpoints" / "learned_v1.pt"


def mooncake_ids() -> np.ndarray:
    """The Mooncake calls' hash_ids flattened in call order."""
    return read_trace(MOONCAKE, "mooncake").ids


def per_k(trace, policy, Ks, warmup=0):
    """Faults at each K by simulating every K as its own lane."""
    lanes = torch.as_tensor(trace).unsqueeze(0).expand(len(Ks), -1)
    return simulate(lanes, policy, torch.tensor(Ks), warmup=warmup).faults.tolist()


# ------------------------------------------------------------------------------------------ one pass

@pytest.mark.parametrize("policy", ONE_PASS)
def test_one_pass_equals_simulation_at_every_k(policy):
    gen = np.random.default_rng(11)
    for trial in range(40):
        B, T, M = int(gen.integers(1, 4)), int(gen.integers(1, 160)), int(gen.integers(1, 30))
        tr = gen.integers(0, M, size=(B, T)) if trial % 3 else gen.zipf(1.3, size=(B, T)) % M
        if trial % 2:
            tr[gen.random(tr.shape) < 0.15] = -1
        if trial % 5 == 0:
            tr[tr >= 0] += 10**12  # sparse ids take the remap path
        w = int(gen.integers(0, T)) if trial % 4 else 0
        tr = torch.from_numpy(tr)
        curve = fault_curve(tr, policy, M + 2, warmup=w)
        for b in range(B):
            assert curve[b].tolist() == per_k(tr[b], policy, list(range(1, M + 3)), w), (policy, trial, b)


@pytest.mark.parametrize("policy", ["lfu", "belady"])
def test_one_pass_equals_the_plain_reference(policy):
    gen = np.random.default_rng(3)
    for _ in range(25):
        trace = (gen.zipf(1.2, size=int(gen.integers(20, 120))) % 15).tolist()
        curve = fault_curve(torch.tensor(trace), policy, 16)[0].tolist()
        assert curve == [naive_simulate(trace, policy, K)[0] for K in range(1, 17)]


@pytest.mark.skipif(not CLOUD.exists(), reason="cloudPhysicsIO.txt not present")
def test_one_pass_on_cloudphysics():
    ids = torch.from_numpy(read_trace(str(CLOUD)).ids)
    Ks = [1, 2, 7, 64, 500, 4096, 20000, 48974]
    for policy in ONE_PASS:
        curve = fault_curve(ids, policy, 48974)[0]
        assert [int(curve[k - 1]) for k in Ks] == per_k(ids, policy, Ks), policy
    # the published libCacheSim counts
    assert [int(fault_curve(ids, "belady", 64)[0, k - 1]) for k in (7, 64)] == [103704, 95375]


@pytest.mark.skipif(not MOONCAKE.exists(), reason="mooncake trace not present")
def test_one_pass_on_mooncake_with_warmup():
    ids = torch.from_numpy(mooncake_ids())
    Ks = [1, 3, 16, 100, 1000, 10000, 60000, 128199]
    for policy in ONE_PASS:
        for w in (0, 50000):
            curve = fault_curve(ids, policy, 128199, warmup=w)[0]
            assert [int(curve[k - 1]) for k in Ks] == per_k(ids, policy, Ks, w), (policy, w)


@pytest.mark.skipif(not MOONCAKE.exists(), reason="mooncake trace not present")
def test_curves_equal_libcachesim_on_a_prefix(tmp_path):
    lcs = pytest.importorskip("libcachesim")
    ids = mooncake_ids()[:20000]
    path = str(tmp_path / "prefix.oracleGeneral")
    write_oracle(path, ids)
    rows = miss_ratio_curves(np.unique(ids, return_inverse=True)[1], ["lru", "fifo", "belady"], "auto")
    assert len(rows) == 3 * 64
    for r in rows:
        reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
        cache = {"lru": lcs.LRU, "fifo": lcs.FIFO, "belady": lcs.Belady}[r["policy"]](cache_size=r["K"], hashpower=16)
        assert r["faults"] == round(cache.process_trace(reader)[0] * ids.size), r


def test_runner_one_pass_equals_lanes_and_counts_compulsory():
    tr = zipf_traces(ZipfParams(M=200, W=40, T=3000), seed=[5])[0].numpy()
    for w in (0, 700, 0.25):
        a = miss_ratio_curves(tr, list(ONE_PASS), "auto", warmup=w)
        b = miss_ratio_curves(tr, list(ONE_PASS), "auto", warmup=w, one_pass=False)
        assert a == b
        start = int(w * tr.size) if w < 1 else w
        seen_before = set(tr[:start].tolist())
        first_after = len(set(tr[start:].tolist()) - seen_before)
        for r in a:
            assert r["requests"] == tr.size - start
            assert r["non_compulsory_faults"] == r["faults"] - first_after
    huge = miss_ratio_curves(tr, list(ONE_PASS), [5, 10**12])  # beyond T: no [T, 10**12] curve, just T
    assert huge == miss_ratio_curves(tr, list(ONE_PASS), [5, 10**12], one_pass=False)


def test_the_runner_simulates_a_threads_worth_of_sizes_a_batch():
    """Batches short enough to stop between (an interrupt waits for the numba call in progress), with the
    rows of one whole call; a one-pass curve stays one batch."""
    from gpupage.core import limits
    from gpupage.experiments.mrc import MrcSpec, run_mrc

    tr = zipf_traces(ZipfParams(M=200, W=40, T=2000), seed=[6])[0].numpy()
    Ks = [1, 2, 3, 5, 8, 13, 21]
    spec = MrcSpec(tr, ["fifo", "lru"], Ks)
    with limits.work_threads(2):
        if limits.configure_threads() < 2:
            pytest.skip("needs 2 numba threads")
        batches = list(run_mrc(spec))
    assert [len(b) for b in batches] == [2, 2, 2, 1, 7]
    whole = [dict(r, miss_ratio=f"{r['miss_ratio']:.6f}") for r in miss_ratio_curves(tr, ["fifo", "lru"], Ks)]
    assert [r for b in batches for r in b] == whole


def test_auto_sizes_are_log_spaced_distinct_and_end_at_the_distinct_blocks():
    assert auto_sizes(2) == [1, 2]
    assert auto_sizes(10) == list(range(1, 11))
    assert auto_sizes(64) == list(range(1, 65))
    for distinct in list(range(2, 400)) + [1000, 48974, 128199]:
        s = auto_sizes(distinct)
        assert len(s) == min(64, distinct) and s[0] == 1 and s[-1] == distinct
        assert all(a < b for a, b in zip(s, s[1:]))
    big = auto_sizes(128199)
    assert big[:16] == list(range(1, 17))  # rounded log-spacing repeats small sizes: each raised to one more
    assert big[20:] == [round(128199 ** (i / 63)) for i in range(20, 64)]


# ------------------------------------------------------------------------------------------ warm-up

def _misses_after(trace, hits, w):
    return [sum(1 for t in range(w, len(row)) if row[t] >= 0 and not hits[b][t]) for b, row in enumerate(trace)]


def _non_compulsory(trace, hits, w):
    out = []
    for b, row in enumerate(trace):
        seen, n = set(), 0
        for t, x in enumerate(row):
            if x >= 0:
                n += t >= w and not hits[b][t] and x in seen
                seen.add(x)
        out.append(n)
    return out


@pytest.mark.parametrize("policy", list(POLICIES))
def test_warmup_counts_from_request_w_for_every_policy(policy):
    gen = np.random.default_rng(POLICIES[policy].code)
    for trial in range(6):
        B, T, M = 3, int(gen.integers(2, 120)), int(gen.integers(2, 25))
        tr = gen.integers(0, M, size=(B, T))
        tr[gen.random(tr.shape) < 0.1 * (trial % 2)] = -1
        tr = torch.from_numpy(tr)
        K = torch.from_numpy(gen.integers(1, 10, size=B))
        w = int(gen.integers(0, T)) if trial else 0.5
        opts = {"checkpoint": str(LEARNED)} if POLICIES[policy].needs_checkpoint else None
        full = simulate(tr, policy, K, seed=trial, return_hits=True, options=opts)
        res = simulate(tr, policy, K, seed=trial, warmup=w, options=opts)
        wi = int(w * T) if w == 0.5 else w
        hits = full.hits.tolist()
        assert res.faults.tolist() == _misses_after(tr.tolist(), hits, wi), (policy, w)
        assert res.non_compulsory.tolist() == _non_compulsory(tr.tolist(), hits, wi)
        assert res.requests.tolist() == (tr[:, wi:] >= 0).sum(1).tolist() and res.warmup == wi


def test_shared_lanes_count_like_separate_copies():
    tr = torch.from_numpy(np.random.default_rng(0).integers(0, 50, size=700))
    Ks = torch.tensor([1, 5, 40, 700])
    for policy in ("fifo", "arc", "clock", "random"):
        shared = simulate(tr.expand(4, -1), policy, Ks, seed=[9] * 4, warmup=100)
        copies = simulate(tr.repeat(4, 1), policy, Ks, seed=[9] * 4, warmup=100)
        assert shared.faults.tolist() == copies.faults.tolist() and shared.requests.tolist() == copies.requests.tolist()
        assert shared.non_compulsory.tolist() == copies.non_compulsory.tolist()
    assert first_touches(tr.expand(3, -1), 100).tolist() == [len(set(tr.tolist()) - set(tr[:100].tolist()))] * 3


@pytest.mark.interpreter
@pytest.mark.parametrize("policy", ["lru", "belady", "arc"])
def test_warmup_on_the_triton_backend(policy):
    tr = torch.from_numpy(np.random.default_rng(2).integers(0, 12, size=(3, 60)))
    K = torch.tensor([2, 4, 7])
    cpu = simulate(tr, policy, K, warmup=25)
    tri = simulate(tr, policy, K, backend="triton", warmup=25)
    assert tri.faults.tolist() == cpu.faults.tolist() and tri.non_compulsory.tolist() == cpu.non_compulsory.tolist()


@pytest.mark.parametrize("warmup, words", [(10, ["warm-up of 10", "has 10"]), (11, ["warm-up of 11"]),
                                           (-1, ["warm-up"]), (1.5, ["warm-up"]), (float("nan"), ["warm-up"]),
                                           ("5", ["warm-up"])])
def test_bad_warmup_is_a_one_line_value_error(warmup, words):
    with pytest.raises(ValueError) as exc:
        simulate(torch.arange(10), "lru", 2, warmup=warmup)
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words)


def test_evaluate_with_warmup_counts_the_controller_too():
    torch.manual_seed(0)
    model = PageController(ControllerConfig(hidden=16)).eval()
    traces = zipf_traces(ZipfParams(M=30, W=10, shift=120, T=500), seed=[1, 2])
    res = evaluate(model, traces, 4, policies=["lru", "belady"], warmup=200)
    full = evaluate(model, traces, 4, policies=["lru"], prop6_report=False)
    lru = simulate(traces, "lru", 4, warmup=200)
    assert res["lru"]["faults"] == lru.faults.tolist() and res["lru"]["non_compulsory"] == lru.non_compulsory.tolist()
    assert res["belady"]["faults"] == simulate(traces, "belady", 4, warmup=200).faults.tolist()
    # the controller's misses from request 200 on, replaying its (greedy, deterministic) evictions by hand
    _, victims = controller_rollout(model, traces, 4)
    for b in range(2):
        cache, misses = set(), 0
        for t, x in enumerate(traces[b].tolist()):
            if x not in cache:
                misses += t >= 200
                cache.discard(int(victims[b, t]))
                cache.add(x)
        assert res["controller"]["faults"][b] == misses
    assert full["controller"]["faults"] != res["controller"]["faults"]


# ------------------------------------------------------------------------------------------ SHARDS

def test_shards_keeps_whole_blocks_at_the_rate():
    gen = np.random.default_rng(4)
    ids = gen.integers(0, 5000, size=40000) * 7919 + 10**13
    keep = sample_mask(ids, 0.1, seed=1)
    assert np.array_equal(keep, sample_mask(ids, 0.1, seed=1))  # a pure function of the ids and seed
    for x in np.unique(ids)[:200]:
        assert len(set(keep[ids == x].tolist())) == 1  # a block is in or out, every request of it
    blocks = np.unique(ids[keep]).size / np.unique(ids).size
    assert 0.08 < blocks < 0.12
    assert not np.array_equal(keep, sample_mask(ids, 0.1, seed=2))
    assert sample_mask(ids, 1.0).all()


def test_shards_curve_is_the_sample_simulated_at_scaled_k():
    gen = np.random.default_rng(5)
    ids = gen.zipf(1.1, size=30000) % 3000
    keep = sample_mask(ids, 0.25, seed=0)
    rows = miss_ratio_curves(ids, ["fifo", "belady"], [4, 40, 400], sample_rate=0.25, warmup=1000)
    sample = torch.from_numpy(ids[keep])
    w = int(keep[:1000].sum())
    for r in rows:
        k = max(1, round(r["K"] * 0.25))
        assert r["faults"] == int(simulate(sample, r["policy"], k, warmup=w).faults[0])
        assert r["requests"] == sample.numel() - w
        # SHARDS_adj: over the requests an average sample holds, not this sample's own count
        assert r["miss_ratio"] == pytest.approx(min(r["faults"] / (0.25 * (ids.size - 1000)), 1.0))


# ------------------------------------------------------------------------------------------ ARC at large K

def test_arc_at_large_k_equals_the_reference():
    gen = np.random.default_rng(8)
    trace = (gen.zipf(1.05, size=4000) % 900).tolist()
    for K in (150, 400, 899):
        res = simulate(torch.tensor(trace), "arc", K, return_hits=True)
        f, h, v = naive_arc(trace, K)
        assert int(res.faults[0]) == f and res.hits[0].tolist() == h and res.victims[0].tolist() == v


# ------------------------------------------------------------------------------------------ commands

@pytest.fixture
def trace_file(tmp_path):
    gen = np.random.default_rng(6)
    ids = (gen.zipf(1.2, size=3000) % 400) * 1000003
    path = tmp_path / "t.txt"
    path.write_text("\n".join(map(str, ids)) + "\n")
    return path, ids


def test_a_fresh_run_never_replaces_a_plot_already_there(trace_file, tmp_path):
    path, _ = trace_file
    out = tmp_path / "curves"
    out.mkdir()
    (out / "mrc.png").write_text("someone's plot")
    assert_one_line_error(run("mrc", path, "--K", "1,2", "--out", out, "--quiet"), "mrc.png", "--overwrite")
    assert (out / "mrc.png").read_text() == "someone's plot" and not (out / "mrc.csv").exists()
    assert run("mrc", path, "--K", "1,2", "--out", out, "--quiet", "--overwrite").exit_code == 0
    assert run("mrc", path, "--K", "1,2", "--out", out, "--quiet").exit_code == 0  # its own plot: resumes


def test_mrc_command_writes_the_curves(trace_file, tmp_path):
    path, ids = trace_file
    out = tmp_path / "curves"
    res = run("mrc", path, "--policies", "lru,clock,belady", "--K", "auto", "--warmup", "0.1", "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "mrc.csv")))
    assert list(rows[0]) == ["policy", "K", "requests", "faults", "non_compulsory_faults", "miss_ratio"]
    dense = read_trace(str(path)).ids
    expected = miss_ratio_curves(dense, ["lru", "clock", "belady"], "auto", warmup=300)
    assert [(r["policy"], int(r["K"]), int(r["faults"]), int(r["non_compulsory_faults"])) for r in rows] == \
        [(r["policy"], r["K"], r["faults"], r["non_compulsory_faults"]) for r in expected]
    assert (out / "mrc.png").stat().st_size > 10000
    online = run("mrc", path, "--policies", "online", "--K", "5,50", "--out", out, "--quiet", "--overwrite")
    assert online.exit_code == 0, online.output
    names = [r["policy"] for r in csv.DictReader(open(out / "mrc.csv"))]
    assert set(names) == {n for n, p in POLICIES.items() if not (p.needs_future or p.needs_checkpoint)} | {"belady"}


def test_simulate_and_sweep_commands_take_a_warmup(trace_file, tmp_path):
    path, ids = trace_file
    res = run("simulate", path, "--policy", "fifo,lfu", "--K", "3,30", "--warmup", "1000", "--json")
    assert res.exit_code == 0, res.output
    dense = torch.from_numpy(read_trace(str(path)).ids)
    for row in map(json.loads, res.output.strip().splitlines()):
        r = simulate(dense, row["policy"], row["K"], warmup=1000)
        assert (row["faults"], row["non_compulsory_faults"], row["requests"]) == \
            (int(r.faults[0]), int(r.non_compulsory[0]), 2000)
    out = tmp_path / "s.csv"
    res = run("sweep", "--policies", "lru", "--K", "4", "--seeds", "1-2", "--T", "500", "--warmup", "100",
              "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out)))
    tr = zipf_traces(ZipfParams(T=500), [1, 2])
    r = simulate(tr, "lru", 4, warmup=100)
    assert [int(x["faults"]) for x in rows] == r.faults.tolist() and {x["T"] for x in rows} == {"400"}
    assert [int(x["non_compulsory_faults"]) for x in rows] == r.non_compulsory.tolist()
    again = run("sweep", "--policies", "lru", "--K", "4", "--seeds", "1-2", "--T", "500", "--warmup", "50",
                "--out", out, "--quiet")
    assert_one_line_error(again, "different run", "warmup")


def test_evaluate_command_takes_a_warmup(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "c.pt"
    save_controller(path, PageController(ControllerConfig(hidden=16)))
    out = run("evaluate", "--checkpoint", path, "--K", "4", "--seeds", "1-2", "--T", "400", "--shift", "100",
              "--policies", "lru,belady", "--warmup", "150", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    tr = zipf_traces(ZipfParams(T=400, shift=100), [1, 2])
    lru = simulate(tr, "lru", 4, seed=1, warmup=150)
    assert data["lru"]["faults"] == lru.faults.tolist() and data["lru"]["non_compulsory"] == lru.non_compulsory.tolist()
    assert len(data["controller"]["non_compulsory"]) == 2


def test_bad_input_is_one_line(trace_file, tmp_path):
    path, ids = trace_file
    out = tmp_path / "o"
    assert_one_line_error(run("mrc", path, "--warmup", "3000", "--out", out), "warm-up of 3000", "3000")
    assert_one_line_error(run("mrc", path, "--warmup", "5000", "--out", out), "warm-up")
    assert_one_line_error(run("simulate", path, "--warmup", "3000"), "warm-up")
    one = tmp_path / "one.txt"
    one.write_text("7\n7\n7\n")
    assert_one_line_error(run("mrc", one, "--K", "auto", "--out", out), "--K auto", "1")
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_one_line_error(run("mrc", path, "--out", afile), "is a file")
    for rate in ("0", "1.5", "-0.1", "nan"):
        assert_one_line_error(run("mrc", path, "--sample-rate", rate, "--out", out), "sample rate")
    assert_one_line_error(run("mrc", path, "--warmup", "-3", "--out", out), "--warmup")
    assert_one_line_error(run("mrc", path, "--policies", "lru,nope", "--out", out), "nope")
    assert_one_line_error(run("mrc", path, "--sample-rate", "0.0001", "--out", out), "nothing to count")
    assert not out.exists()
