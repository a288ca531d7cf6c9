"""The gymnasium adapter: gymnasium's checker, the vector API, and agreement with the batched env
and with a plain Python cache loop."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from gpupage.controller import env as E
from gpupage.controller.features import SLOT_DIM, observe
from gpupage.core.simulate import simulate
from gpupage.core.traces import ZipfParams, zipf_traces

SMALL = ZipfParams(M=30, W=10, shift=100, T=300)


@pytest.fixture(scope="module")
def G():
    pytest.importorskip("gymnasium")
    from gpupage.controller import gym

    return gym


def _python_faults(trace, K, evictions):
    """Faults of a plain loop (first empty slot on a cold fill, the given slots at evictions);
    returns (faults, cold fills, evictions used)."""
    slots, faults, cold, used = [-1] * K, 0, 0, 0
    for x in trace:
        if x < 0 or x in slots:
            continue
        faults += 1
        if -1 in slots:
            slots[slots.index(-1)], cold = x, cold + 1
        else:
            slots[evictions[used]], used = x, used + 1
    return faults, cold, used


def test_importing_gpupage_does_not_import_gymnasium_and_the_adapter_names_the_extra():
    code = ("import sys; import gpupage, gpupage.controller, gpupage.controller.env; "
            "assert 'gymnasium' not in sys.modules; sys.modules['gymnasium'] = None; "
            "from gpupage.controller.gym import PagingVectorEnv\n"
            "try:\n    PagingVectorEnv(2)\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "the gymnasium adapter needs gymnasium: pip install 'gpupage[gym]'"


@pytest.mark.parametrize("mode", ["blackbox", "whitebox"])
def test_gymnasium_check_env_passes(G, mode):
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(G.PagingEnv(K=4, mode=mode, zipf=SMALL), skip_render_check=True)
    assert [str(w.message) for w in caught] == []


def test_spaces_shapes_and_dtypes(G):
    env = G.PagingVectorEnv(3, K=4, zipf=SMALL)
    assert env.metadata["autoreset_mode"].value == "NextStep"
    assert env.single_observation_space.shape == (4 * SLOT_DIM["blackbox"] + 11,)
    assert env.observation_space.shape == (3,) + env.single_observation_space.shape
    assert env.single_action_space.n == 4 and env.action_space.shape == (3,)
    obs, info = env.reset(seed=7)
    assert obs in env.observation_space and obs.dtype == np.float32
    assert info["trace"].tolist() == [7, 8, 9] and info["_trace"].all()
    env.action_space.seed(0)
    for _ in range(300):  # through episode ends and autoresets
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert obs in env.observation_space
        assert r.shape == term.shape == trunc.shape == (3,)
        assert r.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_
        assert info["dt"].dtype == np.int64 and info["faults"].shape == (3,)


def test_rewards_terminations_and_observations_equal_the_batched_env(G):
    K, seeds = 4, [3, 4, 5]
    env = G.PagingVectorEnv(3, K=K, zipf=SMALL, autoreset_mode="Disabled")
    obs, _ = env.reset(seed=3)
    params = E.EnvParams(K=K, zipf=SMALL)
    ref_obs, st = E.reset(params, seeds)
    g = np.random.default_rng(0)
    assert np.array_equal(obs, torch.cat([ref_obs.slots.flatten(1), ref_obs.glob], 1).numpy())
    steps = 0
    while not bool(st.done.all()):
        a = g.integers(0, K, 3)
        obs, r, term, trunc, info = env.step(a)
        ref_obs, st, ref_r, ref_term, ref_trunc, ref_info = E.step(st, torch.from_numpy(a), params)
        assert np.array_equal(r, ref_r.numpy()) and np.array_equal(term, ref_term.numpy())
        assert np.array_equal(trunc, ref_trunc.numpy()) and np.array_equal(info["dt"], ref_info["dt"].numpy())
        assert np.array_equal(obs, torch.cat([ref_obs.slots.flatten(1), ref_obs.glob], 1).numpy())
        steps += 1
    assert steps > 100 and term.all()
    obs2, r, term, _, _ = env.step(np.zeros(3, dtype=np.int64))  # disabled: ended lanes stay put
    assert np.array_equal(obs2, obs) and not r.any() and term.all()


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
@pytest.mark.parametrize("fixed", [False, True])
def test_episode_returns_are_minus_the_faults_of_a_python_replay(G, mode, fixed):
    K, B = 3, 2
    rows = zipf_traces(SMALL, seed=[11, 12, 13])
    rows[1, ::7] = -1  # pads are skipped
    if fixed:  # sparse ids the env remaps per reset, so lanes differ in their block counts
        rows = torch.where(rows >= 0, rows * 70001 + 5, rows)
    env = G.PagingVectorEnv(B, K=K, zipf=None if fixed else SMALL, traces=rows if fixed else None,
                            autoreset_mode=mode)
    _, info = env.reset(seed=1)
    g = np.random.default_rng(1)
    acts, ret, trace, cold = [[] for _ in range(B)], np.zeros(B), info["trace"].copy(), info["faults"].copy()
    episodes, seen = 0, [[t] for t in trace.tolist()]
    for _ in range(1200):
        a = g.integers(0, K, B)
        _, r, term, trunc, info = env.step(a)
        assert not trunc.any()
        fresh = info["dt"] == 0  # NextStep: the reset step after an end
        for i in range(B):
            if mode == "NextStep" and fresh[i]:
                assert r[i] == 0 and not term[i] and info["trace"][i] != trace[i]
                acts[i], ret[i], trace[i], cold[i] = [], 0.0, info["trace"][i], info["faults"][i]
                seen[i].append(int(trace[i]))
                continue
            acts[i].append(int(a[i]))
            ret[i] += r[i]
            if term[i]:
                tr = rows[trace[i]] if fixed else zipf_traces(SMALL, seed=[int(trace[i])])[0]
                faults, n_cold, used = _python_faults(tr.tolist(), K, acts[i])
                final = info["final_info"] if mode == "SameStep" else info
                assert used == len(acts[i]) and cold[i] == n_cold
                assert ret[i] == -(faults - n_cold) and final["faults"][i] == faults
                episodes += 1
                if mode == "SameStep":
                    assert info["_final_obs"][i] and info["final_info"]["trace"][i] == trace[i]
                    acts[i], ret[i], trace[i], cold[i] = [], 0.0, info["trace"][i], info["faults"][i]
                    seen[i].append(int(trace[i]))
    assert episodes >= 4
    for i in range(B):  # lane i's episode k: row (1 + i + 2k) % 3, or seed 1 + i and then hashed seeds
        assert seen[i] == [(1 + i + 2 * k) % 3 for k in range(len(seen[i]))] if fixed else \
            seen[i][0] == 1 + i and min(seen[i][1:]) >= 2**62 and len(set(seen[i])) == len(seen[i])


def test_next_step_autoreset_semantics(G):
    K = 4
    env = G.PagingVectorEnv(2, K=K, zipf=SMALL)
    env.reset(seed=5)
    a = np.zeros(2, dtype=np.int64)
    while True:
        obs, r, term, trunc, info = env.step(a)
        if term.any():
            break
    i = int(np.flatnonzero(term)[0])
    ended_trace = info["trace"][i]
    obs, r, term, trunc, info = env.step(np.array([K - 1, K - 1]))  # the ended lane's action is ignored
    assert r[i] == 0 and not term[i] and not trunc[i] and info["dt"][i] == 0
    seed = int(info["trace"][i])
    assert seed != ended_trace and seed >= 2**62  # a later episode: a hashed seed, never a small one
    ref_obs, _ = E.reset(E.EnvParams(K=K, zipf=SMALL), [seed])
    assert np.array_equal(obs[i], _flat(ref_obs)[0])


def _flat(obs):
    return torch.cat([obs.slots.flatten(1), obs.glob], 1).numpy()


def _run(env, seed, steps, actions_seed=0):
    out = [env.reset(seed=seed)]
    g = np.random.default_rng(actions_seed)
    for _ in range(steps):
        out.append(env.step(g.integers(0, env.single_action_space.n, env.num_envs)))
    return out


def test_same_step_is_next_step_without_the_reset_step(G):
    """The same episodes either way: SameStep's final_obs is NextStep's last observation and its
    returned observation NextStep's next one (NextStep spends a step on the reset)."""
    nxt = G.PagingVectorEnv(1, K=3, zipf=SMALL, autoreset_mode="NextStep")
    same = G.PagingVectorEnv(1, K=3, zipf=SMALL, autoreset_mode="SameStep")
    nxt.reset(seed=9)
    same.reset(seed=9)
    ends = 0
    for _ in range(700):
        obs, r, term, trunc, info = nxt.step(np.zeros(1, dtype=np.int64))
        s_obs, s_r, s_term, s_trunc, s_info = same.step(np.zeros(1, dtype=np.int64))
        assert r[0] == s_r[0] and term[0] == s_term[0] and trunc[0] == s_trunc[0]
        if not term[0]:
            assert np.array_equal(obs, s_obs) and "final_obs" not in s_info
            continue
        ends += 1
        assert s_info["_final_obs"][0] and np.array_equal(s_info["final_obs"][0], obs[0])
        assert s_info["final_info"]["faults"][0] == info["faults"][0]
        obs, r, term, _, info = nxt.step(np.zeros(1, dtype=np.int64))  # NextStep's reset step
        assert r[0] == 0 and not term[0]
        assert np.array_equal(obs, s_obs) and info["trace"][0] == s_info["trace"][0]
    assert ends >= 2


def test_time_limit_truncates_and_autoresets(G):
    env = G.PagingVectorEnv(2, K=4, zipf=SMALL, max_decisions=5)
    env.reset(seed=2)
    a = np.ones(2, dtype=np.int64)
    for _ in range(4):
        _, r, term, trunc, _ = env.step(a)
        assert not trunc.any() and not term.any() and (r == -1).all()
    _, r, term, trunc, info = env.step(a)
    assert trunc.all() and not term.any() and (r == -1).all()
    _, r, term, trunc, info = env.step(a)  # NextStep: the reset step
    assert not trunc.any() and not r.any() and (info["trace"] >= 2**62).all()


def test_a_fixed_seed_is_deterministic_and_reset_without_one_continues(G):
    mk = lambda: G.PagingVectorEnv(3, K=4, zipf=SMALL)  # noqa: E731
    a, b = _run(mk(), 4, 400), _run(mk(), 4, 400)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, dict):
                assert u.keys() == v.keys() and all(np.array_equal(u[k], v[k]) for k in u)
            else:
                assert np.array_equal(u, v)
    other = _run(mk(), 5, 0)[0]
    assert not np.array_equal(other[0], a[0][0])
    assert np.array_equal(other[0][0], a[0][0][1])  # seed 5's lane 0 is seed 4's lane 1
    env = mk()
    env.reset(seed=4)
    obs1, info1 = env.reset()
    env.reset(seed=4)
    obs2, info2 = env.reset()
    assert np.array_equal(obs1, obs2) and np.array_equal(info1["trace"], info2["trace"])
    assert (info1["trace"] >= 2**62).all()


def test_disabled_mode_and_a_partial_reset(G):
    env = G.PagingVectorEnv(3, K=4, zipf=SMALL, autoreset_mode="Disabled")
    obs0, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(np.zeros(3, dtype=np.int64))
    obs_r, info = env.reset(seed=1, options={"reset_mask": np.array([False, True, False])})
    assert np.array_equal(obs_r[1], obs0[1]) and np.array_equal(obs_r[[0, 2]], obs[[0, 2]])
    assert info["trace"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.zeros(3, dtype=bool)})


def test_observation_slot_features_drive_lru(G):
    """Slot k's first feature is its recency: evicting the largest replays LRU's faults."""
    K, D = 4, SLOT_DIM["blackbox"]
    env = G.PagingVectorEnv(2, K=K, zipf=SMALL, autoreset_mode="Disabled")
    obs, info = env.reset(seed=21)
    ret = np.zeros(2)
    term = np.zeros(2, dtype=bool)
    while not term.all():
        obs, r, term, _, info = env.step(obs[:, :K * D].reshape(2, K, D)[:, :, 0].argmax(1))
        ret += r
    lru = simulate(zipf_traces(SMALL, seed=[21, 22]), "lru", K).faults.numpy()
    assert info["faults"].tolist() == lru.tolist() and (ret == -(lru - K)).all()


@pytest.mark.parametrize("kwargs, words", [
    (dict(num_envs=0), "num_envs"), (dict(K=0), "K must be"), (dict(K=4.0), "K must be an int"), (dict(K=400), "K must be"),
    (dict(mode="grey"), "mode"), (dict(autoreset_mode="later"), "autoreset_mode"),
    (dict(max_decisions=0), "max_decisions"), (dict(traces=torch.zeros(2, 9)), "integer tensor"),
    (dict(traces=torch.zeros(2, 9, dtype=torch.int64), mode="whitebox"), "white-box"),
    (dict(traces=torch.zeros(2, 9, dtype=torch.int64), zipf=SMALL), "not both"),
])
def test_bad_construction_is_a_one_line_error(G, kwargs, words):
    kwargs = {"zipf": SMALL, **kwargs} if "traces" not in kwargs else kwargs
    with pytest.raises(ValueError, match=words) as err:
        G.PagingVectorEnv(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_steps_and_seeds_are_one_line_errors(G):
    import gymnasium

    env = G.PagingVectorEnv(2, K=4, zipf=SMALL)
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(np.zeros(2, dtype=np.int64))
    for seed, words in ((-1, "seeds must be"), ([1], "list of 2"), (1.5, "int"), (True, "int"), (2**62, "seeds must be")):
        with pytest.raises(ValueError, match=words):
            env.reset(seed=seed)
    env.reset(seed=0)
    for a, words in ((np.array([0, 4]), r"\[0, 4\)"), (np.array([-1, 0]), r"\[0, 4\)"),
                     (np.zeros(3, dtype=np.int64), "2 integers"), (np.zeros(2), "2 integers")):
        with pytest.raises(ValueError, match=words) as err:
            env.step(a)
        assert "\n" not in str(err.value)


def test_a_generic_gymnasium_ppo_loop_runs(G):
    """Two iterations of a minimal PPO written against the gymnasium vector API only (shapes, not quality)."""
    envs = G.PagingVectorEnv(4, K=4, zipf=SMALL)
    n_obs, n_act, steps = envs.single_observation_space.shape[0], envs.single_action_space.n, 96
    torch.manual_seed(0)
    actor = torch.nn.Sequential(torch.nn.Linear(n_obs, 32), torch.nn.Tanh(), torch.nn.Linear(32, n_act))
    critic = torch.nn.Sequential(torch.nn.Linear(n_obs, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=1e-3)
    obs, _ = envs.reset(seed=0)
    obs, ended = torch.from_numpy(obs), torch.zeros(4, dtype=torch.bool)
    losses, ends = [], 0
    for _ in range(2):
        buf = {k: [] for k in ("obs", "act", "logp", "rew", "val", "valid", "done")}
        for _ in range(steps):
            with torch.no_grad():
                dist = torch.distributions.Categorical(logits=actor(obs))
                act = dist.sample()
                val = critic(obs).squeeze(1)
            nobs, rew, term, trunc, _ = envs.step(act.numpy())
            assert nobs.shape == (4, n_obs) and rew.shape == term.shape == trunc.shape == (4,)
            for k, v in zip(buf, (obs, act, dist.log_prob(act), torch.from_numpy(rew).float(), val, ~ended,
                                  torch.from_numpy(term | trunc))):
                buf[k].append(v)
            obs, ended = torch.from_numpy(nobs), torch.from_numpy(term | trunc)
            ends += int(ended.sum())
        b = {k: torch.stack(v) for k, v in buf.items()}  # [steps, 4]
        with torch.no_grad():  # NextStep: a step after an end is the reset step, masked out (valid)
            nxt_val, adv, gae = critic(obs).squeeze(1), torch.zeros_like(b["rew"]), torch.zeros(4)
            for t in reversed(range(steps)):
                v_next = nxt_val if t == steps - 1 else b["val"][t + 1]
                nonterm = (~b["done"][t]).float()
                delta = b["rew"][t] + 0.99 * v_next * nonterm - b["val"][t]
                gae = delta + 0.99 * 0.95 * nonterm * gae
                adv[t] = gae
            ret = adv + b["val"]
        valid = b["valid"].flatten()
        logits = actor(b["obs"].flatten(0, 1)[valid])
        ratio = (torch.distributions.Categorical(logits=logits).log_prob(b["act"].flatten()[valid])
                 - b["logp"].flatten()[valid]).exp()
        a = adv.flatten()[valid]
        pg = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
        vf = (critic(b["obs"].flatten(0, 1)[valid]).squeeze(1) - ret.flatten()[valid]).pow(2).mean()
        opt.zero_grad()
        (pg + 0.5 * vf).backward()
        opt.step()
        assert logits.shape == (int(valid.sum()), n_act) and torch.isfinite(pg + vf)
        losses.append(float((pg + vf).detach()))
    assert len(losses) == 2 and ends >= 1


def test_gymnasiums_episode_statistics_wrapper_counts_our_episodes(G):
    """gymnasium's RecordEpisodeStatistics (which assumes NextStep: in gymnasium 1.3 it drops the first
    step of SameStep episodes after the first, on its own SyncVectorEnv too) sums rewards and steps."""
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    K = 4
    envs = RecordEpisodeStatistics(G.PagingVectorEnv(3, K=K, zipf=SMALL))
    envs.reset(seed=30)
    g, ends = np.random.default_rng(3), 0
    for _ in range(500):
        _, _, term, _, info = envs.step(g.integers(0, K, 3))
        for i in np.flatnonzero(term):
            faults = info["faults"][i]
            assert info["_episode"][i] and info["episode"]["r"][i] == -(faults - K)
            assert info["episode"]["l"][i] == faults - K  # one decision a step
            ends += 1
    assert ends >= 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_lanes_equal_cpu(G):
    """On CUDA (the Triton env_step, lanes spliced on the device) the integers agree exactly."""
    out = [_run(G.PagingVectorEnv(4, K=4, zipf=SMALL, device=d, autoreset_mode="SameStep"), 8, 600)
           for d in ("cpu", "cuda")]
    for (*a, ia), (*b, ib) in zip(*out):
        assert all(k in ib and np.array_equal(ia[k], ib[k]) for k in ("dt", "faults", "trace"))
        assert np.allclose(a[0], b[0], atol=1e-5)
        assert all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))


def _same_info(ours, ref):
    """Every entry gymnasium's SyncVectorEnv sets (its `_key` masks) is ours too."""
    for k, v in ref.items():
        if isinstance(v, dict):
            _same_info(ours[k], v)
        elif not k.startswith("_"):
            m = ref[f"_{k}"]
            assert np.array_equal(ours[f"_{k}"], m), k
            assert all(np.array_equal(a, b) for a, b in zip(ours[k][m], v[m])), k


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_equals_gymnasiums_sync_vector_env_over_single_lanes(G, mode):
    """gymnasium's own SyncVectorEnv over PagingEnv lanes is the reference for each autoreset mode:
    the same observations, rewards, flags and infos, step by step, through ends and truncations."""
    from gymnasium.vector import SyncVectorEnv

    K, B, kw = 3, 3, dict(zipf=SMALL, max_decisions=150)  # about half the episodes are longer
    ours = G.PagingVectorEnv(B, K=K, autoreset_mode=mode, **kw)
    ref = SyncVectorEnv([lambda: G.PagingEnv(K=K, **kw) for _ in range(B)], autoreset_mode=mode)
    for a, b in zip(ours.reset(seed=17), ref.reset(seed=17)):
        assert np.array_equal(a, b) if isinstance(b, np.ndarray) else _same_info(a, b) is None
    g, ends = np.random.default_rng(4), np.zeros(2, dtype=int)
    for _ in range(700):
        act = g.integers(0, K, B)
        (o, r, te, tr, i), (o2, r2, te2, tr2, i2) = ours.step(act), ref.step(act)
        assert np.array_equal(o, o2) and np.array_equal(r, r2) and r.dtype == r2.dtype
        assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
        _same_info(i, i2)
        ends += te.sum(), tr.sum()
        if mode == "Disabled" and (te | tr).any():
            mask = te | tr
            for a, b in zip(ours.reset(options={"reset_mask": mask}), ref.reset(options={"reset_mask": mask})):
                assert np.array_equal(a, b) if isinstance(b, np.ndarray) else _same_info(a, b) is None
    assert (ends >= 2).all()  # both kinds of end happened
