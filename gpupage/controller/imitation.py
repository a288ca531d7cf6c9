"""Imitation warm start: behaviour cloning on Belady's choices, with DAgger as an option.

At every decision the label is the set of Belady-optimal slots (any block never
used again, or the one used farthest in the future); the loss is
``-log sum_{a optimal} pi(a)``, so the network may put its mass on any of them.
An optional listwise term (``rank_coef``, ListNet) also teaches the order of the
other slots' next-use distances, which carries more signal per decision than
the argmax alone (as in Parrot's ranking loss).
Round 0 rolls out Belady itself (the expert's state distribution); each DAgger
round rolls out the learner, mixed per decision with the expert with
probability ``beta``, and labels the states the learner visits (Ross et al. 2011).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from . import env as E
from .features import GLOBAL_DIM, SLOT_DIM, Obs, observe
from .network import ControllerConfig, PageController
from .ranks import OneProcess
from ..core import limits


@dataclass
class BCConfig:
    """Behaviour cloning (+ DAgger) hyper-parameters."""

    K: int = 8
    """Cache size the controller is trained at (a list via ``Ks`` trains on several)."""
    Ks: tuple = ()
    """Optional cache sizes cycled over the rollout batches (overrides K when given)."""
    mode: str = "blackbox"
    """Feature mode: 'blackbox' or 'whitebox'."""
    hidden: int = 48
    """Controller width."""
    seed_start: int = 10000
    """First training seed; training uses seed_start, seed_start + 1, ... (evaluation seeds lie below)."""
    lanes: int = 64
    """Traces rolled out per round (under torchrun, by all ranks together)."""
    dagger_rounds: int = 3
    """Rounds after the expert round that roll out the learner (0: plain behaviour cloning)."""
    beta: float = 0.5
    """Probability, per decision, that the expert acts during the first DAgger round (halved each round)."""
    epochs: int = 4
    """Passes over the aggregated data after each round."""
    batch_size: int = 1024
    """Decisions per gradient step."""
    lr: float = 3e-3
    """Adam learning rate (cosine-annealed within each round)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    rank_coef: float = 0.0
    """Weight of the listwise next-use ranking loss (0: plain behaviour cloning)."""
    rank_tau: float = 0.5
    """Temperature of the ranking target softmax(log(next-use distance) / tau)."""
    max_samples: int = 400_000
    """Aggregated data is capped to the most recent this many decisions."""
    torch_seed: int = 0
    """Seed of initialisation, shuffling and expert mixing."""
    zipf: dict = field(default_factory=dict)
    """ZipfParams overrides (App. B defaults)."""
    device: str = "cpu"
    """Where the rollouts, the aggregated data, the model and the fitting live ('cpu', 'cuda', ...).
    The model is initialised on the CPU and moved; expert mixing and shuffling draw from a generator
    on this device, so runs agree per device type, not across."""

    def __post_init__(self):
        from ..core.traces import ZipfParams

        zipf = ZipfParams.from_dict(self.zipf)
        if self.mode not in E.MODES:
            raise ValueError(f"mode must be one of {', '.join(E.MODES)}, got {self.mode!r}")
        for k in self.cache_sizes():
            limits.check_int("K", k, 1, zipf.T)  # the env's per-slot state is [B, K]; beyond T nothing is evicted
        for name, lo in (("hidden", 1), ("lanes", 1), ("dagger_rounds", 0), ("epochs", 1), ("batch_size", 1),
                         ("max_samples", 1)):
            limits.check_int(name, getattr(self, name), lo)
        limits.check_number("beta", self.beta, 0, 1)
        limits.check_number("lr", self.lr, 0, lo_open=True)
        limits.check_number("weight_decay", self.weight_decay, 0)
        limits.check_number("rank_coef", self.rank_coef, 0)
        limits.check_number("rank_tau", self.rank_tau, 0, lo_open=True)
        limits.check_int("torch_seed", self.torch_seed, 0, 2**64 - 1)
        # every round's seeds are 64-bit
        limits.check_int("seed_start", self.seed_start, -2**63,
                         limits.INT64_MAX - self.lanes * (self.dagger_rounds + 1) * len(self.cache_sizes()))

    def env_params(self, K: int) -> E.EnvParams:
        from ..core.traces import ZipfParams

        return E.EnvParams(K=K, zipf=ZipfParams(**self.zipf), mode=self.mode, device=self.device)

    def cache_sizes(self) -> list[int]:
        return list(self.Ks) if self.Ks else [self.K]


def bc_loss(logits: torch.Tensor, label: torch.Tensor, total: int | None = None) -> torch.Tensor:
    """Mean of -log pi(optimal set): logits [N, K] (-inf on empty slots), label bool [N, K].  With
    ``total``: these N rows' share of the mean over a minibatch of ``total`` rows (on several ranks)."""
    loss = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~label, float("-inf")), 1)
    return loss.mean() if total is None else loss.sum() / total


def belady_labels(dist: torch.Tensor) -> torch.Tensor:
    """bool [N, K]: slots at the farthest next use (dist int [N, K], -1 on empty slots)."""
    return (dist == dist.max(1, keepdim=True).values) & (dist >= 0)


def rank_loss(logits: torch.Tensor, dist: torch.Tensor, tau: float, total: int | None = None) -> torch.Tensor:
    """ListNet: cross-entropy from softmax(log(dist) / tau) over the resident slots to pi (``total``: as bc_loss)."""
    valid = dist >= 0
    target = torch.softmax((dist.clamp(min=1).float().log() / tau).masked_fill(~valid, float("-inf")), 1)
    logp = torch.log_softmax(logits, 1).masked_fill(~valid, 0)
    loss = -(target * logp).sum(1)
    return loss.mean() if total is None else loss.sum() / total


def expert_action(state: E.EnvState) -> torch.Tensor:
    """Belady's victim: farthest next use, ties to the least recently accessed slot."""
    nu = E.slot_next_use(state)
    key = nu * (state.T + 1) - state.last  # larger is better
    return key.argmax(1)


@torch.no_grad()
def collect(params: E.EnvParams, seeds, model: PageController | None = None, beta: float = 1.0,
            generator: torch.Generator | None = None):
    """Roll out (expert with probability beta per decision, else the greedy learner) and label every decision.

    Returns (Obs stacked over decisions [N, ...], next-use distance int64 [N, K]: requests from
    the decision to the slot's next request, 2T when never again, -1 on empty slots)."""
    return collect_share(params, seeds, model, beta, generator)[:2]


@torch.no_grad()
def collect_share(params: E.EnvParams, seeds, model: PageController | None = None, beta: float = 1.0,
                  generator: torch.Generator | None = None, ranks: OneProcess | None = None):
    """:func:`collect` of this rank's block of ``seeds`` (every rank's), drawing the expert's coins for
    every lane so that ranks mix as one process.  Also returns ``order``, each decision's index among
    every rank's decisions in a single process's order (step-major, lane-minor), and their number."""
    ranks = ranks or OneProcess()
    lo, hi = ranks.share(len(seeds))
    obs, st = E.reset(params, seeds[lo:hi])
    slots, globs, masks, labels, lives, gen_states = [], [], [], [], [], []
    mixing = model is not None and beta < 1
    step = 0
    while step % E.DONE_CHECK_EVERY or not ranks.all_done(st.done):  # the loop's only host sync
        live = ~st.done
        nu = E.slot_next_use(st)
        label = torch.where(nu >= E.NEVER, 2 * st.T, nu - st.t[:, None]).masked_fill(nu < 0, -1)
        slots.append(obs.slots)
        globs.append(obs.glob)
        masks.append(obs.mask)
        labels.append(label)
        lives.append(live)
        action = expert_action(st)
        if mixing:
            gen_states.append(generator.get_state())
            learner = model.act(obs)
            use_expert = torch.rand(len(seeds), generator=generator, device=st.t.device)[lo:hi] < beta
            action = torch.where(use_expert, action, learner)
        E.step_inplace(st, action)
        obs = observe(st, params.mode)
        step += 1
    none = torch.empty(0, dtype=torch.int64, device=st.t.device)
    if not lives:  # no lane reached a decision
        return Obs(obs.slots[:0], obs.glob[:0], obs.mask[:0]), none.reshape(0, params.K), none, 0
    live_by_step = torch.stack(lives)  # [steps, B]
    live = live_by_step.reshape(-1)  # step-major, lane-minor: the order decisions were made in
    every = ranks.gather_lanes(live_by_step)
    if mixing:  # steps past the last decision drew from the generator: rewind it to that decision
        decisions = int(every.any(1).sum())
        if decisions < step:
            generator.set_state(gen_states[decisions])
    flat = lambda xs: torch.stack(xs).flatten(0, 1)[live]  # noqa: E731
    order = (every.reshape(-1).cumsum(0) - 1).reshape(every.shape)[:, lo:hi].reshape(-1)[live]
    return Obs(flat(slots), flat(globs), flat(masks)), flat(labels), order, int(every.sum())


def fit(model: PageController, data: Obs, dist: torch.Tensor, epochs: int, batch_size: int, lr: float,
        weight_decay: float, generator: torch.Generator, rank_coef: float = 0.0, rank_tau: float = 0.5,
        ranks: OneProcess | None = None, order: torch.Tensor | None = None, total: int | None = None) -> list[float]:
    """Minibatch AdamW on the BC loss (+ ranking loss); returns the mean loss of each epoch.

    On several ``ranks`` each holds its share of the data: ``order`` places its rows among the
    ``total`` rows of every rank, and minibatches are drawn over those, as in one process."""
    ranks = ranks or OneProcess()
    labels = belady_labels(dist)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    N = labels.shape[0] if total is None else total
    if ranks.world > 1:  # local[i]: the row here of global row i, or -1
        local = torch.full((N,), -1, dtype=torch.int64, device=labels.device)
        local[order] = torch.arange(order.numel(), device=labels.device)
    steps = epochs * math.ceil(N / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i / steps, 1))))
    out = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(N, generator=generator, device=labels.device)
        # a float64 sum on the device: the same number as summing Python floats, without a sync per step
        epoch_sum = torch.zeros((), dtype=torch.float64, device=labels.device)
        for i in range(0, N, batch_size):
            idx = perm[i:i + batch_size]
            m, share = idx.numel(), None
            if ranks.world > 1:  # this rank's rows of the minibatch (maybe none: the loss is then 0)
                idx, share = local[idx], m
                idx = idx[idx >= 0]
            logits, _ = model(Obs(data.slots[idx], data.glob[idx], data.mask[idx]))
            loss = bc_loss(logits, labels[idx], share)
            if rank_coef:
                loss = loss + rank_coef * rank_loss(logits, dist[idx], rank_tau, share)
            opt.zero_grad()
            loss.backward()
            loss = ranks.sum_grads(model, loss.detach().double().reshape(1))[0]
            nn_clip(model)
            opt.step()
            sched.step()
            epoch_sum += loss * m
        out.append(float(epoch_sum) / N)
    model.eval()
    return out


def nn_clip(model, max_norm: float = 1.0):
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def train_bc(cfg: BCConfig, model: PageController | None = None, log=None, resume: dict | None = None,
             snapshot=None, ranks: OneProcess | None = None) -> PageController:
    """Behaviour cloning on Belady rollouts, then ``dagger_rounds`` DAgger rounds.

    ``log(round, info)`` is called after each round with {'samples', 'loss', 'agreement'};
    ``snapshot(model, state)`` then gets the model and a dict of plain types and tensors from
    which ``train_bc(cfg, that_model, resume=state)`` continues to the same result as an
    uninterrupted run.  The state holds each round's starting weights and generator
    state rather than the aggregated data (hundreds of MB): the data still in use is
    collected again, bit for bit, on resume.  On several ``ranks`` each rolls out and holds its
    block of every round's lanes; the pool, its cap and the minibatches count every rank's rows."""
    ranks = ranks or OneProcess()
    torch.manual_seed(cfg.torch_seed)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.torch_seed)
    if model is None:
        model = PageController(ControllerConfig(mode=cfg.mode, hidden=cfg.hidden))
    model = model.to(cfg.device)
    Ks = cfg.cache_sizes()
    pool: list[tuple] = []  # per round and K: decisions, distances, agreement, their order and number
    starts: list[dict] = []  # per round: the weights and generator state it started from
    dropped = 0  # items (one per round and K, in order) trimmed from the front of the pool
    first = 0
    if resume is not None:
        starts, dropped, first = list(resume["starts"]), int(resume["dropped"]), int(resume["next_round"])
        learner = PageController(model.config).to(cfg.device)
        for rnd in range(dropped // len(Ks), first):
            learner.load_state_dict(starts[rnd]["weights"])
            gen.set_state(starts[rnd]["gen"])
            pool.extend(_collect_round(cfg, rnd, learner, gen, ranks))
        del pool[:dropped % len(Ks)]
        gen.set_state(resume["gen"])
    for rnd in range(first, cfg.dagger_rounds + 1):
        starts.append({"weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                       "gen": gen.get_state()})
        pool.extend(_collect_round(cfg, rnd, model, gen, ranks))
        while sum(p[4] for p in pool) > cfg.max_samples and len(pool) > 1:
            pool.pop(0)
            dropped += 1
        data, dist, order, total = _merge(pool)
        losses = fit(model, data, dist, cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, gen,
                     cfg.rank_coef, cfg.rank_tau, ranks, order, total)
        if log is not None:
            log(rnd, {"samples": total, "loss": losses[-1],
                      "agreement": sum(p[2] for p in pool[-len(Ks):]) / len(Ks)})
        if snapshot is not None:
            snapshot(model, {"next_round": rnd + 1, "dropped": dropped, "starts": starts, "gen": gen.get_state()})
    return model


def _collect_round(cfg: BCConfig, rnd: int, model: PageController, gen: torch.Generator, ranks: OneProcess) -> list:
    """Round ``rnd``'s data, one (decisions, next-use distances, the model's agreement with Belady over
    every rank, the decisions' order among every rank's and their number: see :func:`collect_share`)
    per cache size: round 0 rolls out the expert, later rounds the learner mixed with it."""
    Ks = cfg.cache_sizes()
    beta = 1.0 if rnd == 0 else cfg.beta * 0.5 ** (rnd - 1)
    items = []
    for i, K in enumerate(Ks):
        first_seed = cfg.seed_start + (rnd * len(Ks) + i) * cfg.lanes
        T = cfg.env_params(K).zipf.T
        # at most one decision a request past the first K: features, mask and label of every slot
        limits.require(cfg.lanes * max(T - K, 0) * (K * (4 * SLOT_DIM[cfg.mode] + 9) + 4 * GLOBAL_DIM[cfg.mode]),
                       f"behaviour cloning's decisions ({cfg.lanes} lanes x {T} requests, K = {K})")
        data, labels, order, total = collect_share(cfg.env_params(K), list(range(first_seed, first_seed + cfg.lanes)),
                                                   model if rnd else None, beta, gen, ranks)
        with torch.no_grad():
            chosen = model(data)[0].argmax(1)
            rows = torch.arange(labels.shape[0], device=labels.device)
            hits = belady_labels(labels)[rows, chosen].float()
            agree = ranks.sum_(torch.stack([hits.sum(), torch.tensor(float(hits.numel()), device=hits.device)]))
            agree = float(agree[0] / agree[1])  # in one process: hits.mean(), exactly
        items.append((data, labels, agree, order, total))
    return items


def _merge(pool):
    """Concatenate decisions of different K by padding slots (padded slots are masked out); returns
    (decisions, distances, their order among every rank's, the number of every rank's)."""
    Kmax = max(p[1].shape[1] for p in pool)
    slots, globs, masks, labels, orders = [], [], [], [], []
    offset = 0
    for data, lab, _, order, total in pool:
        pad = Kmax - lab.shape[1]
        slots.append(torch.nn.functional.pad(data.slots, (0, 0, 0, pad)))
        globs.append(data.glob)
        masks.append(torch.nn.functional.pad(data.mask, (0, pad)))
        labels.append(torch.nn.functional.pad(lab, (0, pad), value=-1))
        orders.append(order + offset)
        offset += total
    return Obs(torch.cat(slots), torch.cat(globs), torch.cat(masks)), torch.cat(labels), torch.cat(orders), offset


def config_dict(cfg: BCConfig) -> dict:
    d = asdict(cfg)
    d["Ks"] = list(cfg.Ks)
    return d
