"""Prefetching (issue 13): hints, the serving loop and the oracle against the plain-Python reference, OPT by
brute force over every schedule, and the properties the model promises."""

import json
import random
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_cli import assert_one_line_error

import gpupage
from gpupage.cli import main
from gpupage.core import rng
from gpupage.core.prefetch import make_hints, opt, opt_cost, simulate_prefetch
from gpupage.core.reference import naive_simulate
from gpupage.core.traces import ZipfParams, zipf_traces
from gpupage.experiments.prefetching import PrefetchSpec, run_prefetch
from gpupage.zoo.prefetch_reference import naive_hints, naive_prefetch

EVICTIONS = ("lru", "lfu", "fifo", "adaptive")


def _random_batch(r: random.Random, B: int, T: int, n: int, pad: bool) -> torch.Tensor:
    rows = []
    for _ in range(B):
        row = [r.randrange(n) for _ in range(T)]
        if pad:  # trailing pads of random lengths, and now and then one in the middle
            cut = r.randrange(T + 1)
            row = row[:cut] + [-1] * (T - cut)
            if T > 2 and r.random() < 0.3:
                row[r.randrange(T)] = -1
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def _counts(res, b):
    return int(res.faults[b]), int(res.prefetches[b]), int(res.evictions[b]), float(res.cost[b])


@pytest.mark.parametrize("case", range(12))
def test_hints_and_serving_equal_the_reference(case):
    r = random.Random(case)
    B, T, n = r.choice([1, 3, 7]), r.choice([1, 5, 17, 60]), r.choice([1, 2, 5, 13])
    traces = _random_batch(r, B, T, n, pad=case % 2 == 1)
    L = r.choice([1, 2, 3, T + 2])  # past the end too: every hint is then -1
    eps = r.choice([0.0, 0.3, 1.0])
    K = r.choice([1, 2, 3, 9])
    lam_fetch, lam_evict = r.choice([(0.3, 0.0), (1.0, 0.5), (0.05, 2.0)])
    seed = r.randrange(1 << 40)
    hints = make_hints(traces, L, eps, n, seed=seed)
    keys = rng.lane_keys(seed, B)
    for b in range(B):
        assert hints[b].tolist() == naive_hints(traces[b].tolist(), L, eps, n, int(keys[b]))
    pos = torch.tensor([[r.randrange(3) for _ in range(T)] for _ in range(B)])
    for P in (0, 1):
        for ev in EVICTIONS:
            for rule in ("never", "follow_hint", "next_in_call"):
                res = simulate_prefetch(traces, K, rule, ev, hints=hints, L=L, pos_in_call=pos, P=P,
                                        lam_fetch=lam_fetch, lam_evict=lam_evict)
                for b in range(B):
                    want = naive_prefetch(traces[b].tolist(), K, rule, ev, hints=hints[b].tolist(), L=L, P=P,
                                          pos_in_call=pos[b].tolist(), lam_fetch=lam_fetch, lam_evict=lam_evict)
                    assert _counts(res, b) == pytest.approx(want), (rule, ev, P, b)
        for W in (0, 1):  # the oracle with and without the working set's ranks
            for window in (0, 1, 3, T + 1):
                res = simulate_prefetch(traces, K, "lookahead", None, L=window, P=P, lam_fetch=lam_fetch)
                for b in range(B):
                    want = naive_prefetch(traces[b].tolist(), K, "lookahead", None, L=window, P=P,
                                          lam_fetch=lam_fetch)
                    assert _counts(res, b) == pytest.approx(want), (window, P, b)


@pytest.mark.parametrize("seed", [0, 5])
def test_oracle_with_latent_ranks_equals_the_reference(seed):
    traces, latent = zipf_traces(ZipfParams(M=12, W=5, shift=23, T=150), seed=seed, batch=4, return_latent=True)
    for window in (0, 1, 4, 16):
        for P in (0, 1):
            res = simulate_prefetch(traces, 3, "lookahead", None, L=window, latent=latent, P=P, lam_fetch=0.3)
            for b in range(4):
                want = naive_prefetch(traces[b].tolist(), 3, "lookahead", None, L=window, P=P,
                                      working_sets=latent.working_sets[b].tolist(), shift=latent.shift,
                                      lam_fetch=0.3)
                assert _counts(res, b) == pytest.approx(want)
            if window >= 1 and P == 1:  # it always knows r_t in time: it never stalls
                assert int(res.faults.sum()) == 0


def test_never_is_todays_demand_paging():
    traces = zipf_traces(ZipfParams(M=30, W=8, shift=100, T=600), seed=2, batch=6)
    distinct = torch.tensor([len(set(row.tolist())) for row in traces])
    for policy in ("lru", "lfu", "fifo", "adaptive", "belady", "arc", "clock", "fixed"):
        got = simulate_prefetch(traces, 5, "never", policy, lam_evict=0.5)
        faults = gpupage.simulate(traces, policy, 5, backend="cpu").faults
        assert got.faults.tolist() == faults.tolist()
        assert int(got.prefetches.sum()) == 0
        evictions = faults - torch.minimum(torch.tensor(5), distinct) if policy != "fixed" else torch.zeros(6)
        assert got.evictions.tolist() == evictions.tolist(), policy
        assert got.cost.tolist() == (faults + 0.5 * evictions).double().tolist()


def test_follow_the_hint_with_exact_hints_beats_demand_paging():
    traces = zipf_traces(ZipfParams(), seed=list(range(3000, 3004)))
    hints = make_hints(traces, 4, 0.0, 64, seed=1)
    lru = simulate_prefetch(traces, 8, "never", "lru", lam_fetch=0.1)
    hinted = simulate_prefetch(traces, 8, "follow_hint", "lru", hints=hints, L=4, lam_fetch=0.1)
    assert (hinted.faults < lru.faults).all()
    assert (hinted.cost < lru.cost).all()
    # exact hints fetch r_t just in time from t = L on: only the first L requests can fault
    assert (hinted.faults <= 4).all()


def test_noise_hurts_follow_the_hint_monotonically_on_average():
    traces = zipf_traces(ZipfParams(T=2000), seed=list(range(3100, 3110)))
    faults = [float(simulate_prefetch(traces, 8, "follow_hint", "lru", hints=make_hints(traces, 4, e, 64, seed=3),
                                      L=4, lam_fetch=0.3).faults.double().mean()) for e in (0.0, 0.2, 1.0)]
    assert faults[0] < faults[1] < faults[2]


# ----------------------------------------------------------------------------------- OPT by brute force

def _brute_force_opt(trace, K, lam_fetch, lam_evict):
    """Least total cost over every schedule: before each request any one prefetch (or none) of any block of
    the trace's universe plus one block outside it, with any victim, then the request with any victim."""
    universe = sorted(set(trace)) + [max(trace) + 1]
    lf, le = Fraction(lam_fetch), Fraction(lam_evict)

    def loads(cache, y):
        if len(cache) < K:
            return [(cache | {y}, Fraction(0))]
        return [((cache - {v}) | {y}, le) for v in cache]

    @lru_cache(maxsize=None)
    def best(t, cache):
        if t == len(trace):
            return Fraction(0)
        x = trace[t]
        options = [(cache, Fraction(0))]
        for y in universe:
            if y not in cache:
                options += [(c, lf + e) for c, e in loads(cache, y)]
        out = None
        for c, pre in options:
            for c2, e in ([(c, Fraction(0))] if x in c else [(c2, 1 + e2) for c2, e2 in loads(c, x)]):
                v = pre + e + best(t + 1, c2)
                out = v if out is None or v < out else out
        return out

    return best(0, frozenset())


@pytest.mark.parametrize("weights", [("3/10", "0"), ("1", "0"), ("1/2", "7/10"), ("1", "2"), ("1/10", "3")])
def test_opt_formula_equals_brute_force(weights):
    lam_fetch, lam_evict = (Fraction(w) for w in weights)
    r = random.Random(str(weights))
    for _ in range(40):
        T, K, n = r.randint(1, 8), r.randint(1, 3), r.randint(1, 4)
        trace = [r.randrange(n) for _ in range(T)]
        fb = naive_simulate(trace, "belady", K)[0]
        formula = opt_cost(fb, K, len(set(trace)), float(lam_fetch), float(lam_evict))
        brute = _brute_force_opt(trace, K, lam_fetch, lam_evict)
        assert float(formula) == pytest.approx(float(brute), abs=1e-12), (trace, K)
        assert float(opt(torch.tensor(trace), K, float(lam_fetch), float(lam_evict))[0]) == pytest.approx(float(brute))


# ------------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs, words", [
    (dict(lam_fetch=0.0), "lambda_fetch"), (dict(lam_fetch=1.5), "lambda_fetch"),
    (dict(lam_evict=-1.0), "lambda_evict"), (dict(P=-1), "P"),
    (dict(rule="follow_hint"), "hints"), (dict(rule="next_in_call"), "call"),
    (dict(rule="lookahead"), "eviction=None"), (dict(rule="bogus"), "bogus"),
    (dict(rule="lookahead", eviction=None, L=-1), "window"), (dict(eviction="arc", rule="follow_hint"), "arc"),
])
def test_bad_options_are_one_line_errors(kwargs, words):
    args = dict(rule="never", eviction="lru") | kwargs
    with pytest.raises(ValueError, match=words) as info:
        simulate_prefetch(torch.zeros(1, 4, dtype=torch.int64), 2, **args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("L, eps, words", [(0, 0.1, "L"), (2, -0.1, "epsilon"), (2, 1.5, "epsilon")])
def test_bad_hint_options_are_one_line_errors(L, eps, words):
    with pytest.raises(ValueError, match=words):
        make_hints(torch.zeros(1, 4, dtype=torch.int64), L, eps, 4)


def test_next_in_call_on_a_mooncake_file(tmp_path):
    r = random.Random(4)
    calls = [[r.randrange(40) for _ in range(r.randint(1, 9))] for _ in range(60)]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"timestamp": i, "hash_ids": c}) + "\n" for i, c in enumerate(calls)))
    ft = gpupage.read_trace(str(path))
    pos = ft.meta["pos_in_call"]
    for ev in EVICTIONS:
        res = simulate_prefetch(torch.from_numpy(ft.ids), 6, "next_in_call", ev, pos_in_call=torch.from_numpy(pos),
                                lam_fetch=0.5)
        want = naive_prefetch(ft.ids.tolist(), 6, "next_in_call", ev, pos_in_call=pos.tolist(), lam_fetch=0.5)
        assert _counts(res, 0) == pytest.approx(want)
        assert int(res.faults[0]) <= len(calls)  # only a call's first block can stall
    rows = run_prefetch(PrefetchSpec(K=6, eps=(0.1,)), [1, 2], str(path))
    assert [r["policy"] for r in rows if r["rule"] == "next_in_call"] == ["next_in_call (lru)", "next_in_call (adaptive)"]


@pytest.mark.parametrize("args, words", [
    (["--lambda-fetch", "0"], "lambda_fetch"), (["--lambda-fetch", "1.2"], "lambda_fetch"),
    (["--lambda-evict", "-0.5"], "lambda_evict"), (["--hint-noise", "0,1.5"], "epsilon"),
    (["--lookahead", "0"], "--lookahead"), (["--prefetches", "-1"], "--prefetches"), (["--family", "closed-loop"], "closed-loop"),
    (["--eviction", "belady"], "belady"), (["--K", "4,8"], "one cache size"),
])
def test_cli_bad_input_is_one_line(args, words):
    result = CliRunner().invoke(main, ["prefetch", "--seeds", "1", "--T", "50", *args])
    assert_one_line_error(result, words)


def test_cli_table_has_every_rule():
    result = CliRunner().invoke(main, ["prefetch", "--seeds", "1-2", "--T", "300", "--hint-noise", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["rule"] for r in rows] == ["never"] * 2 + ["follow_hint"] * 2 + ["lookahead"] * 3 + ["opt"]
    assert rows[-1]["cost_over_opt"] == 1.0 and all(r["cost_over_opt"] >= 1.0 for r in rows)
