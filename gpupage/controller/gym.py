"""gymnasium adapters over the batched paging env, so any gymnasium agent can train on it.

An optional extra (``pip install 'gpupage[gym]'``): importing this module works without
gymnasium, constructing an adapter then says what to install.

:class:`PagingVectorEnv` (``gymnasium.vector.VectorEnv``) runs ``num_envs`` lanes of
:mod:`gpupage.controller.env` in one batched state; :class:`PagingEnv` is one lane as a
``gymnasium.Env`` (what ``gymnasium.utils.env_checker.check_env`` checks).

* A step is a decision: a fault on a full cache.  The action (``Discrete(K)``) is the
  slot to evict; the env then serves hits and cold fills up to the next decision.  Every
  slot holds a block at a decision, so every action is valid (no mask needed); a value
  outside [0, K) is an error.
* Observation: ``Box(0, high, (K * SLOT_DIM + GLOBAL_DIM,), float32)``, the per-slot
  features of :func:`~gpupage.controller.features.observe` flattened slot-major (slot k's
  features at ``[k * SLOT_DIM, (k + 1) * SLOT_DIM)``), then the global features: flat, so
  a plain MLP can read it.
* Reward: -1 per fault the step resolves (cold fills before the first decision are not
  rewarded, so an episode's return is -(faults - cold fills); ``info["faults"]`` counts
  them all).
* ``terminated`` once the trace has ended (the MDP's end); ``truncated`` only when
  ``max_decisions`` (default: none) decisions were made first.  A trace with no decision
  at all (at most K distinct blocks) is an episode whose one step ends it with reward 0.
* Seeds: ``reset(seed=s)`` gives lane i the seed ``s + i`` (a list gives one a lane, as
  gymnasium's ``SyncVectorEnv`` does).  A lane's first episode is the Zipf trace of its
  seed (so seed 42 plays ``zipf_traces(params, seed=[42])``), episode k >= 1 the trace of
  a seed hashed from (seed, k) (stream ``STREAM_GYM_EPISODE``, at or above 2**62, so never
  a small evaluation seed); ``reset()`` without a seed starts each lane's next episode.
  With fixed ``traces`` [N, T], lane i's episode k plays row ``(s_i + k * num_envs) % N``.
  ``info["trace"]`` names each lane's trace (its Zipf seed, or its row).
* Autoreset: ``metadata["autoreset_mode"]``, gymnasium's ``NEXT_STEP`` by default (the step
  after an episode's end resets that lane, ignores its action and returns its first
  observation with reward 0 and both flags False); ``SAME_STEP`` (the ending step returns
  the next episode's first observation, the last one in ``info["final_obs"]`` and its info
  in ``info["final_info"]``) and ``DISABLED`` (an ended lane stays put, reward 0 and the
  same flags, until ``reset(options={"reset_mask": mask})``) on request.

Observations cross to numpy every step (gymnasium's API), so on CUDA each step syncs with
the host; the env's own rollouts (PPO, evaluate) do not.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import torch

from ..core import rng
from ..core.traces import ZipfParams, zipf_traces
from . import env as E
from .features import GLOBAL_DIM, SLOT_DIM, observe
from .state import EnvState

try:
    import gymnasium
    from gymnasium.vector import AutoresetMode
except ImportError:  # the optional extra: the constructors below say how to install it
    gymnasium = AutoresetMode = None

INSTALL = "the gymnasium adapter needs gymnasium: pip install 'gpupage[gym]'"

_BLOCK_FIELDS = {"slot_of": (1, -1), "count": (1, 0), "last_use": (1, -1), "gap": (1, -1), "dc": (1, 0),
                 "streak": (1, 0), "since": (1, 0), "pcount": (1, 0), "pstamp": (1, -1), "ws_rank": (2, -1)}
"""Per-block fields of EnvState: (block dim, the value of a block never requested).  Lanes made
apart may see different block counts; padding the smaller with never-requested blocks changes nothing."""


def _widen(state: EnvState, n: int) -> EnvState:
    grow = {}
    for name, (dim, fill) in _BLOCK_FIELDS.items():
        v = getattr(state, name)
        if v is not None and v.shape[dim] < n:
            w = torch.full(v.shape[:dim] + (n,) + v.shape[dim + 1:], fill, dtype=v.dtype, device=v.device)
            w.narrow(dim, 0, v.shape[dim]).copy_(v)
            grow[name] = w
    return replace(state, **grow) if grow else state


def _splice(state: EnvState, lanes: torch.Tensor, sub: EnvState) -> EnvState:
    """``state`` with rows ``lanes`` replaced by the fresh lanes ``sub`` (in place unless it had to grow)."""
    n = max(state.slot_of.shape[1], sub.slot_of.shape[1])
    state, sub = _widen(state, n), _widen(sub, n)
    for f in fields(state):
        v = getattr(state, f.name)
        if isinstance(v, torch.Tensor):
            v[lanes] = getattr(sub, f.name)
    return state


def _np(x: torch.Tensor) -> np.ndarray:
    """A numpy copy (``.numpy()`` of a CPU tensor would share the env's memory)."""
    return x.cpu().numpy().copy()


def _flat(obs) -> torch.Tensor:
    return torch.cat([obs.slots.flatten(1), obs.glob], dim=1)


def _episode_seed(seed: int, episode: int) -> int:
    """The Zipf seed of a lane's episode: its own seed first, then hashes at or above 2**62."""
    if episode == 0:
        return seed
    skey = rng.stream_key(rng.lane_key(seed, episode), rng.STREAM_GYM_EPISODE)
    return (1 << 62) | (int(rng.draw(skey, 0)) << 30) | (int(rng.draw(skey, 1)) >> 2)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _seed_list(seed, n: int) -> list[int]:
    seeds = ([seed + i for i in range(n)] if _is_int(seed) else [seed]) if np.ndim(seed) == 0 else list(seed)
    if len(seeds) != n or not all(_is_int(s) for s in seeds):
        raise ValueError(f"seed must be an int or a list of {n} ints, got {seed!r}")
    if not all(0 <= int(s) < 2**62 for s in seeds):
        raise ValueError(f"seeds must be in [0, 2**62), got {seed!r}")
    return [int(s) for s in seeds]


class PagingVectorEnv(gymnasium.vector.VectorEnv if gymnasium else object):
    """``num_envs`` lanes of the paging env as a gymnasium vector env (see the module doc).

    Args:
        K: cache size (slots); ``mode``: 'blackbox' or 'whitebox' features.
        zipf: the App. B trace family episodes draw from (default ``ZipfParams()``), or
        traces: a fixed integer tensor [N, T] of traces episodes cycle through (black-box only).
        max_decisions: truncate an episode after this many decisions (None: never).
        autoreset_mode: a ``gymnasium.vector.AutoresetMode`` or its value ('NextStep', ...).
    """

    def __init__(self, num_envs: int = 8, K: int = 8, mode: str = "blackbox", zipf: ZipfParams | None = None,
                 traces=None, device: str = "cpu", max_decisions: int | None = None, autoreset_mode="NextStep"):
        if gymnasium is None:
            raise ImportError(INSTALL)
        if not _is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if not _is_int(K):
            raise ValueError(f"K must be an int, got {K!r}")
        if max_decisions is not None and (not _is_int(max_decisions) or max_decisions < 1):
            raise ValueError(f"max_decisions must be None or an int >= 1, got {max_decisions!r}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"autoreset_mode must be one of {', '.join(m.value for m in AutoresetMode)}, "
                             f"got {autoreset_mode!r}") from None
        self.params = E.EnvParams(K=K, zipf=zipf or ZipfParams(), mode=mode, device=device)
        if traces is not None:
            if zipf is not None:
                raise ValueError("give either zipf (a trace family) or traces (fixed traces), not both")
            if mode == "whitebox":
                raise ValueError("white-box features need the Zipf family's latent state: use zipf, not traces")
            traces = torch.as_tensor(traces)
            if traces.dim() != 2 or traces.shape[0] < 1 or traces.dtype.is_floating_point or traces.dtype == torch.bool:
                raise ValueError(f"traces must be an integer tensor [N, T], got {traces.dtype} {tuple(traces.shape)}")
        T = traces.shape[1] if traces is not None else self.params.zipf.T
        if K > T:
            raise ValueError(f"K must be in [1, T={T}], got {K}")
        self.num_envs, self.max_decisions, self._traces = int(num_envs), max_decisions, traces
        dim = K * SLOT_DIM[mode] + GLOBAL_DIM[mode]
        # features are log1p(x)/log1p(T), ranks, ratios and rates in [0, 1], white-box ranks up to 2, log2(K)/8
        high = max(2.0, math.log2(K) / 8)
        self.single_observation_space = gymnasium.spaces.Box(0.0, high, (dim,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(K)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.metadata = {"autoreset_mode": self.autoreset_mode, "render_modes": []}
        self._state: EnvState | None = None
        self._seeds = np.zeros(self.num_envs, dtype=np.int64)
        self._episode = np.full(self.num_envs, -1, dtype=np.int64)
        self._trace = np.zeros(self.num_envs, dtype=np.int64)
        self._ended = np.zeros(self.num_envs, dtype=bool)

    # ----------------------------------------------------------------- lanes

    def _fresh(self, lanes: np.ndarray):
        """Start the current episode of ``lanes``: returns (their state, their flat observation)."""
        if self._traces is not None:
            self._trace[lanes] = (self._seeds[lanes] + self._episode[lanes] * self.num_envs) % self._traces.shape[0]
            sub = E.init_state(self._traces[torch.from_numpy(self._trace[lanes])], self.params.K,
                               device=self.params.device)
        else:
            self._trace[lanes] = [_episode_seed(int(self._seeds[i]), int(self._episode[i])) for i in lanes]
            tr, latent = zipf_traces(self.params.zipf, seed=self._trace[lanes].tolist(), return_latent=True)
            sub = E.init_state(tr, self.params.K, latent if self.params.mode == "whitebox" else None,
                               self.params.device)
        return sub, _flat(observe(sub, self.params.mode))

    def _restart(self, lanes: np.ndarray, obs: torch.Tensor) -> None:
        """Start ``lanes``' current episodes in the batch, writing their first observations into ``obs``."""
        sub, first = self._fresh(lanes)
        idx = torch.from_numpy(lanes).to(obs.device)
        self._state = _splice(self._state, idx, sub)
        obs[idx] = first
        self._ended[lanes] = False

    def _info(self, dt: np.ndarray, lanes: np.ndarray | None = None) -> dict:
        """Every lane's info, marked (gymnasium's `_key` masks) as set for ``lanes`` (all if None)."""
        info = {"dt": dt, "faults": _np(self._state.faults), "trace": self._trace.copy()}
        mask = np.ones(self.num_envs, dtype=bool) if lanes is None else lanes.copy()
        return {**info, **{f"_{k}": mask.copy() for k in info}}

    # ----------------------------------------------------------------- gymnasium API

    def reset(self, *, seed=None, options=None):
        """Start a new episode on every lane (or on ``options["reset_mask"]``'s lanes)."""
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                                 "with a lane set")
            if self._state is None and not mask.all():
                raise ValueError("the first reset must reset every lane")
        lanes = np.flatnonzero(mask)
        if seed is not None:
            seeds = _seed_list(seed, self.num_envs)
            super().reset(seed=seeds[0])
            self._seeds[lanes] = np.asarray(seeds)[lanes]
            self._episode[lanes] = 0
        else:
            unseeded = lanes[self._episode[lanes] < 0]
            if len(unseeded):  # never seeded: a random base seed, as gymnasium envs do
                self._seeds[unseeded] = int(self.np_random.integers(2**61)) + unseeded
            self._episode[lanes] += 1
        if self._state is None:
            self._state, obs = self._fresh(lanes)
            self._ended[:] = False
        else:
            obs = _flat(observe(self._state, self.params.mode))
            self._restart(lanes, obs)
        return obs.cpu().numpy(), self._info(np.zeros(self.num_envs, dtype=np.int64), mask)

    def step(self, actions):
        """Evict slot ``actions[i]`` on each lane; returns (obs, rewards, terminations, truncations, infos)."""
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers (slots), got {a.dtype} {a.shape}")
        ended = self._ended.copy()
        if ((a < 0) | (a >= self.params.K))[~ended].any():
            raise ValueError(f"actions must be slots in [0, {self.params.K})")
        st = self._state
        faults, t = st.faults.clone(), st.t.clone()
        # lanes that ended last step do not move: -1 evicts nothing, and at a decision serves nothing
        E.step_inplace(st, torch.from_numpy(np.where(ended, -1, a).astype(np.int64)).to(st.t.device))
        rewards = _np((faults - st.faults).double())
        dt = _np(st.t - t)
        terminated = _np(st.done)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_decisions is not None:
            truncated = ~terminated & _np(st.decisions >= self.max_decisions)
        obs = _flat(observe(st, self.params.mode))
        over = terminated | truncated
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            lanes = np.flatnonzero(ended)
            if len(lanes):
                self._episode[lanes] += 1
                self._restart(lanes, obs)
                rewards[lanes], dt[lanes], terminated[lanes], truncated[lanes] = 0.0, 0, False, False
            self._ended = over & ~ended
            return obs.cpu().numpy(), rewards, terminated, truncated, self._info(dt)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and over.any():
            lanes = np.flatnonzero(over)
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_obs[lanes] = list(obs[torch.from_numpy(lanes).to(obs.device)].cpu().numpy())
            final_info = self._info(dt.copy(), over)
            self._episode[lanes] += 1
            self._restart(lanes, obs)
            dt[lanes] = 0
            info = {**self._info(dt), "final_obs": final_obs, "_final_obs": over.copy(),
                    "final_info": final_info, "_final_info": over.copy()}
            return obs.cpu().numpy(), rewards, terminated, truncated, info
        if self.autoreset_mode == AutoresetMode.DISABLED:
            self._ended = over
        return obs.cpu().numpy(), rewards, terminated, truncated, self._info(dt)


class PagingEnv(gymnasium.Env if gymnasium else object):
    """One lane of :class:`PagingVectorEnv` as a ``gymnasium.Env`` (no autoreset: after the end a
    step changes nothing, reward 0).  ``reset(seed=s)`` plays lane 0 of the vector env's seed s."""

    metadata = {"render_modes": []}

    def __init__(self, K: int = 8, mode: str = "blackbox", zipf: ZipfParams | None = None, traces=None,
                 device: str = "cpu", max_decisions: int | None = None):
        self._vec = PagingVectorEnv(1, K, mode, zipf, traces, device, max_decisions, autoreset_mode="Disabled")
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        return obs[0], self._row(info)

    def step(self, action):
        obs, r, term, trunc, info = self._vec.step(np.asarray([action]))
        return obs[0], float(r[0]), bool(term[0]), bool(trunc[0]), self._row(info)

    @staticmethod
    def _row(info: dict) -> dict:
        return {k: v[0] for k, v in info.items() if not k.startswith("_")}
