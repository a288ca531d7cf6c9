"""PPO's truthful log: request-weighted rollout statistics, the baseline-relative reward, greedy validation
and the best-on-validation checkpoint, each against an independent plain-Python computation."""

from collections import OrderedDict

import pytest
import torch

from gpupage.controller.evaluate import evaluate
from gpupage.controller.network import ControllerConfig, PageController, load_checkpoint
from gpupage.controller.ppo import PPO, PPOConfig, train_controller
from gpupage.controller.trainlog import read_log
from gpupage.controller.validation import BASELINES, Validation
from gpupage.core.traces import ZipfParams, zipf_traces

ZIPF = dict(M=16, W=6, shift=30, T=90)
CFG = dict(K=4, lanes=6, iterations=3, lr=2e-3, hidden=16, zipf=ZIPF)


def _replay(trace, K, actions):
    """Plain loop: the env's slot bookkeeping (cold fills take the first empty slot, a decision evicts
    its action's slot).  Returns (faults, the request index of each decision)."""
    slots, faults, at = [None] * K, 0, []
    actions = iter(actions)
    for t, x in enumerate(trace):
        if x in slots:
            continue
        faults += 1
        if None in slots:
            slots[slots.index(None)] = x
        else:
            at.append(t)
            slots[next(actions)] = x
    return faults, at


def _belady(trace, K):
    cache, faults = set(), 0
    for t, x in enumerate(trace):
        if x in cache:
            continue
        faults += 1
        if len(cache) == K:
            def next_use(b):
                return next((u for u in range(t + 1, len(trace)) if trace[u] == b), len(trace))
            cache.remove(max(cache, key=next_use))
        cache.add(x)
    return faults


def _lru_faults(trace, K):
    """1 where LRU faults at each request."""
    cache, out = OrderedDict(), []
    for x in trace:
        out.append(int(x not in cache))
        if x in cache:
            cache.move_to_end(x)
        else:
            if len(cache) == K:
                cache.popitem(last=False)
            cache[x] = True
    return out


def _lane_steps(buf, b):
    valid = buf["valid"][:, b]
    return buf["actions"][valid, b].tolist(), buf["t"][valid, b].tolist(), buf["rewards"][valid, b].tolist()


def test_rollout_statistics_are_request_weighted_over_every_lane():
    runner = PPO(PPOConfig(**CFG))
    buf = runner.collect()
    stats = {**runner.update(buf)}
    requests, faults, opt = buf["rollout"].tolist()
    traces = zipf_traces(ZipfParams(**ZIPF), seed=runner.seeds).tolist()
    total_f = total_opt = decisions = 0
    for b, trace in enumerate(traces):
        actions, at, _ = _lane_steps(buf, b)
        f, when = _replay(trace, CFG["K"], actions)
        assert when == at  # every decision was taken at its pending fault, and each lane played its whole trace
        total_f, total_opt, decisions = total_f + f, total_opt + _belady(trace, CFG["K"]), decisions + len(actions)
    assert (requests, faults, opt) == (len(traces) * ZIPF["T"], total_f, total_opt)
    assert stats["samples"] == decisions
    runner2 = PPO(PPOConfig(**CFG))
    s = runner2.run_iteration()
    assert s["fault_rate"] == pytest.approx(total_f / (len(traces) * ZIPF["T"]), abs=1e-15)
    assert s["rollout_cr"] == pytest.approx(total_f / total_opt, abs=1e-15)


def test_baseline_reward_is_faults_saved_against_lru_over_each_decisions_requests():
    cfg = PPOConfig(**CFG, reward_baseline="lru")
    runner = PPO(cfg)
    buf = runner.collect()
    traces = zipf_traces(ZipfParams(**ZIPF), seed=runner.seeds).tolist()
    for b, trace in enumerate(traces):
        _, at, rewards = _lane_steps(buf, b)
        lru = _lru_faults(trace, CFG["K"])
        ends = at[1:] + [len(trace)]
        # one own fault per decision (the cache is full from the first decision on), LRU's over the same span
        want = [(-1 + sum(lru[t0:t1])) * cfg.reward_scale for t0, t1 in zip(at, ends)]
        assert rewards == pytest.approx(want, abs=1e-6)
        assert any(r != -cfg.reward_scale for r in rewards)


def test_validation_is_the_greedy_cr_paired_with_the_best_baseline():
    torch.manual_seed(3)
    model = PageController(ControllerConfig(hidden=8))
    seeds = list(range(20000, 20006))
    got = Validation(4, ZIPF, seeds=seeds)(model)
    traces = zipf_traces(ZipfParams(**ZIPF), seed=seeds)
    res = evaluate(model, traces, 4, policies=list(BASELINES), seed=seeds[0], prop6_report=False)
    opt = evaluate(None, traces, 4, policies=["belady"])["belady"]["faults"]
    cr = {name: [f / o for f, o in zip(r["faults"], opt)] for name, r in res.items()}
    best = min(BASELINES, key=lambda n: sum(cr[n]))
    gaps = [a - b for a, b in zip(cr["controller"], cr[best])]
    mean = sum(gaps) / len(gaps)
    se = (sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1) / len(gaps)) ** 0.5
    assert got["val_baseline"] == best
    assert got["val_cr"] == pytest.approx(sum(cr["controller"]) / len(seeds), abs=1e-12)
    assert got["val_gap"] == pytest.approx(mean, abs=1e-12) and got["val_gap_se"] == pytest.approx(se, abs=1e-12)


class Scripted:
    """A validation whose verdicts are given in advance; it keeps a copy of every model it saw."""

    def __init__(self, crs):
        self.crs, self.seen = list(crs), []

    def __call__(self, model):
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
        cr = self.crs[len(self.seen) - 1]
        return {"val_cr": cr, "val_gap": cr - 1.5, "val_gap_se": 0.01, "val_baseline": "lru"}


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_the_checkpoint_is_the_best_on_validation_not_the_last(tmp_path):
    val = Scripted([1.7, 1.5, 1.2, 1.4])  # the starting point (iteration 0), then iterations 1-3
    out = tmp_path / "c.pt"
    meta = train_controller(out, None, PPOConfig(**CFG), validate=val, val_every=1)
    ck = load_checkpoint(out)
    assert len(val.seen) == 4 and not _same(val.seen[2], val.seen[3])
    assert _same(ck["state_dict"], val.seen[2])  # iteration 2's weights ship
    assert _same(ck["meta"]["ppo_resume"]["model"], val.seen[3])  # the latest is kept to resume from
    assert meta["validation"] == {"stage": "ppo", "iteration": 2, "val_cr": 1.2, "val_gap": 1.2 - 1.5,
                                  "val_gap_se": 0.01, "val_baseline": "lru"}
    rows = read_log(tmp_path / "train_log.csv")
    assert [(r["step"], float(r["val_cr"])) for r in rows] == [("0", 1.7), ("1", 1.5), ("2", 1.2), ("3", 1.4)]
    assert (tmp_path / "train_curve.png").exists()


def test_validation_every_n_iterations_and_after_the_last(tmp_path):
    val = Scripted([1.8, 1.3, 1.6, 1.2])
    train_controller(tmp_path / "c.pt", None, PPOConfig(**{**CFG, "iterations": 5}), validate=val, val_every=2)
    rows = read_log(tmp_path / "train_log.csv")
    assert [r["step"] for r in rows if r["val_cr"]] == ["0", "2", "4", "5"]


def test_resume_with_validation_equals_an_uninterrupted_run(tmp_path):
    cfg = PPOConfig(**{**CFG, "iterations": 4})
    val = Validation(4, ZIPF, seeds=range(20000, 20004))
    full = tmp_path / "full.pt"
    train_controller(full, None, cfg, validate=val, val_every=1, log_dir=tmp_path / "a")
    part = tmp_path / "part.pt"

    def stop(stage, done, total, info):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_controller(part, None, cfg, validate=val, val_every=1, log_dir=tmp_path / "b", progress=stop)
    train_controller(part, None, cfg, resume=part, validate=val, val_every=1, log_dir=tmp_path / "b")
    a, b = load_checkpoint(full), load_checkpoint(part)
    assert _same(a["state_dict"], b["state_dict"])
    assert _same(a["meta"]["ppo_resume"]["model"], b["meta"]["ppo_resume"]["model"])
    assert a["meta"]["validation"] == b["meta"]["validation"]
    assert read_log(tmp_path / "a" / "train_log.csv") == [
        {**r, "seconds": x["seconds"]} for r, x in zip(read_log(tmp_path / "b" / "train_log.csv"),
                                                       read_log(tmp_path / "a" / "train_log.csv"))]


def test_sharpen_keeps_the_greedy_policy_and_lowers_the_entropy():
    from gpupage.controller import env as E
    from gpupage.controller.ppo import sharpen

    torch.manual_seed(1)
    model = PageController(ControllerConfig(hidden=8))
    obs, _ = E.reset(E.EnvParams(K=4, zipf=ZipfParams(**ZIPF)), list(range(8)))
    before = torch.softmax(model(obs)[0], 1)
    after = torch.softmax(sharpen(model, 4.0)(obs)[0], 1)
    entropy = lambda p: -(p * torch.log(p.clamp(min=1e-30))).sum(1)  # noqa: E731
    assert torch.equal(before.argmax(1), after.argmax(1))
    assert (entropy(after) < entropy(before)).all()
