"""PPO for the prefetch controller (issue 13): a small actor-critic over :mod:`.prefetch_env` (v2) that
decides every prefetch and picks every victim.

The action is factored: at a kind-0 decision a Bernoulli prefetch bit, plus a victim slot when it prefetches
into a full cache; at a kind-1 decision (a fault on a full cache) a victim slot.  The victim head scores each
slot from [its features, the global features] and takes a softmax over the filled slots, so the log-prob of
an action is the prefetch bit's (kind 0) plus the victim's where the env reads it.  The loop is compact and
separate from :mod:`.ppo` (whose action is a victim of demand paging); it shares its GAE.

The victim head imitates (``imitate``) ``adaptive``'s victim (an observed column) or Belady's (the env's
future, :meth:`.PrefetchEnv.next_use`): a cross-entropy term kept in PPO's loss (``imitate_coef``), and
optionally a warm start before PPO over decisions collected with ``adaptive`` evicting.  Each lane runs episodes of training seeds (>= 10000 by default) and
starts the next seed as soon as one ends; each lane draws its hint noise from ``eps_choices`` (``hints=False``:
no hints at all, so only victims are decided).  The model kept is the best greedy one on a validation batch
(seeds of their own, at ``eps_eval`` and at eps = 1).
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
from .prefetch_env import MODES, PrefetchEnv, n_features, prefetch_features

FORMAT = "gpupage-prefetch-controller"
VERSION = 2
IMITATE = ("none", "adaptive", "belady")
VICTIMS = ("controller", "adaptive")


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
    hints: bool = True
    """False: no hints at all (every hint -1), so the controller decides victims only."""
    victims: str = "controller"
    """Who evicts: 'controller' (the victim head) or 'adaptive' (the head is not used: the ablation)."""
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
    imitate: str = "adaptive"
    """Victim head warm start: 'none', 'adaptive' or 'belady' (cross-entropy on that victim)."""
    imitate_iterations: int = 0
    """Rollouts of imitation before PPO (each ``update_epochs`` passes of ``num_minibatches``).  Off by
    default: with a warm-started head (3 or 10 rollouts) PPO stopped prefetching within 12-25 iterations in
    each of six tries (prefetch rate 0.45 -> 0.02-0.13, validation cost = never-adaptive's), while without it
    the greedy victims reach adaptive's as fast; the cause is not known (README, "Prefetching")."""
    iterations: int = 150
    """Rollout + update cycles."""
    lr: float = 1e-3
    """Adam learning rate, annealed linearly to 0."""
    gamma: float = 0.95
    """Discount per decision.  (Per request, 0.99**dt, validation stayed at follow-the-hint's cost for 175
    iterations, probably as the larger value targets swamp the shared body.  Per decision, a hint-free
    lane's victim decisions all earn -1, so the victim head learns from its imitation loss only.)"""
    gae_lambda: float = 0.9
    """GAE lambda."""
    update_epochs: int = 4
    """Epochs over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    ent_coef: float = 0.01
    """Entropy bonus (of the prefetch bit)."""
    imitate_coef: float = 0.5
    """Weight of the imitation loss kept during PPO (cross-entropy on ``imitate``'s victim at decisions on a
    full cache), which keeps the victim head from drifting on PPO's noisy victim gradients."""
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
        if self.imitate not in IMITATE:
            raise ValueError(f"unknown imitation target {self.imitate!r}; choose from {', '.join(IMITATE)}")
        if self.victims not in VICTIMS:
            raise ValueError(f"unknown victim chooser {self.victims!r}; choose from {', '.join(VICTIMS)}")
        for name in ("K", "hidden", "lanes", "T", "num_steps", "iterations", "update_epochs", "num_minibatches",
                     "val_every", "threads"):
            limits.check_int(name, getattr(self, name), 1)
        limits.check_int("imitate_iterations", self.imitate_iterations, 0)
        if self.val_seeds[1] <= self.val_seeds[0]:
            raise ValueError(f"val_seeds must be a non-empty range [a, b), got {self.val_seeds}")


class PrefetchNet(nn.Module):
    """Actor-critic: global features -> (prefetch logit, value); per slot [slot features, global features] ->
    a victim score (invalid slots masked)."""

    def __init__(self, n_global: int, n_slot: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_global, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi = nn.Linear(hidden, 1)
        self.v = nn.Linear(hidden, 1)
        self.slot = nn.Sequential(nn.Linear(n_slot + n_global, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                  nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prefetch logit [B], victim scores [B, K], value [B]) from :func:`.prefetch_features`' (g, s)."""
        h = self.body(g)
        B, K, _ = s.shape
        scores = self.slot(torch.cat([s, g[:, None, :].expand(B, K, g.shape[1])], dim=-1)).squeeze(-1)
        scores = scores.masked_fill(s[..., -1] == 0, -1e9)  # the last slot feature: valid
        return self.pi(h).squeeze(-1), scores, self.v(h).squeeze(-1)


def _factored(logit, scores, g, pf, vic):
    """Log-probs [2, B] of actions (pf, vic) under the factored policy, the prefetch bit's (kind 0, else 0)
    and the victim's (where the env reads it: kind 1, or kind 0 prefetching into a full cache; else 0), and
    the entropy bonus [B] (the bit's only: rewarding the victim's entropy flattens the imitated head)."""
    kind0, full = g[:, 0] == 0, g[:, 1] == 1
    pd = torch.distributions.Bernoulli(logits=logit)
    vd = torch.distributions.Categorical(logits=scores)
    reads_v = ~kind0 | ((pf == 1) & full)
    zero = torch.zeros_like(logit)
    lp = torch.stack([torch.where(kind0, pd.log_prob(pf.to(logit.dtype)), zero),
                      torch.where(reads_v, vd.log_prob(vic), zero)])
    return lp, torch.where(kind0, pd.entropy(), zero)


def _clipped(adv, lp, old, clip):
    """PPO's clipped surrogate of one factor of the action."""
    ratio = (lp - old).exp()
    return torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)).mean()


def lane_hints(traces, L: int, eps, n_ids: int, seeds) -> torch.Tensor:
    """Hints [B, T] with lane b's noise ``eps[b]`` (its own seed's draws); eps = NaN: no hints (-1)."""
    eps = np.asarray(eps, dtype=np.float64)
    out = torch.full(traces.shape, -1, dtype=torch.int32)
    seeds = np.asarray(seeds)
    for e in np.unique(eps[~np.isnan(eps)]):
        idx = np.flatnonzero(eps == e)
        out[idx] = make_hints(traces[idx], L, float(e), n_ids, seed=seeds[idx].tolist())
    return out


def _features(env: PrefetchEnv):
    return prefetch_features(torch.from_numpy(env.obs_global), torch.from_numpy(env.obs_slots), env.lam_fetch,
                             env.K)


def run_controller(model: PrefetchNet, traces, hints, L: int, K: int, lam_fetch: float, lam_evict: float = 0.0,
                   mode: str = "blackbox", latent=None, greedy: bool = True, victims: str = "controller") -> dict:
    """Serve the lanes with the controller deciding every prefetch and (``victims='controller'``) every victim;
    int64 [B] faults, prefetches, evictions."""
    env = PrefetchEnv(traces, hints, L, K, lam_fetch, lam_evict, mode, latent)
    with torch.no_grad():
        while not env.done.all():
            g, s = _features(env)
            logit, scores, _ = model(g, s)
            if greedy:
                pf, vic = (logit > 0).long(), scores.argmax(-1)
            else:
                pf = torch.bernoulli(torch.sigmoid(logit)).long()
                vic = torch.distributions.Categorical(logits=scores).sample()
            env.step(pf, vic if victims == "controller" else torch.full_like(vic, -1))
    return env.counts()


def _lanes(cfg: PrefetchTrainConfig, seeds: list[int], gen: torch.Generator):
    """(traces, hints, latent) of training lanes, each with its own eps drawn from ``eps_choices``."""
    params = ZipfParams(T=cfg.T)
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    pick = torch.randint(len(cfg.eps_choices), (len(seeds),), generator=gen).numpy()
    eps = np.asarray(cfg.eps_choices)[pick] if cfg.hints else np.full(len(seeds), np.nan)
    return traces, lane_hints(traces, cfg.L, eps, params.M, seeds), latent


def _validate(model: PrefetchNet, cfg: PrefetchTrainConfig) -> dict:
    """Greedy mean cost on the validation seeds at ``eps_eval`` and at eps = 1 (or without hints); the model
    kept minimises their sum, so that it also learns to ignore useless hints."""
    seeds = list(range(*cfg.val_seeds))
    params = ZipfParams()
    traces, latent = zipf_traces(params, seeds, return_latent=True)
    out = {}
    for name, eps in (("val_cost", cfg.eps_eval), ("val_cost_eps1", 1.0)) if cfg.hints else (("val_cost", np.nan),):
        hints = lane_hints(traces, cfg.L, [eps] * len(seeds), params.M, seeds)
        c = run_controller(model, traces, hints, cfg.L, cfg.K, cfg.lam_fetch, cfg.lam_evict, cfg.mode, latent,
                           victims=cfg.victims)
        out[name] = float((c["faults"] + cfg.lam_fetch * c["prefetches"]
                           + cfg.lam_evict * c["evictions"]).double().mean())
    return out


class _Lanes:
    """The training lanes: an env whose finished lanes start the next training seed's episode."""

    def __init__(self, cfg: PrefetchTrainConfig, gen: torch.Generator):
        self.cfg, self.gen, self.next_seed = cfg, gen, cfg.seed_start + cfg.lanes
        traces, hints, latent = _lanes(cfg, list(range(cfg.seed_start, self.next_seed)), gen)
        self.env = PrefetchEnv(traces, hints, cfg.L, cfg.K, cfg.lam_fetch, cfg.lam_evict, cfg.mode, latent)

    def refill(self) -> None:
        done = self.env.done
        if done.any():
            n = int(done.sum())
            self.env.replace(done, *_lanes(self.cfg, list(range(self.next_seed, self.next_seed + n)), self.gen))
            self.next_seed += n


def _labels(env: PrefetchEnv, cfg: PrefetchTrainConfig) -> torch.Tensor:
    """int64 [B]: the imitated victim slot of each lane's pending decision (meaningful on a full cache)."""
    if cfg.imitate == "belady":
        return env.next_use().argmax(-1)
    return torch.from_numpy(env.obs_global[:, 10]).clamp(min=0)


def _imitate(model, opt, lanes: _Lanes, cfg: PrefetchTrainConfig, gen, log) -> None:
    """Cross-entropy of the victim head on adaptive's or Belady's victim at every decision on a full cache
    (the controller's sampled prefetch bits, adaptive evicting)."""
    env = lanes.env
    for it in range(cfg.imitate_iterations):
        G, S, Y = [], [], []
        for _ in range(cfg.num_steps):
            lanes.refill()
            g, s = _features(env)
            with torch.no_grad():
                logit = model(g, s)[0]
            full = torch.from_numpy(env.pending) & (g[:, 1] == 1)
            G.append(g[full]), S.append(s[full]), Y.append(_labels(env, cfg)[full])
            env.step(torch.bernoulli(torch.sigmoid(logit)).long(), np.full(cfg.lanes, -1))
        g, s, y = torch.cat(G), torch.cat(S), torch.cat(Y)
        mb = max(len(y) // cfg.num_minibatches, 1)
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y) - mb + 1, mb):
                j = perm[i:i + mb]
                loss = nn.functional.cross_entropy(model(g[j], s[j])[1], y[j])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            agree = float((model(g, s)[1].argmax(-1) == y).float().mean())
        log({"imitation": it + 1, "decisions": len(y), "loss": float(loss.detach()), "agreement": agree})


def train_prefetch(cfg: PrefetchTrainConfig, out=None, command: str = "", log=print) -> tuple[PrefetchNet, dict]:
    """(Optionally an imitation warm start of the victim head, then) PPO over the prefetch env; returns (best
    model on validation, checkpoint dict), written to ``out``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.torch_seed)
    gen = torch.Generator().manual_seed(cfg.torch_seed)
    model = PrefetchNet(*n_features(cfg.mode), cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
    lanes = _Lanes(cfg, gen)
    env = lanes.env
    start = time.time()
    if cfg.imitate != "none" and cfg.victims == "controller":
        _imitate(model, opt, lanes, cfg, gen, log)
    N, B = cfg.num_steps, cfg.lanes
    best, best_state, history = math.inf, None, []

    def save(ck):
        if out is not None:
            with atomic_path(out) as tmp:
                torch.save(ck, tmp)

    try:  # an interrupted run (Ctrl-C, SIGTERM, an error) still writes its best validated model
        for it in range(cfg.iterations):
            for grp in opt.param_groups:
                grp["lr"] = cfg.lr * (1 - it / cfg.iterations)
            rows = []
            V, R, D, M = (torch.zeros(N, B) for _ in range(4))
            for n in range(N):
                lanes.refill()
                live = torch.from_numpy(env.pending)
                g, s = _features(env)
                with torch.no_grad():
                    logit, scores, v = model(g, s)
                pf = torch.bernoulli(torch.sigmoid(logit), generator=gen).long()
                vic = torch.multinomial(torch.softmax(scores, -1), 1, generator=gen).squeeze(-1)
                if cfg.victims == "adaptive":
                    vic.fill_(-1)
                lp, _ = _factored(logit, scores, g, pf, vic.clamp(min=0))
                rows.append((g, s, pf, vic.clamp(min=0), lp.T, _labels(env, cfg)))
                V[n], M[n] = v * live, live.float()
                _, _, r, done = env.step(pf * live, vic)
                R[n] = r.float() * live
                D[n] = cfg.gamma * (~done & live).float()
            with torch.no_grad():
                next_v = model(*_features(env))[2] * torch.from_numpy(env.pending)
            adv, ret = gae(R, V, D, next_v, cfg.gae_lambda)
            keep = M.reshape(-1) > 0
            bg, bs, bpf, bvic, blp, by = (torch.cat([r[i] for r in rows])[keep] for i in range(6))
            badv, bret = adv.reshape(-1)[keep], ret.reshape(-1)[keep]
            badv = (badv - badv.mean()) / (badv.std() + 1e-8)
            size = bg.shape[0]
            mb = max(size // cfg.num_minibatches, 1)
            for _ in range(cfg.update_epochs):
                perm = torch.randperm(size, generator=gen)
                for i in range(0, size - mb + 1, mb):
                    j = perm[i:i + mb]
                    logit, scores, v = model(bg[j], bs[j])
                    lp, ent = _factored(logit, scores, bg[j], bpf[j], bvic[j])
                    # one clipped surrogate per factor: with a joint ratio, the victim term's drift (the imitation
                    # loss sharpens the head) clips prefetches' positive advantages away, and PPO stops prefetching
                    pg = sum(_clipped(badv[j], lp[f], blp[j][:, f], cfg.clip_coef) for f in range(2))
                    loss = pg + cfg.vf_coef * 0.5 * ((v - bret[j]) ** 2).mean() - cfg.ent_coef * ent.mean()
                    if cfg.imitate_coef > 0 and cfg.imitate != "none":
                        full = bg[j, 1] == 1
                        loss = loss + cfg.imitate_coef * nn.functional.cross_entropy(scores[full], by[j][full])
                    opt.zero_grad()
                    loss.backward()
                    for part in (model.slot, (model.body, model.pi, model.v)):  # the imitation loss must not shrink PPO's step
                        nn.utils.clip_grad_norm_(nn.ModuleList(part).parameters() if isinstance(part, tuple)
                                                 else part.parameters(), cfg.max_grad_norm)
                    opt.step()
            kind0 = bg[:, 0] == 0
            row = {"iteration": it + 1, "decisions": int(size), "victim_decisions": int((~kind0).sum()),
                   "prefetch_rate": float(bpf[kind0].float().mean()) if kind0.any() else 0.0,
                   "reward_per_decision": float(R.sum() / max(M.sum(), 1)), "seconds": round(time.time() - start, 1)}
            if (it + 1) % cfg.val_every == 0 or it + 1 == cfg.iterations:
                row.update(_validate(model, cfg))
                score = row["val_cost"] + row.get("val_cost_eps1", 0.0)
                if score < best:
                    best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
            history.append(row)
            log(row)
    except BaseException:
        if best_state is not None:
            model.load_state_dict(best_state)
            save(dict(checkpoint_dict(model, cfg, command, history), interrupted_after_iteration=len(history)))
        raise
    model.load_state_dict(best_state)
    ck = checkpoint_dict(model, cfg, command, history)
    save(ck)
    return model, ck


def checkpoint_dict(model: PrefetchNet, cfg: PrefetchTrainConfig, command: str, history: list) -> dict:
    n_global, n_slot = n_features(cfg.mode)
    return {"format": FORMAT, "version": VERSION, "state_dict": model.state_dict(),
            "net": {"n_global": n_global, "n_slot": n_slot, "hidden": cfg.hidden, "mode": cfg.mode},
            "settings": {"K": cfg.K, "L": cfg.L, "eps": cfg.eps_eval,
                         "lam_fetch": cfg.lam_fetch, "lam_evict": cfg.lam_evict, "P": 1, "eviction": cfg.victims},
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
    if ck.get("version") != VERSION:
        raise ValueError(f"{path} is a version {ck.get('version')} prefetch checkpoint; this gpupage reads version "
                         f"{VERSION} (retrain it: scripts/train_prefetch.sh)")
    if ck["net"]["mode"] not in MODES:
        raise ValueError(f"{path}: unknown feature mode {ck['net']['mode']!r}")
    model = PrefetchNet(ck["net"]["n_global"], ck["net"]["n_slot"], ck["net"]["hidden"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck
