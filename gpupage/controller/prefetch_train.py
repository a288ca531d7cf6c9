"""PPO for the prefetch decision (issue 13, part 2): a small actor-critic over :mod:`.prefetch_env`.

The action is Bernoulli (prefetch the hinted block or not), so the loop is compact and separate from
:mod:`.ppo` (whose action is a victim slot); it shares its GAE.  Each lane runs episodes of training seeds
(>= 10000 by default) and starts the next seed as soon as one ends (no lane idles); each lane draws its hint noise eps from ``eps_choices``, so the controller must
read the hints' reliability from its observations.  The best model on a validation batch (seeds of their own,
at ``eps_eval``) is the one kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..core import limits
from ..core.prefetch import check_costs, check_hint_options, make_hints
from ..core.results import atomic_path
from ..core.traces import ZipfParams, zipf_traces
from .ppo import gae
from .prefetch_env import MODES, PrefetchEnv, n_features

FORMAT = "gpupage-prefetch-controller"


@dataclass
class PrefetchTrainConfig:
    """PPO hyper-parameters (CleanRL names) and the setting trained at."""

    K: int = 8
    """Cache size."""
    L: int = 4
    """Hint lookahead: h_t names r_{t+L}."""
    lam_fetch: float = 0.3
    """Cost of a prefetch (a fault costs 1)."""
    lam_evict: float = 0.0
    """Cost of an eviction."""
    mode: str = "blackbox"
    """Features: 'blackbox' or 'whitebox' (adds the generator's latent state)."""
    eps_choices: tuple = (0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
    """Hint noise of a training lane, drawn uniformly from these."""
    eps_eval: float = 0.1
    """The noise the checkpoint is evaluated at by default (and validated at)."""
    hidden: int = 64
    """MLP width."""
    lanes: int = 256
    """Parallel lanes."""
    T: int = 2000
    """Requests per training episode."""
    num_steps: int = 64
    """Decisions per lane per rollout."""
    iterations: int = 150
    """Rollout + update cycles."""
    lr: float = 1e-3
    """Adam learning rate, annealed linearly to 0."""
    gamma: float = 0.95
    """Discount per decision."""
    gae_lambda: float = 0.9
    """GAE lambda."""
    update_epochs: int = 4
    """Epochs over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    ent_coef: float = 0.01
    """Entropy bonus."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    seed_start: int = 10000
    """First training seed; lanes take the next seeds in turn."""
    val_seeds: tuple = (9000, 9032)
    """Validation seeds [a, b), disjoint from training and from the held-out 1000-1039."""
    val_every: int = 10
    """Iterations between validation checks."""
    torch_seed: int = 0
    """Seed of initialisation, sampling, lane noise and minibatches."""
    threads: int = 1
    """torch threads: a small MLP gains nothing from more, and the machine is shared."""

    def __post_init__(self):
        check_costs(self.lam_fetch, self.lam_evict, 1)
        for e in (*self.eps_choices, self.eps_eval):
            check_hint_options(self.L, e)
        n_features(self.mode)
        for name in ("K", "hidden", "lanes", "T", "num_steps", "iterations", "update_epochs", "num_minibatches",
                     "val_every", "threads"):
            limits.check_int(name, getattr(self, name), 1)
        if self.val_seeds[1] <= self.val_seeds[0]:
            raise ValueError(f"val_seeds must be a non-empty range [a, b), got {self.val_seeds}")


class PrefetchNet(nn.Module):
    """MLP actor-critic: features -> (prefetch logit, value)."""

    def __init__(self, n_in: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, 1)
        self.v = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.pi(h).squeeze(-1), self.v(h).squeeze(-1)


def lane_hints(traces, L: int, eps, n_ids: int, seeds) -> torch.Tensor:
    """Hints [B, T] with lane b's noise ``eps[b]`` (its own seed's draws)."""
    eps = np.asarray(eps, dtype=np.float64)
    out = torch.empty(traces.shape, dtype=torch.int32)
    seeds = np.asarray(seeds)
    for e in np.unique(eps):
        idx = np.flatnonzero(eps == e)
        out[idx] = make_hints(traces[idx], L, float(e), n_ids, seed=seeds[idx].tolist())
    return out


def run_controller(model: PrefetchNet, traces, hints, L: int, K: int, lam_fetch: float, lam_evict: float = 0.0,
                   mode: str = "blackbox", latent=None, greedy: bool = True) -> dict:
    """Serve the lanes with the controller deciding every prefetch: int64 [B] faults, prefetches, evictions."""
    env = PrefetchEnv(traces, hints, L, K, lam_fetch, lam_evict, mode, latent)
    obs = torch.from_numpy(env.obs.copy())
    with torch.no_grad():
        while not env.done.all():
            logit, _ = model(obs)
            act = (logit > 0) if greedy else torch.bernoulli(torch.sigmoid(logit)).bool()
            obs, _, _ = env.step(act.long())
    return env.counts()


def _lanes(cfg: PrefetchTrainConfig, seeds: list[int], gen: torch.Generator):
    """(traces, hints, latent) of training lanes, each with its own eps drawn from ``eps_choices``."""
    params = ZipfParams(T=cfg.T)
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    pick = torch.randint(len(cfg.eps_choices), (len(seeds),), generator=gen).numpy()
    return traces, lane_hints(traces, cfg.L, np.asarray(cfg.eps_choices)[pick], params.M, seeds), latent


def _validate(model: PrefetchNet, cfg: PrefetchTrainConfig) -> float:
    seeds = list(range(*cfg.val_seeds))
    params = ZipfParams()
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    hints = make_hints(traces, cfg.L, cfg.eps_eval, params.M, seed=seeds)
    c = run_controller(model, traces, hints, cfg.L, cfg.K, cfg.lam_fetch, cfg.lam_evict, cfg.mode, latent)
    return float((c["faults"] + cfg.lam_fetch * c["prefetches"] + cfg.lam_evict * c["evictions"]).double().mean())


def train_prefetch(cfg: PrefetchTrainConfig, out=None, command: str = "", log=print) -> tuple[PrefetchNet, dict]:
    """PPO over the prefetch env; returns (best model on validation, checkpoint dict), written to ``out``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.torch_seed)
    gen = torch.Generator().manual_seed(cfg.torch_seed)
    nf = n_features(cfg.mode)
    model = PrefetchNet(nf, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
    N, B = cfg.num_steps, cfg.lanes
    next_seed = cfg.seed_start + B
    traces, hints, latent = _lanes(cfg, list(range(cfg.seed_start, next_seed)), gen)
    env = PrefetchEnv(traces, hints, cfg.L, cfg.K, cfg.lam_fetch, cfg.lam_evict, cfg.mode, latent)
    obs = torch.from_numpy(env.obs.copy())
    best, best_state, history = math.inf, None, []
    start = time.time()
    for it in range(cfg.iterations):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (1 - it / cfg.iterations)
        O = torch.zeros(N, B, nf)
        A, LP, V, R, D, M = (torch.zeros(N, B) for _ in range(6))
        for n in range(N):
            done = env.done
            if done.any():  # each finished lane starts the next training seed's episode
                n_new = int(done.sum())
                env.replace(done, *_lanes(cfg, list(range(next_seed, next_seed + n_new)), gen))
                next_seed += n_new
                obs = torch.from_numpy(env.obs.copy())
            live = torch.from_numpy(env.pending)
            with torch.no_grad():
                logit, v = model(obs)
            dist = torch.distributions.Bernoulli(logits=logit)
            a = dist.sample()
            O[n], A[n], LP[n], V[n], M[n] = obs, a, dist.log_prob(a), v * live, live.float()
            obs, r, done = env.step(a.long() * live)
            R[n] = r.float() * live
            D[n] = cfg.gamma * (~done & live).float()
        with torch.no_grad():
            next_v = model(obs)[1] * torch.from_numpy(env.pending)
        adv, ret = gae(R, V, D, next_v, cfg.gae_lambda)
        keep = M.reshape(-1) > 0
        bo, ba, blp, badv, bret = (x.reshape(-1, *x.shape[2:])[keep] for x in (O, A, LP, adv, ret))
        badv = (badv - badv.mean()) / (badv.std() + 1e-8)
        size = bo.shape[0]
        mb = max(size // cfg.num_minibatches, 1)
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(size, generator=gen)
            for i in range(0, size - mb + 1, mb):
                j = perm[i:i + mb]
                logit, v = model(bo[j])
                dist = torch.distributions.Bernoulli(logits=logit)
                ratio = (dist.log_prob(ba[j]) - blp[j]).exp()
                pg = torch.max(-badv[j] * ratio, -badv[j] * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                loss = pg + cfg.vf_coef * 0.5 * ((v - bret[j]) ** 2).mean() - cfg.ent_coef * dist.entropy().mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
        row = {"iteration": it + 1, "decisions": int(size), "prefetch_rate": float(ba.mean()),
               "reward_per_decision": float(R.sum() / max(M.sum(), 1)), "seconds": round(time.time() - start, 1)}
        if (it + 1) % cfg.val_every == 0 or it + 1 == cfg.iterations:
            row["val_cost"] = _validate(model, cfg)
            if row["val_cost"] < best:
                best, best_state = row["val_cost"], {k: v.clone() for k, v in model.state_dict().items()}
        history.append(row)
        log(row)
    model.load_state_dict(best_state)
    ck = checkpoint_dict(model, cfg, command, history)
    if out is not None:
        with atomic_path(out) as tmp:
            torch.save(ck, tmp)
    return model, ck


def checkpoint_dict(model: PrefetchNet, cfg: PrefetchTrainConfig, command: str, history: list) -> dict:
    return {"format": FORMAT, "version": 1, "state_dict": model.state_dict(),
            "net": {"n_in": n_features(cfg.mode), "hidden": cfg.hidden, "mode": cfg.mode},
            "settings": {"K": cfg.K, "L": cfg.L, "eps": cfg.eps_eval, "lam_fetch": cfg.lam_fetch,
                         "lam_evict": cfg.lam_evict, "P": 1, "eviction": "adaptive"},
            "config": asdict(cfg), "command": command, "history": history}


def is_prefetch_checkpoint(ck) -> bool:
    return isinstance(ck, dict) and ck.get("format") == FORMAT


def load_prefetch_controller(path) -> tuple[PrefetchNet, dict]:
    """(model in eval mode, checkpoint dict); a one-line ValueError if ``path`` is not one."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)  # plain types: checkpoint_dict
    except OSError as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from None
    except Exception as e:  # unpickling errors come in many types, some with multi-line messages
        raise ValueError(f"{path} is not a prefetch controller checkpoint ({type(e).__name__})") from None
    if not is_prefetch_checkpoint(ck):
        raise ValueError(f"{path} is not a prefetch controller checkpoint")
    if ck["net"]["mode"] not in MODES:
        raise ValueError(f"{path}: unknown feature mode {ck['net']['mode']!r}")
    model = PrefetchNet(ck["net"]["n_in"], ck["net"]["hidden"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck
