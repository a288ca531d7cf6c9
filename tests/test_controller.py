"""The Page Controller: size, permutation equivariance, checkpoints, behaviour cloning."""

import pytest
import torch

from gpupage.controller import env as E
from gpupage.controller.features import Obs, observe
from gpupage.controller.imitation import BCConfig, bc_loss, belady_labels, collect, expert_action, fit, rank_loss, train_bc
from gpupage.controller.network import (ControllerConfig, PageController, checkpoint_dict, load_controller,
                                save_controller)
from gpupage.core.traces import ZipfParams


@pytest.mark.parametrize("mode", ["blackbox", "whitebox"])
def test_small_enough_for_a_kernel(mode):
    assert PageController(ControllerConfig(mode=mode)).n_params() <= 20_000


def test_permutation_equivariant_and_masked():
    torch.manual_seed(0)
    model = PageController()
    cfg = model.config
    obs = Obs(torch.randn(3, 7, cfg.slot_dim), torch.randn(3, cfg.global_dim), torch.ones(3, 7, dtype=torch.bool))
    obs.mask[1, 4] = False
    logits, value = model(obs)
    perm = torch.randperm(7)
    plogits, pvalue = model(Obs(obs.slots[:, perm], obs.glob, obs.mask[:, perm]))
    assert torch.allclose(plogits, logits[:, perm], atol=1e-5)
    assert torch.allclose(pvalue, value, atol=1e-5)
    assert logits[1, 4] == float("-inf") and int(model.act(obs)[1]) != 4


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    model = PageController(ControllerConfig(mode="whitebox", hidden=16))
    path = tmp_path / "c.pt"
    save_controller(path, model, {"note": "x", "K": 8})
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == {"mode": "whitebox", "hidden": 16}
    loaded, meta = load_controller(path)
    assert meta == {"note": "x", "K": 8}
    for k, v in checkpoint_dict(model)["state_dict"].items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(OSError):
        load_controller(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        load_controller(bad)
    torch.save({"format": "other"}, bad)
    with pytest.raises(ValueError):
        load_controller(bad)


def test_bc_loss_prefers_mass_on_optimal_slots():
    label = torch.tensor([[True, False, True]])
    good = bc_loss(torch.tensor([[2.0, -2.0, 2.0]]), label)
    bad = bc_loss(torch.tensor([[-2.0, 2.0, -2.0]]), label)
    assert good < bad
    assert torch.isclose(bc_loss(torch.tensor([[0.0, float("-inf"), 0.0]]), label), torch.tensor(0.0))


def test_expert_rollout_is_belady_and_bc_loss_falls():
    from gpupage.core.simulate import simulate
    from gpupage.core.traces import zipf_traces

    zp = ZipfParams(M=24, W=8, shift=100, T=300)
    params = E.EnvParams(K=4, zipf=zp)
    data, dist = collect(params, [1, 2, 3])
    labels = belady_labels(dist)
    assert labels.any(1).all() and bool((dist[labels] > 0).all())
    # the expert's own rollout has Belady's fault count, so its decisions number F_opt - cold fills
    opt = simulate(zipf_traces(zp, seed=[1, 2, 3]), "belady", 4).faults
    assert labels.shape[0] == int(opt.sum()) - 3 * 4
    torch.manual_seed(0)
    model = PageController(ControllerConfig(hidden=16))
    losses = fit(model, data, dist, epochs=6, batch_size=128, lr=3e-3, weight_decay=0.0,
                 generator=torch.Generator().manual_seed(0))
    assert losses[-1] < losses[0]


def test_rank_loss_prefers_the_next_use_order():
    dist = torch.tensor([[5, 100, 20, -1]])
    ordered = rank_loss(torch.tensor([[0.0, 4.0, 2.0, float("-inf")]]), dist, 0.5)
    reversed_ = rank_loss(torch.tensor([[4.0, 0.0, 2.0, float("-inf")]]), dist, 0.5)
    assert ordered < reversed_ and torch.isfinite(ordered)


def test_dagger_runs_and_is_deterministic():
    cfg = BCConfig(K=4, Ks=(3, 4), lanes=4, dagger_rounds=1, epochs=1, hidden=16, rank_coef=0.5,
                   zipf=dict(M=24, W=8, shift=100, T=200))
    logs = []
    a = train_bc(cfg, log=lambda r, info: logs.append(info))
    b = train_bc(cfg)
    assert len(logs) == 2 and logs[1]["samples"] > logs[0]["samples"]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def _collect_stepwise(params, seeds, model, beta, generator):
    """collect() as a plain loop that checks for the end after every decision."""
    obs, st = E.reset(params, seeds)
    rows, labels = [], []
    while not bool(st.done.all()):
        live = ~st.done
        nu = E.slot_next_use(st)
        labels.append(torch.where(nu >= E.NEVER, 2 * st.T, nu - st.t[:, None]).masked_fill(nu < 0, -1)[live])
        rows.append(obs.slots[live])
        use_expert = torch.rand(st.batch, generator=generator) < beta
        E.step_inplace(st, torch.where(use_expert, expert_action(st), model.act(obs)))
        obs = observe(st, params.mode)
    return torch.cat(rows), torch.cat(labels)


def test_collect_checks_for_the_end_rarely_yet_draws_like_a_stepwise_loop():
    """collect() runs up to DONE_CHECK_EVERY - 1 steps past the last decision; it must drop their
    rows and rewind the generator, so DAgger's data and later shuffles match a stepwise loop."""
    torch.manual_seed(0)
    model = PageController(ControllerConfig(hidden=16))
    params = E.EnvParams(K=4, zipf=ZipfParams(M=24, W=8, shift=100, T=233))
    ga, gb = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    data, labels = collect(params, [1, 2, 3], model, 0.5, ga)
    rows, ref_labels = _collect_stepwise(params, [1, 2, 3], model, 0.5, gb)
    assert torch.equal(data.slots, rows) and torch.equal(labels, ref_labels)
    assert torch.equal(ga.get_state(), gb.get_state())


def test_expert_action_is_belady_optimal():
    params = E.EnvParams(K=3)
    _, st = E.reset_traces(params, torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]]))
    a = expert_action(st)
    assert bool(E.belady_mask(st)[0, a[0]])
