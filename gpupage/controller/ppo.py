"""PPO for the Page Controller (Alg. 1), in one file in the manner of CleanRL's ppo.py.

An iteration is one batch of whole episodes: every lane starts a fresh trace (its own training
seed) and plays it to the end, finished lanes idling (masked out of the loss) until the last
one ends.  So every update sees every decision of ``lanes`` complete traces (no tail iterations
with a handful of samples, no truncated returns), and every iteration ends at an episode
boundary, where checkpoints are written: a resumed run equals an uninterrupted one.

Reward is -1 per fault (Eq. 7), plus, with ``reward_baseline``, the faults a baseline policy
makes on the same trace over the same requests: the baseline's faults depend on the trace
alone, not on the actions, so the policy gradient keeps its expectation while the trace's
own difficulty (a phase with many new blocks costs every policy) drops out of the returns.
With ``time_discount`` the discount between two decisions is ``gamma ** requests_between``
(a semi-MDP): a fault pushed further into the future is worth more, which is the signal that
matters when every decision costs exactly one fault.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch

from . import env as E
from ..core.results import atomic_path
from .network import ControllerConfig, PageController
from .features import GLOBAL_DIM, SLOT_DIM, Obs, observe
from .ranks import OneProcess
from ..core import limits


@dataclass
class PPOConfig:
    """PPO hyper-parameters (CleanRL names)."""

    K: int = 8
    """Cache size the controller is trained at."""
    mode: str = "blackbox"
    """Feature mode: 'blackbox' or 'whitebox'."""
    hidden: int = 48
    """Controller width (ignored when starting from a model)."""
    lanes: int = 128
    """Parallel environments (thousands on CUDA, hundreds on CPU); under torchrun, of all ranks together."""
    iterations: int = 100
    """Rollout + update cycles, each over one whole episode of every lane."""
    lr: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = True
    """Linearly anneal the learning rate to 0 over the iterations."""
    gamma: float = 0.995
    """Discount per request (``time_discount``) or per decision."""
    time_discount: bool = True
    """Discount by the requests elapsed between decisions rather than per decision."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
    """Epochs over each rollout."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon."""
    clip_vloss: bool = True
    """Clip the value loss as in PPO2."""
    ent_coef: float = 0.003
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    reward_scale: float = 0.05
    """Rewards are multiplied by this (returns of order the fault rate keep the value loss tame)."""
    reward_baseline: str | None = None
    """A registry policy (e.g. 'lru') whose faults on the same trace, over the requests a decision
    covers, are added to its reward: the return is then faults saved against that policy."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = 0.03
    """Stop an update's epochs early once the approximate KL exceeds this (None: never)."""
    critic_warmup: int = 0
    """First iterations that train only the value head (useful after a behaviour-cloning start)."""
    seed_start: int = 100000
    """First training seed; each episode batch takes the next ``lanes`` seeds."""
    torch_seed: int = 0
    """Seed of initialisation, action sampling and minibatch shuffling."""
    zipf: dict = field(default_factory=dict)
    """ZipfParams overrides (App. B defaults)."""
    device: str = "cpu"
    """Where the env lanes, model, rollout buffers and updates live ('cpu', 'cuda', 'cuda:1', ...).
    The model is initialised on the CPU and moved, so initial weights never depend on it; sampling
    and shuffling draw from a generator on this device, so runs agree per device type, not across."""

    def __post_init__(self):
        from ..core.traces import ZipfParams

        zipf = ZipfParams.from_dict(self.zipf)
        if self.mode not in E.MODES:
            raise ValueError(f"mode must be one of {', '.join(E.MODES)}, got {self.mode!r}")
        limits.check_int("K", self.K, 1, zipf.T)  # the env's per-slot state is [B, K]; beyond T nothing is evicted
        for name, lo in (("hidden", 1), ("lanes", 1), ("iterations", 0), ("num_minibatches", 1),
                         ("update_epochs", 1), ("critic_warmup", 0)):
            limits.check_int(name, getattr(self, name), lo)
        for name, lo, hi, lo_open in (("lr", 0, None, True), ("gamma", 0, 1, True), ("gae_lambda", 0, 1, False),
                                      ("clip_coef", 0, None, True), ("ent_coef", 0, None, False),
                                      ("vf_coef", 0, None, False), ("reward_scale", 0, None, True),
                                      ("max_grad_norm", 0, None, True)):
            limits.check_number(name, getattr(self, name), lo, hi, lo_open)
        if self.target_kl is not None:
            limits.check_number("target_kl", self.target_kl, 0, lo_open=True)
        limits.check_int("torch_seed", self.torch_seed, 0, 2**64 - 1)
        limits.check_int("seed_start", self.seed_start, -2**63, limits.INT64_MAX)
        if self.reward_baseline is not None:
            from ..core.policies import get_policy

            pol = get_policy(self.reward_baseline)
            if pol.needs_future or pol.needs_checkpoint or not pol.evicts:
                raise ValueError(f"reward_baseline must be an online policy that evicts, got {self.reward_baseline!r}")

    def env_params(self) -> E.EnvParams:
        from ..core.traces import ZipfParams

        return E.EnvParams(K=self.K, zipf=ZipfParams(**self.zipf), mode=self.mode, device=self.device)


def gae(rewards: torch.Tensor, values: torch.Tensor, discounts: torch.Tensor, next_value: torch.Tensor,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a rollout of N steps and B lanes.

    Args:
        rewards, values: [N, B].  discounts: [N, B], the factor between step t's value and
            step t+1's (gamma, or gamma**dt, times 0 when the episode ended at step t).
        next_value: [B], the value after the last step.
    Returns:
        (advantages [N, B], returns = advantages + values [N, B]).
    """
    N = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in range(N - 1, -1, -1):
        nv = next_value if t == N - 1 else values[t + 1]
        delta = rewards[t] + discounts[t] * nv - values[t]
        last = delta + discounts[t] * lam * last
        adv[t] = last
    return adv, adv + values


class PPO:
    """State of one PPO run: model, optimiser, RNG, env lanes and counters.

    ``ranks`` (default: this process alone) gives this process its block of the lanes.  Every rank
    draws the whole batch's random numbers, keeps its rows and takes the same optimiser steps on the
    same global minibatches, so the run is the single-process run of ``cfg.lanes`` lanes up to float
    rounding (the order of sums)."""

    def __init__(self, cfg: PPOConfig, model: PageController | None = None, ranks: OneProcess | None = None):
        self.cfg = cfg
        # the rollout buffers (per-slot features and masks, per-step scalars) of whole episodes: at most
        # T - K decisions a lane, since every decision is a request
        from ..core.traces import ZipfParams

        steps = max(ZipfParams(**cfg.zipf).T - cfg.K, 1)
        limits.require(4 * steps * cfg.lanes * (cfg.K * (SLOT_DIM[cfg.mode] + 1) + GLOBAL_DIM[cfg.mode] + 12),
                       f"PPO's rollout buffers ({cfg.lanes} lanes of up to {steps} decisions, K = {cfg.K})")
        self.ranks = ranks or OneProcess()
        self.lo, self.hi = self.ranks.share(cfg.lanes)
        torch.manual_seed(cfg.torch_seed)
        self.model = (model or PageController(ControllerConfig(mode=cfg.mode, hidden=cfg.hidden))).to(cfg.device)
        if self.model.config.mode != cfg.mode:
            raise ValueError(f"model mode {self.model.config.mode} != config mode {cfg.mode}")
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, eps=1e-5)
        self.gen = torch.Generator(device=cfg.device).manual_seed(cfg.torch_seed)
        self.iteration = 0
        self.next_seed = cfg.seed_start
        self.params = cfg.env_params()
        self.state = self.obs = self.seeds = None

    # -- checkpointing (plain Python types and CPU tensors only)
    def resume_dict(self) -> dict:
        return {"iteration": self.iteration, "next_seed": self.next_seed, "config": asdict(self.cfg),
                "optimizer": _to_cpu(self.opt.state_dict()), "rng": self.gen.get_state()}

    def load_resume(self, d: dict) -> None:
        saved = d["config"].get("device", "cpu")
        if torch.device(saved).type != self.gen.device.type:  # CPU and CUDA generator states differ
            raise ValueError(f"this PPO run was trained on {saved}: resume it there, not on {self.cfg.device}")
        self.iteration = int(d["iteration"])
        self.next_seed = int(d["next_seed"])
        self.opt.load_state_dict(d["optimizer"])
        self.gen.set_state(d["rng"])

    def _reset_lanes(self) -> None:
        self.seeds = list(range(self.next_seed + self.lo, self.next_seed + self.hi))
        self.next_seed += self.cfg.lanes
        self.obs, self.state = E.reset(self.params, self.seeds)

    def _sample(self, probs: torch.Tensor) -> torch.Tensor:
        """torch.multinomial(probs, 1), which is argmax(probs / E) with E ~ Exp(1) drawn as one [lanes, K]
        tensor: every rank draws the whole batch's E and keeps its rows, so ranks sample as one process."""
        e = torch.empty((self.cfg.lanes, probs.shape[1]), dtype=probs.dtype, device=probs.device)
        return (probs / e.exponential_(1, generator=self.gen)[self.lo:self.hi]).argmax(1)

    def _faults_before(self, policy: str) -> torch.Tensor:
        """int64 [B, T + 1]: ``policy``'s faults on each lane's trace among requests 0..t-1, at column t."""
        from ..core.simulate import simulate

        tr = self.state.traces
        hits = simulate(tr, policy, self.cfg.K, seed=self.seeds, return_hits=True).hits.to(tr.device)
        faults = ((tr >= 0) & ~hits.bool()).to(torch.int64)
        return torch.nn.functional.pad(faults.cumsum(1), (1, 0))

    @torch.no_grad()
    def collect(self) -> dict:
        """One iteration's rollout: every lane plays a fresh trace to its end."""
        cfg = self.cfg
        self._reset_lanes()
        st, o = self.state, self.obs
        base = self._faults_before(cfg.reward_baseline) if cfg.reward_baseline else None
        steps = []
        while True:
            logits, value = self.model(o)
            probs = torch.softmax(logits, 1)
            action = self._sample(probs)
            t0, f0 = st.t.clone(), st.faults.clone()
            step = {"slots": o.slots, "glob": o.glob, "mask": o.mask, "actions": action, "t": t0, "values": value,
                    "logprobs": torch.log(probs.gather(1, action[:, None]).squeeze(1).clamp(min=1e-30)),
                    "valid": ~st.done}
            E.step_inplace(st, action)
            reward = f0 - st.faults
            if base is not None:  # the baseline's faults over the requests this decision covered, t0..t-1
                reward = reward + base.gather(1, st.t[:, None]).squeeze(1) - base.gather(1, t0[:, None]).squeeze(1)
            step["rewards"] = reward.float() * cfg.reward_scale
            dt = (st.t - t0).float()
            gamma = cfg.gamma ** dt if cfg.time_discount else torch.full_like(dt, cfg.gamma)
            step["discounts"] = gamma * (~st.done)
            steps.append(step)
            o = observe(st, cfg.mode)
            if len(steps) % E.DONE_CHECK_EVERY == 0 and self.ranks.all_done(st.done):
                break
        buf = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}
        buf["next_value"] = torch.zeros_like(value)  # every episode has ended
        buf["rollout"] = self._rollout_totals()
        return buf

    def _rollout_totals(self) -> torch.Tensor:
        """float64 [3], summed over every rank's lanes: requests, the sampled policy's faults, Belady's faults."""
        from ..core.simulate import simulate

        st = self.state
        opt = simulate(st.traces, "belady", self.cfg.K).faults.to(st.faults.device)
        own = torch.stack([(st.traces >= 0).sum(), st.faults.sum(), opt.sum()]).double()
        return self.ranks.sum_(own)

    def update(self, buf: dict) -> dict:
        cfg = self.cfg
        frac = 1.0 - self.iteration / max(cfg.iterations, 1)
        if cfg.anneal_lr:
            self.opt.param_groups[0]["lr"] = frac * cfg.lr
        adv, ret = gae(buf["rewards"], buf["values"], buf["discounts"], buf["next_value"], cfg.gae_lambda)
        idx_all = torch.nonzero(buf["valid"].reshape(-1)).squeeze(1)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])[idx_all]  # noqa: E731
        slots, glob, mask = flat(buf["slots"]), flat(buf["glob"]), flat(buf["mask"])
        actions, old_logp, old_v = flat(buf["actions"]), flat(buf["logprobs"]), flat(buf["values"])
        ret = flat(ret)
        # Minibatches are drawn from the samples of every rank: the valid (step, lane) cells of the
        # global [N, lanes] rollout in step-major order, as one process would hold them.  A rank
        # computes its own samples' terms; ``local[i]`` is sample i's row here, or -1.
        samples = torch.nonzero(self.ranks.gather_lanes(buf["valid"]).reshape(-1)).squeeze(1)
        adv = self.ranks.gather_lanes(adv).reshape(-1)[samples]  # every rank normalises a minibatch alike
        if self.ranks.world > 1:
            mine = (samples % cfg.lanes >= self.lo) & (samples % cfg.lanes < self.hi)
            local = torch.where(mine, mine.cumsum(0) - 1, -1)
        n = samples.numel()
        mb = max(1, math.ceil(n / cfg.num_minibatches))
        critic_only = self.iteration < cfg.critic_warmup
        names = ("pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac")
        # float64 sums on the device: the same numbers as summing Python floats, without a sync per minibatch
        totals = torch.zeros(len(names), dtype=torch.float64, device=cfg.device)
        updates = epochs = 0
        for _ in range(cfg.update_epochs):
            epochs += 1
            perm = torch.randperm(n, generator=self.gen, device=cfg.device)
            for start in range(0, n, mb):
                j = perm[start:start + mb]
                m = j.numel()
                # one process: the plain mean; ranks: this rank's samples' share of the minibatch's mean
                mean = torch.mean if self.ranks.world == 1 else (lambda x, m=m: x.sum() / m)
                a = adv[j]
                a = (a - a.mean()) / (a.std() + 1e-8) if a.numel() > 1 else a
                if self.ranks.world > 1:  # this rank's samples (maybe none: the sums are then 0)
                    own = local[j] >= 0
                    a, j = a[own], local[j][own]
                logits, v = self.model(Obs(slots[j], glob[j], mask[j]))
                logp_all = torch.log_softmax(logits, 1)
                logp = logp_all.gather(1, actions[j][:, None]).squeeze(1)
                ratio = (logp - old_logp[j]).exp()
                with torch.no_grad():
                    approx_kl = mean((ratio - 1) - (logp - old_logp[j]))
                    clipfrac = mean(((ratio - 1).abs() > cfg.clip_coef).float())
                pg_loss = mean(torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)))
                if cfg.clip_vloss:
                    v_clip = old_v[j] + (v - old_v[j]).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = 0.5 * mean(torch.max((v - ret[j]) ** 2, (v_clip - ret[j]) ** 2))
                else:
                    v_loss = 0.5 * mean((v - ret[j]) ** 2)
                p = logp_all.exp()
                entropy = -mean((p * logp_all.masked_fill(~mask[j], 0)).sum(1))
                loss = v_loss * cfg.vf_coef if critic_only else pg_loss - cfg.ent_coef * entropy + v_loss * cfg.vf_coef
                self.opt.zero_grad()
                loss.backward()
                stats = self.ranks.sum_grads(self.model, torch.stack(
                    [v.detach() for v in (pg_loss, v_loss, entropy, approx_kl, clipfrac)]).double())
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.opt.step()
                updates += 1
                totals += stats
            # the minibatch's KL over every rank, so that all ranks stop after the same epoch
            if cfg.target_kl is not None and float(stats[3]) > cfg.target_kl and not critic_only:
                break
        self.iteration += 1
        out = {k: v / max(updates, 1) for k, v in zip(names, totals.tolist())}
        out.update(samples=n, epochs=epochs)
        return out

    def run_iteration(self) -> dict:
        t0 = time.perf_counter()
        buf = self.collect()
        stats = self.update(buf)
        requests, faults, opt = buf["rollout"].tolist()
        stats.update(requests=int(requests), fault_rate=faults / requests, rollout_cr=faults / max(opt, 1),
                     seconds=time.perf_counter() - t0)
        return stats


@torch.no_grad()
def sharpen(model: PageController, factor: float) -> PageController:
    """Multiply the controller's slot scores by ``factor`` (in place: its score head's last layer).
    The greedy policy stays (argmax of positive multiples), the sampling policy's entropy drops for
    ``factor`` > 1: PPO started from a behaviour-cloned controller then explores near its greedy policy."""
    last = model.score[-1]
    last.weight.mul_(factor)
    last.bias.mul_(factor)
    return model


def _to_cpu(x):
    """A nested dict/list of tensors with every tensor on the CPU (checkpoints load without a GPU)."""
    if isinstance(x, torch.Tensor):
        return x.cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x


def train_controller(out, bc=None, ppo: PPOConfig | None = None, resume=None, log_dir=None, progress=None,
                     meta: dict | None = None, ranks: OneProcess | None = None, init: PageController | None = None,
                     validate=None, val_every: int = 0) -> dict:
    """The whole training pipeline: behaviour cloning (+ DAgger) on Belady labels, then PPO.

    Args:
        out: checkpoint path, rewritten (atomically) after every behaviour-cloning round and every
            PPO iteration (so an interrupted run keeps its progress) and at the end.
        bc: an :class:`~gpupage.controller.imitation.BCConfig`, or None to start PPO from ``init`` or
            scratch (or, with ``resume``, to continue the checkpoint's own behaviour cloning).
        ppo: a :class:`PPOConfig`, or None/0 iterations for behaviour cloning only.
        resume: a checkpoint written by this function.  It continues, never restarts: behaviour
            cloning after its last finished round and PPO after its last iteration with the
            same seeds (so the result equals an uninterrupted run's), up to the totals of ``bc``
            and ``ppo``, which may be raised past a finished run's.  Every other setting must
            equal the checkpoint's (ValueError naming it).  Nothing left to do returns the
            checkpoint's meta with ``nothing_to_do`` set and writes nothing.
        log_dir: where ``train_log.csv`` and ``train_curve.png`` go (None: next to ``out``).
        progress: callable(stage, done, total, info) for a progress bar.
        ranks: this process's share of the lanes under torchrun (default: all of them); every rank
            trains alike and resumes from the same checkpoint, rank 0 alone writes files and reports.
        init: a controller PPO starts from when there is no behaviour cloning (default: a fresh one).
        validate: callable(model) -> {val_cr, val_gap, val_gap_se, val_baseline} (e.g. a
            :class:`~gpupage.controller.validation.Validation`), called after behaviour cloning, every
            ``val_every`` PPO iterations and after the last.  Then ``out``'s weights are the lowest
            val_cr's so far (meta ``validation``: which stage and iteration, its figures) and the
            latest weights, which ``resume`` continues from, are kept in meta ``ppo_resume.model``.
    Returns:
        the final checkpoint's meta.
    """
    from pathlib import Path

    from .network import controller_from_checkpoint, load_checkpoint, save_controller
    from .imitation import config_dict, train_bc
    from .trainlog import check_fresh, plot_log, read_log, write_log

    ranks = ranks or OneProcess()
    lead = ranks.rank == 0
    out = Path(out)
    log_dir = Path(log_dir) if log_dir else out.parent
    csv_path = log_dir / "train_log.csv"
    check_fresh(out, resume, log_dir)  # an earlier run's checkpoint or log is never replaced unasked
    meta = dict(meta or {})
    model, resume_bc, resume_ppo, elapsed, rows = init, None, None, 0.0, []
    run_bc, run_ppo = bc is not None, ppo is not None and ppo.iterations > 0
    best = None  # (val_cr, state_dict) of the best validated model
    if resume is not None:
        ck = load_checkpoint(resume)
        old = ck["meta"]
        bc, ppo, run_bc, run_ppo, resume_bc, resume_ppo = _continuation(old, bc, ppo)
        if not (run_bc or run_ppo) and old.get("stage") == "done":
            return {**old, "nothing_to_do": True}
        model = controller_from_checkpoint(ck).train()
        if old.get("validation"):
            best = (float(old["validation"]["val_cr"]), ck["state_dict"])
        if resume_ppo and "model" in resume_ppo:  # the checkpoint's weights are the best; continue from the latest
            model.load_state_dict(resume_ppo["model"])
        meta = {**old, **meta}
        elapsed = float(old.get("train_seconds", 0.0))
        bc_done = int(resume_bc["next_round"]) if resume_bc else 1 << 30  # rounds 0..bc_done-1 are kept
        ppo_done = int(resume_ppo["iteration"]) if resume_ppo else 0

        def kept(row):  # rows past the checkpoint are redone
            return int(row["step"]) < bc_done if row["stage"] == "bc" else int(row["step"]) <= ppo_done

        rows = [r for r in (read_log(csv_path) if csv_path.exists() else []) if kept(r)]
    log_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter() - elapsed

    def save(stage, net, extra=None):
        meta.update(stage=stage, train_seconds=round(time.perf_counter() - t_start, 1), **(extra or {}))
        if lead:
            with atomic_path(out) as tmp:
                save_controller(tmp, net, meta)
            write_log(rows, csv_path)

    def validated(net, stage, step):
        """Validate ``net`` into the last log row; keep it as the best when it is."""
        nonlocal best
        figures = validate(net)
        rows[-1].update(figures)
        if best is None or figures["val_cr"] < best[0]:
            best = (figures["val_cr"], {k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
            meta["validation"] = {"stage": stage, "iteration": step, **figures}

    if run_bc:
        meta["bc"] = config_dict(bc)

        def bc_log(rnd, info):
            rows.append({"stage": "bc", "step": rnd, "seconds": round(time.perf_counter() - t_start, 2), **info})
            if lead:
                write_log(rows, csv_path)
            if progress and lead:
                progress("bc", rnd + 1, bc.dagger_rounds + 1, info)

        # the state after each round (the last included) is kept, so a later run can add rounds
        model = train_bc(bc, model, log=bc_log, resume=resume_bc,
                         snapshot=lambda net, state: save("bc", net, {"bc_resume": state}), ranks=ranks)
        if validate is not None:
            validated(model, "bc", 0)
    if run_ppo:
        runner = PPO(ppo, model, ranks)
        model = runner.model
        meta["ppo"] = asdict(ppo)
        if resume_ppo is not None:
            runner.load_resume(resume_ppo)
        model.train()
        if validate is not None and resume_ppo is None and not run_bc:  # the starting point, as iteration 0
            rows.append({"stage": "ppo", "step": 0, "seconds": round(time.perf_counter() - t_start, 2)})
            validated(model, "ppo", 0)
        while runner.iteration < ppo.iterations:
            stats = runner.run_iteration()
            rows.append({**stats, "stage": "ppo", "step": runner.iteration,
                         "seconds": round(time.perf_counter() - t_start, 2)})
            if validate is not None and (runner.iteration % max(val_every, 1) == 0
                                         or runner.iteration == ppo.iterations):
                validated(model, "ppo", runner.iteration)
            save("ppo", *_shipped(model, best, runner))
            if progress and lead:
                progress("ppo", runner.iteration, ppo.iterations, stats)
    if model is None:
        raise ValueError("nothing to train: give behaviour cloning rounds or PPO iterations")
    model.eval()
    # the PPO state is kept at the end too: a later run may raise the total
    save("done", *(_shipped(model, best, runner) if run_ppo else _shipped(model, best)))
    if lead:
        with atomic_path(log_dir / "train_curve.png") as tmp:
            plot_log(rows, tmp)
    return meta


def _shipped(model: PageController, best, runner: PPO | None = None) -> tuple[PageController, dict]:
    """(the model ``out`` holds: the best validated one, else the latest; the meta to update)."""
    extra = {}
    if runner is not None:
        extra["ppo_resume"] = runner.resume_dict()
        if best is not None:
            extra["ppo_resume"]["model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if best is None:
        return model, extra
    shipped = copy.deepcopy(model)  # not a fresh PageController: its initialisation would draw from torch's RNG
    shipped.load_state_dict(best[1])
    return shipped.eval(), extra


def _continuation(old: dict, bc, ppo: PPOConfig | None):
    """What resuming a checkpoint with meta ``old`` runs: (bc config, ppo config, run bc?, run ppo?,
    bc state, ppo state).  Settings other than the totals (and the device) must equal the recorded ones."""
    from .imitation import BCConfig, config_dict

    old_bc, old_ppo = old.get("bc"), old.get("ppo")
    bc_state, ppo_state = old.get("bc_resume"), old.get("ppo_resume")
    ppo_started = old_ppo is not None
    if bc is None and old_bc is not None and not ppo_started:
        bc = BCConfig(**old_bc)  # continue the checkpoint's own behaviour cloning
    run_bc = False
    if bc is not None:
        if old_bc is None:
            raise ValueError("resume: this checkpoint had no behaviour cloning; drop the behaviour-cloning settings")
        _same("behaviour-cloning", config_dict(bc), old_bc, ("dagger_rounds", "device"))
        trained = int(bc_state["next_round"]) - 1 if bc_state else int(old_bc["dagger_rounds"])
        if bc.dagger_rounds < trained:
            raise ValueError(f"resume: {bc.dagger_rounds} DAgger rounds is below the {trained} already trained")
        if ppo_started and bc.dagger_rounds != int(old_bc["dagger_rounds"]):
            raise ValueError("resume: behaviour cloning ended and PPO began; its rounds can no longer change")
        run_bc = not ppo_started and bc.dagger_rounds > trained
        if run_bc and bc_state is None:
            raise ValueError("resume: this checkpoint keeps no behaviour-cloning state to continue from")
    total = ppo.iterations if ppo is not None else 0
    run_ppo = total > 0
    if ppo_started:
        done = int(ppo_state["iteration"]) if ppo_state else int(old_ppo["iterations"])
        if total < done:
            raise ValueError(f"resume: {total} PPO iterations is below the {done} already trained")
        _same("PPO", asdict(ppo), old_ppo, ("iterations", "device"))
        run_ppo = total > done
        if run_ppo and ppo_state is None:
            raise ValueError("resume: this checkpoint keeps no PPO state to continue from")
    return bc, ppo, run_bc, run_ppo, bc_state if run_bc else None, ppo_state if ppo_started else None


def _same(what: str, new: dict, old: dict, may_differ) -> None:
    for k in sorted(set(new) | set(old)):
        if k not in may_differ and _plain(new.get(k)) != _plain(old.get(k)):
            raise ValueError(f"resume: {what} setting {k} differs from the checkpoint's ({old.get(k)!r} -> {new.get(k)!r})")


def _plain(v):
    """Tuples and lists compare equal (checkpoints store lists)."""
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v
