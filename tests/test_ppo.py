"""PPO: GAE against a Python loop, a tiny run beating Random, determinism, resume and the device field."""

import random

import pytest
import torch

from gpupage.controller.evaluate import evaluate
from gpupage.controller.imitation import BCConfig, train_bc
from gpupage.controller.ppo import PPO, PPOConfig, gae, train_controller
from gpupage.core.traces import ZipfParams, zipf_traces


def _gae_loop(rewards, values, discounts, next_value, lam):
    N, B = len(rewards), len(rewards[0])
    adv = [[0.0] * B for _ in range(N)]
    for b in range(B):
        running = 0.0
        for t in reversed(range(N)):
            nv = next_value[b] if t == N - 1 else values[t + 1][b]
            delta = rewards[t][b] + discounts[t][b] * nv - values[t][b]
            running = delta + discounts[t][b] * lam * running
            adv[t][b] = running
    return adv


@pytest.mark.parametrize("N,B", [(1, 1), (7, 5), (13, 3)])
def test_gae_matches_a_python_loop(N, B):
    rnd = random.Random(N * 31 + B)
    rewards = [[rnd.choice([0.0, -1.0, -0.05]) for _ in range(B)] for _ in range(N)]
    values = [[rnd.uniform(-3, 0) for _ in range(B)] for _ in range(N)]
    discounts = [[rnd.choice([0.0, 0.99, 0.9 ** rnd.randint(1, 9)]) for _ in range(B)] for _ in range(N)]
    next_value = [rnd.uniform(-3, 0) for _ in range(B)]
    adv, ret = gae(torch.tensor(rewards, dtype=torch.float64), torch.tensor(values, dtype=torch.float64),
                   torch.tensor(discounts, dtype=torch.float64), torch.tensor(next_value, dtype=torch.float64), 0.95)
    ref = torch.tensor(_gae_loop(rewards, values, discounts, next_value, 0.95), dtype=torch.float64)
    assert torch.allclose(adv, ref, atol=1e-12)
    assert torch.allclose(ret, ref + torch.tensor(values, dtype=torch.float64), atol=1e-12)


TINY = dict(K=4, lanes=16, iterations=12, lr=2e-3, ent_coef=0.01, hidden=16,
            zipf=dict(M=24, W=8, shift=100, T=300))


def test_tiny_ppo_beats_random():
    runner = PPO(PPOConfig(**TINY))
    for _ in range(TINY["iterations"]):
        runner.run_iteration()
    traces = zipf_traces(ZipfParams(**TINY["zipf"]), seed=list(range(40)))
    res = evaluate(runner.model, traces, 4, policies=["random"], prop6_report=False)
    assert res["controller"]["competitive_ratio"]["mean"] < res["random"]["competitive_ratio"]["mean"]


def test_same_seed_same_result():
    cfg = PPOConfig(**{**TINY, "iterations": 2})
    a, b = PPO(cfg), PPO(cfg)
    for _ in range(2):
        sa, sb = a.run_iteration(), b.run_iteration()
        assert sa["pg_loss"] == sb["pg_loss"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    # T=60 with 4 slots: an episode ends within one rollout, so every iteration ends at a boundary
    cfg = PPOConfig(**{**TINY, "iterations": 3, "zipf": dict(M=16, W=6, shift=30, T=60)})
    full = tmp_path / "full.pt"
    train_controller(full, None, cfg, log_dir=tmp_path / "a")
    part = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):
        train_controller(part, None, cfg, log_dir=tmp_path / "b", progress=_stop_after(2))
    assert torch.load(part, weights_only=True)["meta"]["ppo_resume"]["iteration"] == 2
    # the interrupted run left a checkpoint at iteration 2; resume it
    train_controller(part, None, cfg, resume=part, log_dir=tmp_path / "b")
    sa = torch.load(full, weights_only=True)["state_dict"]
    sb = torch.load(part, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (tmp_path / "a" / "train_log.csv").exists() and (tmp_path / "a" / "train_curve.png").exists()


def _stop_after(n, at="ppo"):
    def progress(stage, done, total, info):
        if stage == at and done >= n:
            raise KeyboardInterrupt

    return progress


def test_resume_inside_behaviour_cloning_equals_an_uninterrupted_run(tmp_path):
    # two cache sizes and a pool cap that trims mid-round, so resume must re-collect partial rounds
    bc = BCConfig(K=4, Ks=(3, 5), hidden=16, lanes=3, dagger_rounds=3, epochs=1, batch_size=64, max_samples=120,
                  zipf=dict(M=16, W=6, shift=30, T=80))
    ppo = PPOConfig(**{**TINY, "iterations": 1, "K": 4, "zipf": bc.zipf})
    full = tmp_path / "full.pt"
    train_controller(full, bc, ppo, log_dir=tmp_path / "a")
    part = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):  # after round 2's log, before its snapshot: round 2 is redone
        train_controller(part, bc, ppo, log_dir=tmp_path / "b", progress=_stop_after(3, at="bc"))
    state = torch.load(part, weights_only=True)["meta"]["bc_resume"]
    assert state["next_round"] == 2 and state["dropped"] % 2 == 1  # the pool starts mid-round
    train_controller(part, None, ppo, resume=part, log_dir=tmp_path / "b")
    sa = torch.load(full, weights_only=True)
    sb = torch.load(part, weights_only=True)
    assert all(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in sa["state_dict"])
    assert sb["meta"]["bc"] == sa["meta"]["bc"]
    assert sb["meta"]["bc_resume"]["next_round"] == sa["meta"]["bc_resume"]["next_round"] == 4  # kept: rounds may be added
    log = (tmp_path / "b" / "train_log.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in log[1:]] == [["bc", "0"], ["bc", "1"], ["bc", "2"], ["bc", "3"],
                                                        ["ppo", "1"]]


def test_explicit_cpu_device_matches_the_default(tmp_path):
    # device="cpu" given explicitly: the same weights as the default (shipped checkpoints were trained so),
    # model, buffers and generator on that device, and a checkpoint that loads with weights_only
    bc_cfg = dict(K=4, mode="whitebox", hidden=16, lanes=4, dagger_rounds=1, epochs=1, batch_size=256,
                  zipf=dict(M=16, W=6, shift=30, T=80))
    bc_a = train_bc(BCConfig(**bc_cfg, device="cpu"))
    bc_b = train_bc(BCConfig(**bc_cfg))
    assert all(torch.equal(pa, pb) for pa, pb in zip(bc_a.parameters(), bc_b.parameters()))
    cfg = dict(TINY, iterations=1, mode="whitebox", zipf=bc_cfg["zipf"])
    a, b = PPO(PPOConfig(**cfg, device="cpu"), bc_a), PPO(PPOConfig(**cfg), bc_b)
    buf = a.collect()
    assert all(buf[k].device.type == "cpu" for k in ("slots", "actions", "rewards", "valid"))
    assert a.gen.device.type == "cpu" and a.state.t.device.type == "cpu"
    sa, sb = a.update(buf), b.run_iteration()
    assert sa["pg_loss"] == sb["pg_loss"] and sa["samples"] == sb["samples"]
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.model.parameters(), b.model.parameters()))
    d = a.resume_dict()
    assert all(v.device.type == "cpu" for st in d["optimizer"]["state"].values() for v in st.values())
    with pytest.raises(ValueError, match="resume it there"):  # CPU and CUDA generator states are not interchangeable
        b.load_resume({**d, "config": {**d["config"], "device": "cuda"}})
    b.load_resume({**d, "config": {k: v for k, v in d["config"].items() if k != "device"}})  # older checkpoints
    assert b.iteration == a.iteration
    out = tmp_path / "c.pt"
    meta = train_controller(out, BCConfig(**bc_cfg, device="cpu"), PPOConfig(**cfg, device="cpu"), log_dir=tmp_path)
    ck = torch.load(out, weights_only=True)
    assert meta["bc"]["device"] == meta["ppo"]["device"] == "cpu"
    assert all(v.device.type == "cpu" for v in ck["state_dict"].values())
