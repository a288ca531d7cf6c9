"""Multi-agent partitioning against the plain reference and against the single-cache simulator."""

import numpy as np
import pytest
from click.testing import CliRunner

from gpupage.cli import main
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams
from gpupage.experiments.multiagent import (STRATEGIES, MultiAgentParams, _apportion, agent_traces, equal_quotas, interleave,
                                multiagent_table, naive_agents, simulate_agents)


def _params(n, K, seed_gen):
    M = int(seed_gen.integers(3, 14))
    zipf = ZipfParams(M=M, W=2, shift=int(seed_gen.integers(5, 40)), T=int(seed_gen.integers(1, 90)))
    Ws = tuple(int(w) for w in seed_gen.integers(1, M + 1, size=3))
    return MultiAgentParams(n=n, K_shared=K, zipf=zipf, Ws=Ws, window=int(seed_gen.integers(1, 20)),
                            epoch=int(seed_gen.integers(1, 15)))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_matches_reference(strategy):
    gen = np.random.default_rng(5)
    for trial in range(10):
        n = int(gen.integers(1, 5))
        p = _params(n, int(gen.integers(n, 3 * n + 4)), gen)
        tr = agent_traces(p, trial)
        got = simulate_agents(tr, p.K_shared, strategy, p.zipf.M, p.window, p.epoch)
        assert got.tolist() == naive_agents(tr.tolist(), p.K_shared, strategy, p.window, p.epoch), (trial, p)


def test_static_is_separate_lru_caches_and_shared_is_one_lru():
    p = MultiAgentParams(n=3, K_shared=13, zipf=ZipfParams(M=30, T=800), Ws=(4, 9, 20))
    tr = agent_traces(p, 1)
    static = simulate_agents(tr, 13, "static", 30)
    for i, q in enumerate(equal_quotas(13, 3)):
        assert static[i] == int(simulate(tr[i], "lru", int(q)).faults[0])
    shared = simulate_agents(tr, 13, "shared", 30)
    assert shared.sum() == int(simulate(interleave(tr), "lru", 13).faults[0])


def test_one_agent_is_plain_lru_for_every_strategy():
    p = MultiAgentParams(n=1, K_shared=6, zipf=ZipfParams(M=20, T=500), Ws=(10,))
    tr = agent_traces(p, 2)
    lru = int(simulate(tr[0], "lru", 6).faults[0])
    for s in STRATEGIES:
        assert simulate_agents(tr, 6, s, 20)[0] == lru


def test_interleave_is_round_robin():
    tr = np.array([[0, 1, 2], [10, 11, 12]])
    assert interleave(tr).tolist() == [0, 10, 1, 11, 2, 12]


def test_apportion_gives_every_agent_a_slot_and_uses_all():
    gen = np.random.default_rng(0)
    for _ in range(50):
        n = int(gen.integers(1, 9))
        K = int(gen.integers(n, 70))
        demand = gen.integers(0, 40, size=n).astype(np.int64)
        q = np.empty(n, dtype=np.int64)
        _apportion(K, demand, q)
        assert q.sum() == K and (q >= 1).all()
        if demand.sum():
            assert (np.abs(q - 1 - (K - n) * demand / demand.sum()) < 1 + 1e-9).all()


def test_table_has_every_strategy_and_agent():
    rows = multiagent_table(ns=(2, 3), K_per_agent=4, seeds=(0,), zipf=ZipfParams(T=300))
    assert [(r["n"], r["strategy"]) for r in rows] == [(n, s) for n in (2, 3) for s in STRATEGIES]
    for r in rows:
        assert len(r["per_agent"]) == r["n"] and r["total"] == pytest.approx(sum(r["per_agent"]))


@pytest.mark.parametrize("bad", [dict(n=0), dict(n=-3), dict(n=4, K_shared=3), dict(Ws=(0,))])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        MultiAgentParams(**bad)


@pytest.mark.parametrize("args,word", [(["--n", "0"], "agents"), (["--n=-2"], "agents"),
                                       (["--K-per-agent", "0"], "--K-per-agent")])
def test_cli_one_line_errors(args, word):
    res = CliRunner().invoke(main, ["multiagent", "--quiet", "--T", "100"] + args)
    assert res.exit_code != 0 and "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and word in errors[0], res.output


def test_cli_json_rows():
    import json

    res = CliRunner().invoke(main, ["multiagent", "--n", "2", "--T", "200", "--seeds", "0", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in res.output.strip().splitlines()]
    assert {r["strategy"] for r in rows} == set(STRATEGIES)


def test_a_long_run_stops_at_ctrl_c_and_an_error_in_it_is_raised(monkeypatch):
    """The numba loop runs on a worker thread: Ctrl-C reaches the caller within a second of arriving, not after
    the run (5,000 agents take several seconds), and what the loop raises reaches the caller."""
    import os
    import signal
    import threading
    import time

    p = MultiAgentParams(n=5000, K_shared=40000, zipf=ZipfParams(T=300))
    tr = agent_traces(p, 0)
    simulate_agents(tr[:2, :10], 16, "shared", p.zipf.M)  # compiled before the clock starts
    # Python's own handler: a job started in the background by a script (CI) inherits SIGINT ignored
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.time()
        with pytest.raises(KeyboardInterrupt):
            simulate_agents(tr, p.K_shared, "shared", p.zipf.M)
        assert time.time() - t0 < 2.5
    finally:
        signal.signal(signal.SIGINT, before)

    from gpupage.experiments import multiagent

    def fails(*args):
        raise ZeroDivisionError("in the loop")

    monkeypatch.setattr(multiagent, "_run", fails)
    with pytest.raises(ZeroDivisionError, match="in the loop"):
        simulate_agents(np.zeros((2, 5), dtype=np.int64), 4, "shared", 4)
