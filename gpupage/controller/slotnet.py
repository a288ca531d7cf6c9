"""The float twin of the ``learned`` policy: its model, training on Belady's labels, and the export.

:class:`SlotNet` has exactly the integer network's structure (``gpupage/zoo/learned.py``): the
20 integer features of a slot (divided by ``2**IN_SHIFT``), two ReLU layers and one output, the
same for every slot; the slot with the lowest score is evicted.  :func:`train` runs behaviour
cloning with DAgger at simulator speed:

* round 0 rolls out the expert (Belady; with ``teacher_acts`` the table teacher); round r >= 1
  exports the current model to the integer network and rolls *that* out in the numba simulator
  (:func:`gpupage.zoo.learned_dagger.collect`), the expert acting at each decision with probability
  ``beta * 2**(1-r)``, and records every decision's slot features and each slot's next-use distance;
* after each round the aggregated decisions fit the model: ``-log sum_{optimal} softmax(-score)``
  over the resident slots (Belady's optimal set: every slot at the farthest next use), plus an
  optional ListNet term on the next-use distances.  With ``teacher="latent_min"`` the target is
  instead the slot whose block the Zipf generator expects to request least over the next
  ``teacher_horizon`` K requests (:func:`latent_values`, from the lanes' working sets): privileged
  information, like Belady's, but without the noise of which requests happened to be drawn;
  with ``teacher="hit_density"`` (trace files) it is the slot of lowest hit density in LHD's table
  estimated on the training part (:mod:`gpupage.controller.hit_density`), a function of two inputs;
  with ``teacher="lfu_mru"``, the slot of fewest accesses (count class) and, among those, the youngest,
  after any idle for ``dead_age`` K requests (:func:`hit_density.lfu_mru`), a function of the same two;
* :func:`quantise` exports per-layer power-of-two scales: activation scales calibrated on the
  collected features (largest activation -> 255), int16 weights as large as the specification's
  bounds allow.

Training lanes are App. B Zipf traces with randomised parameters (alpha in [0.8, 1.6], W in
{8, 16, 32}, shift in [200, 2000], M in {64, 128}, T in {5000, 20000}) at K in {4, 8, 16}, seeds
from ``seed_start`` (>= 10000) up; the quantisation check runs on seeds from ``check_seed``.
With ``trace_file`` the lanes are instead windows of that file's first ``train_calls`` of its
calls (:func:`gpupage.core.traces.trace_windows`, each starting at a call; round r's windows
from seed ``seed_start + r``, the check's from ``check_seed``), lane b at cache size
``Ks[b % len(Ks)]``; the rest of the file is never read.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..core import limits
from ..core.traces import ZipfParams, trace_windows, zipf_traces
from ..zoo import learned as L
from ..zoo import learned_dagger as D
from . import hit_density
from .evaluate import BASELINES

IN_SHIFT = 5  # the float model reads feature / 32: inputs in [0, 8)
VARIANTS = (("defaults", {}), ("alpha=0.8", {"alpha": 0.8}), ("alpha=1.6", {"alpha": 1.6}), ("W=8", {"W": 8}),
            ("W=32", {"W": 32}), ("shift=200", {"shift": 200}), ("shift=2000", {"shift": 2000}),
            ("M=128", {"M": 128}), ("T=20000", {"T": 20000}))
"""Issue 12's App. B family: the defaults and each parameter varied alone (``ZipfParams`` overrides)."""
CALIB_CHUNK = 1 << 18  # calibration rows per forward pass: bounds quantise's memory


class SlotNet(nn.Module):
    """Score of each slot from its uint8 features ``[..., N_IN]``: lower is evicted first."""

    def __init__(self, hidden: tuple[int, int] = (32, 16)):
        super().__init__()
        h1, h2 = hidden
        self.l1 = nn.Linear(L.N_IN, h1)
        self.l2 = nn.Linear(h1, h2)
        self.l3 = nn.Linear(h2, 1, bias=False)  # a bias would not change which slot is lowest

    def activations(self, feats: torch.Tensor):
        """(first hidden layer, second hidden layer, score) of ``feats`` (any integer dtype)."""
        a1 = torch.relu(self.l1(feats.float() * 2.0 ** -IN_SHIFT))
        a2 = torch.relu(self.l2(a1))
        return a1, a2, self.l3(a2).squeeze(-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.activations(feats)[2]


@dataclass
class TrainConfig:
    """Behaviour cloning + DAgger of :class:`SlotNet`."""

    seed_start: int = 10000
    """First training seed; round r's lanes take the next ``lanes`` seeds (evaluation seeds lie below)."""
    lanes: int = 96
    """Traces rolled out per round."""
    rounds: int = 6
    """DAgger rounds after the expert round."""
    beta: float = 0.5
    """Probability per decision that Belady acts in the first DAgger round (halved each round)."""
    epochs: int = 3
    """Passes over the aggregated decisions after each round."""
    batch_size: int = 512
    """Decisions per gradient step."""
    lr: float = 3e-3
    """AdamW learning rate, cosine-annealed within each round."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    rank_coef: float = 0.0
    """Weight of the ListNet term on next-use distances (0: plain behaviour cloning)."""
    rank_tau: float = 0.5
    """Temperature of the ListNet target softmax(log(distance) / tau)."""
    hidden: tuple = (32, 16)
    """Widths of the two hidden layers (each <= 32)."""
    Ks: tuple = (4, 8, 16)
    """Cache sizes, one drawn per lane."""
    max_decisions: int = 1_500_000
    """The aggregated pool keeps the most recent this many decisions."""
    balance_k: bool = True
    """Each epoch draws as many minibatches from every cache size (a large K faults less often)."""
    check_seed: int = 30000
    """First seed of the quantisation check's held-out lanes."""
    check_lanes: int = 64
    """Lanes of the quantisation check."""
    torch_seed: int = 0
    """Seed of initialisation and shuffling."""
    threads: int = 1
    """torch threads (numba uses the rest; more oversubscribes small machines)."""
    tie_rule: str = "any"
    """Target among Belady's optimal slots: "any" of them, or "lru": the least recently used."""
    variant_frac: float = 0.0
    """Fraction of lanes drawn from :data:`VARIANTS` exactly (uniformly) instead of the randomised family."""
    hard_weight: float = 1.0
    """With the "lru" tie rule: the weight of a decision whose least recently used slot is not a target."""
    far_horizon: int = 0
    """Slots next used at least this many times the decision's slot count ahead are targets too (0: Belady's only)."""
    teacher: str = "belady"
    """Whose choice the listwise loss targets: "belady" (farthest next use), or "latent_min": the slot whose block
    has the fewest expected requests over the next ``teacher_horizon`` K requests, computed from the Zipf
    generator's working sets and probabilities (privileged, but free of the realised future's noise); "hit_density"
    (trace files): LHD's table estimated on the training part; "lfu_mru": the lowest count class, then the youngest."""
    teacher_acts: bool = False
    """With a table teacher ("hit_density", "lfu_mru"): the teacher, not Belady, acts in the DAgger rollouts' expert
    share, so the pool holds the states its own choices lead to."""
    dead_age: int = 0
    """With the "lfu_mru" teacher: blocks idle for at least this many K requests rank first (0: none;
    :func:`hit_density.lfu_mru`)."""
    teacher_horizon: int = 4
    """The latent teacher's horizon in units of the decision's K."""
    density_sizes: int = 1
    """The hit-density teacher's table: the mean of those estimated at K, 2K, ..., 2**(density_sizes-1) K (1: at the
    lane's K only; :func:`hit_density.bagged`)."""
    calib_quantile: float = 1.0
    """The export maps this quantile of each hidden layer's calibration activations to 255 (1.0: the maximum;
    below it, outliers saturate and the bulk keeps more levels)."""
    trace_file: str = ""
    """Train on windows of this trace file instead of Zipf lanes."""
    trace_format: str = "auto"
    """Its format (see :func:`gpupage.core.io.read_trace`)."""
    train_calls: float = 0.8
    """The first this fraction of its calls (its requests, for a file without calls) is trained on."""
    window: int = 20000
    """Requests per training window (long enough to fill the largest cache)."""
    candidates: int = 0
    """Record and train on the C least recently accessed slots of each decision (0: every slot)."""
    stride: int = 1
    """Record every this many-th decision of a lane (consecutive decisions of a long window are alike)."""
    val_lanes: int = 0
    """Validation lanes per variant and K (seeds from ``val_seed``): each round's export is scored on the nine
    :data:`VARIANTS` against the best of :data:`BASELINES` there, and the best round is kept (0: the last round)."""
    val_seed: int = 40000
    """First seed of the validation lanes (training seeds run from ``seed_start`` up to ``seed_start + (rounds + 1)
    * lanes``)."""


def lane_params(seed: int, Ks=(4, 8, 16), variant_frac: float = 0.0) -> tuple[ZipfParams, int]:
    """The randomised App. B parameters (or, with probability ``variant_frac``, one of
    :data:`VARIANTS`) and cache size of the training lane of ``seed``."""
    g = np.random.default_rng(seed)
    zp = ZipfParams(M=int(g.choice([64, 128])), alpha=float(g.uniform(0.8, 1.6)), W=int(g.choice([8, 16, 32])),
                    shift=int(g.integers(200, 2001)), T=int(g.choice([5000, 20000])))
    K = int(g.choice(list(Ks)))
    if variant_frac and g.random() < variant_frac:  # drawn after the rest: other lanes keep their v1 values
        zp = ZipfParams(**VARIANTS[int(g.integers(len(VARIANTS)))][1])
    return zp, K


def _stack_padded(blocks) -> np.ndarray:
    """int32 [total rows, longest]: the 2-D request blocks one under another, shorter rows padded with -1."""
    out = np.full((sum(b.shape[0] for b in blocks), max(b.shape[1] for b in blocks)), -1, dtype=np.int32)
    row = 0
    for b in blocks:
        out[row:row + b.shape[0], :b.shape[1]] = b
        row += b.shape[0]
    return out


def lane_batch(seeds, Ks=(4, 8, 16), variant_frac: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(traces int32 [B, Tmax] padded with -1, K int64 [B]) of the training lanes of ``seeds``."""
    blocks, Kl = [], []
    for s in seeds:
        zp, K = lane_params(int(s), Ks, variant_frac)
        blocks.append(zipf_traces(zp, seed=[int(s)]).numpy())
        Kl.append(K)
    return _stack_padded(blocks), np.array(Kl, dtype=np.int64)


def training_part(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(requests, allowed window starts) of the trained-on part of ``cfg.trace_file``: its first
    ``train_calls`` of calls, windows starting at a call (any request for a file without calls)."""
    from ..core.io import read_trace

    if not 0 < cfg.train_calls <= 1:
        raise ValueError(f"train_calls must be in (0, 1], got {cfg.train_calls}")
    ft = read_trace(cfg.trace_file, cfg.trace_format)
    call = ft.meta.get("call")
    if call is None:
        n = max(int(ft.requests * cfg.train_calls), 1)
        return ft.ids[:n], np.arange(max(n - cfg.window, 0) + 1)
    n = int(np.searchsorted(call, max(round((int(call[-1]) + 1) * cfg.train_calls), 1)))
    starts = np.flatnonzero(ft.meta["pos_in_call"][:n] == 0)
    return ft.ids[:n], starts[starts <= max(n - cfg.window, 0)]


def trace_batch(part, seed: int, lanes: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(windows int32 [lanes, window], K int64 [lanes]) of the training part ``part``."""
    ids, starts = part
    K = np.array([cfg.Ks[b % len(cfg.Ks)] for b in range(lanes)], dtype=np.int64)
    return trace_windows(ids, lanes, cfg.window, seed, starts), K


def listwise_loss(score: torch.Tensor, dist: torch.Tensor, recency: torch.Tensor | None = None,
                  horizon: int = 0, hard: float = 1.0) -> torch.Tensor:
    """Mean over decisions of -log (softmax(-score) mass on Belady's optimal slots).

    score float [N, K]; dist int [N, K] next-use distance, -1 on slots that do not exist;
    recency [N, K] (feature 0), optional: only the least recently used optimal slots (to the
    feature's resolution) are the target -- the contract's tie rule, LRU among equals;
    horizon > 0: every slot next used at least this far ahead counts as optimal too (which of
    them Belady would pick is a guess about the distant future no online policy can make);
    hard != 1 (with ``recency``): a decision whose least recently used slot is not a target weighs this much
    (the mean is then weighted), so the decisions where the teacher departs from LRU are not drowned."""
    valid = dist >= 0
    logits = (-score).masked_fill(~valid, float("-inf"))
    far = dist.max(1, keepdim=True).values
    if horizon:
        far = far.clamp(max=horizon)
    best = dist >= far
    weight = None
    if recency is not None:
        if hard != 1.0:
            r = recency.long().masked_fill(~valid, -1)
            lru_is_target = (best & (r == r.max(1, keepdim=True).values)).any(1)
            weight = torch.where(lru_is_target, 1.0, hard)
        r = recency.long().masked_fill(~best, -1)
        best = r == r.max(1, keepdim=True).values
    per = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~best, float("-inf")), 1)
    return per.mean() if weight is None else (per * weight).sum() / weight.sum()


def rank_loss(score: torch.Tensor, dist: torch.Tensor, tau: float) -> torch.Tensor:
    """ListNet: cross-entropy from softmax(log(distance) / tau) over the slots to softmax(-score)."""
    valid = dist >= 0
    target = torch.softmax((dist.clamp(min=1).double().log() / tau).masked_fill(~valid, float("-inf")), 1).float()
    logp = torch.log_softmax((-score).masked_fill(~valid, float("-inf")), 1).masked_fill(~valid, 0)
    return -(target * logp).sum(1).mean()


def latent_values(seeds, Ks, variant_frac: float, K: np.ndarray, decisions: np.ndarray, t: np.ndarray,
                  ids: np.ndarray, horizon: int) -> np.ndarray:
    """int64 [N, S]: each decision's candidates' expected requests over the next ``horizon`` K requests
    (x 2^16), from the working sets and Zipf probabilities of the lanes of ``seeds``; -1 where ``ids`` is."""
    lane = np.repeat(np.arange(len(seeds)), decisions)
    out = np.full(ids.shape, -1, dtype=np.int64)
    for b, s in enumerate(seeds):
        rows = np.nonzero(lane == b)[0]
        if not rows.size:
            continue
        zp, _ = lane_params(int(s), Ks, variant_frac)
        ws = zipf_traces(zp, seed=[int(s)], return_latent=True)[1].working_sets[0].numpy()  # [P, W]
        p = np.arange(1, zp.W + 1, dtype=np.float64) ** -zp.alpha
        prob = np.zeros((ws.shape[0], zp.M))
        prob[np.arange(ws.shape[0])[:, None], ws] = p / p.sum()
        tb, xb = t[rows], np.maximum(ids[rows], 0)
        val = np.zeros(xb.shape)
        lo, hi = tb + 1, np.minimum(tb + horizon * int(K[b]), zp.T - 1)  # the requests t+1 .. t+h
        for ph in range(ws.shape[0]):
            n = np.clip(np.minimum(hi, (ph + 1) * zp.shift - 1) - np.maximum(lo, ph * zp.shift) + 1, 0, None)
            val += n[:, None] * prob[ph][xb]
        out[rows] = np.where(ids[rows] >= 0, np.round(val * 65536).astype(np.int64), -1)
    return out


def density_targets(tables: dict, feats: np.ndarray, dist: np.ndarray, row_k: np.ndarray) -> np.ndarray:
    """The hit-density teacher's targets in place of next-use distances: int64 [N, S], each recorded slot's
    :func:`hit_density.teacher_distance` under the table of its row's K (``row_k`` [N]), -1 where ``dist`` is."""
    out = np.full(dist.shape, -1, dtype=np.int64)
    for k, table in tables.items():
        rows = row_k == k
        out[rows] = np.where(dist[rows] >= 0, hit_density.teacher_distance(feats[rows], table), -1)
    return out


def fit(model: SlotNet, pool: dict, cfg: TrainConfig, gen: torch.Generator) -> float:
    """Minibatch AdamW over the pool ({K: (feats uint8 [N, K, N_IN], dist int64 [N, K])}), each
    minibatch from one K; returns the last epoch's mean loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_k = {K: -(-d.shape[0] // cfg.batch_size) for K, (_, d) in pool.items()}
    if cfg.balance_k:  # every K as many minibatches as the mean, smaller groups cycling through theirs
        per_k = {K: -(-sum(per_k.values()) // len(per_k)) for K in per_k}
    batches = [(K, i * cfg.batch_size) for K, n in per_k.items() for i in range(n)]
    steps = cfg.epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i / steps, 1))))
    perms = {}
    loss_sum = 0.0
    for _ in range(cfg.epochs):
        for K, (_, d) in pool.items():
            reps = -(-per_k[K] * cfg.batch_size // d.shape[0])
            perms[K] = torch.cat([torch.randperm(d.shape[0], generator=gen) for _ in range(reps)])
        loss_sum, n = 0.0, 0
        for b in torch.randperm(len(batches), generator=gen).tolist():
            K, i = batches[b]
            idx = perms[K][i:i + cfg.batch_size]
            feats, dist = pool[K][0][idx], pool[K][1][idx]
            score = model(feats)
            loss = listwise_loss(score, dist, feats[..., 0] if cfg.tie_rule == "lru" else None,
                                 cfg.far_horizon * dist.shape[1], cfg.hard_weight)
            if cfg.rank_coef:
                loss = loss + cfg.rank_coef * rank_loss(score, dist, cfg.rank_tau)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * idx.numel()
            n += idx.numel()
    return loss_sum / max(n, 1)


def _exponent(limit: float, value: float) -> int:
    """The largest e with value * 2**e <= limit (value > 0)."""
    return math.floor(math.log2(limit / value))


@torch.no_grad()
def quantise(model: SlotNet, calib: torch.Tensor, quantile: float = 1.0, rounding: bool = False,
             finer: tuple[int, int] = (0, 0)) -> L.LearnedNet:
    """The integer network closest to ``model`` under the specification's bounds.

    Each hidden layer's activations get the scale 2**e that maps the largest activation seen on
    ``calib`` (uint8 features [N, N_IN]) -- or, with ``quantile`` < 1, that quantile of a fixed
    subsample of them -- to 255, times 2**finer[layer] (finer levels; the top of the range then
    saturates); weights get the largest power-of-two scale that keeps them int16
    and every unit's |b| + 255 sum |w| below 2**24; the shift between is the difference of the
    exponents.  The specification's shift floors; with ``rounding`` each hidden unit's bias gains half
    of its shift's step, so the unit rounds to the nearest level instead (same specification)."""
    tops, samples = [], []  # per chunk: each layer's maximum (and, for a quantile, every 97th activation)
    for i in range(0, calib.shape[0], CALIB_CHUNK):
        acts = model.activations(calib[i:i + CALIB_CHUNK])[:2]
        tops.append([float(a.max()) for a in acts])
        if quantile < 1:
            samples.append([a.flatten()[::97] for a in acts])
    if quantile < 1:  # torch.quantile takes at most 2**24 values
        peaks = [float(torch.quantile(torch.cat([c[j] for c in samples])[:1 << 24], quantile)) for j in range(2)]
    else:
        peaks = [max(t[j] for t in tops) for j in range(2)]
    W1 = model.l1.weight.double() * 2.0 ** -IN_SHIFT  # per integer input
    b1 = model.l1.bias.double()
    e1 = _exponent(255, max(peaks[0], 1e-6)) + finer[0]
    e2 = _exponent(255, max(peaks[1], 1e-6)) + finer[1]
    W2 = model.l2.weight.double() * 2.0 ** -e1  # per integer h1
    b2 = model.l2.bias.double()
    w3 = model.l3.weight.double()[0]

    def scale(W, b, e=None):
        """The largest p with round(W 2**p), round(b 2**p) inside the bounds, and those integers; for a hidden
        layer (its activations' exponent e given) with ``rounding``, the bias plus half of the step 2**(p - e)."""
        p = min(_exponent(L.WEIGHT_MAX, float(W.abs().max())),
                _exponent(L.SUM_LIMIT - 1, float((b.abs() + 255 * W.abs().sum(1)).max())))
        while True:
            Wq, bq = torch.round(W * 2.0 ** p).long(), torch.round(b * 2.0 ** p).long()
            if rounding and e is not None and p - e > 0:
                bq = bq + (1 << (p - e - 1))
            if int(Wq.abs().max()) <= L.WEIGHT_MAX and int((bq.abs() + 255 * Wq.abs().sum(1)).max()) < L.SUM_LIMIT:
                return p, Wq, bq
            p -= 1

    p1, W1q, b1q = scale(W1, b1, e1)
    p2, W2q, b2q = scale(W2, b2, e2)
    _, w3q, _ = scale(w3[None, :], torch.zeros(1, dtype=torch.float64))
    s1, s2 = p1 - e1, p2 - e2
    if not (0 <= s1 <= L.MAX_SHIFT and 0 <= s2 <= L.MAX_SHIFT):
        raise ValueError(f"cannot quantise: shifts {s1}, {s2} outside [0, {L.MAX_SHIFT}]")
    return L.LearnedNet(W1q.numpy(), b1q.numpy(), s1, W2q.numpy(), b2q.numpy(), s2, w3q[0].numpy())


def float_net(model: SlotNet) -> D.FloatNet:
    """``model`` itself as a policy for :func:`gpupage.zoo.learned_dagger.float_faults` (float32, not the spec)."""
    return D.FloatNet(model.l1.weight.detach().numpy() * 2.0 ** -IN_SHIFT, model.l1.bias.detach().numpy(),
                      model.l2.weight.detach().numpy(), model.l2.bias.detach().numpy(),
                      model.l3.weight.detach().numpy()[0])


def _pool_add(pool: dict, feats: np.ndarray, dist: np.ndarray, K: np.ndarray, decisions: np.ndarray):
    """Append each lane's decisions to the pool's group of its K (trimmed to that K's slots)."""
    rows = np.repeat(K, decisions)
    for k in np.unique(K):
        sel = rows == k
        if not sel.any():  # a size whose lanes never evicted: no group (fit cycles through each group's rows)
            continue
        f, d = torch.from_numpy(feats[sel, :k]), torch.from_numpy(dist[sel, :k])
        if k in pool:
            f, d = torch.cat([pool[k][0], f]), torch.cat([pool[k][1], d])
        pool[int(k)] = (f, d)


def _pool_trim(pool: dict, limit: int):
    """Keep the most recent decisions, at most ``limit`` over all groups, in proportion."""
    total = sum(d.shape[0] for _, d in pool.values())
    if total > limit:
        for k, (f, d) in pool.items():
            keep = d.shape[0] * limit // total
            pool[k] = (f[-keep:], d[-keep:])


class Validation:
    """The nine :data:`VARIANTS` at each of ``Ks``, ``lanes`` seeds from ``seed`` each: ``self(net)`` is the mean over
    (variant, K) of the network's excess faults over the best of :data:`BASELINES` there, in % of that baseline's."""

    def __init__(self, Ks, lanes: int, seed: int):
        from ..core.simulate import simulate

        seeds = list(range(seed, seed + lanes))
        variants = [zipf_traces(ZipfParams(**over), seed=seeds).numpy() for _, over in VARIANTS]
        groups = [(t, K) for t in variants for K in Ks]
        self.traces = torch.from_numpy(_stack_padded([t for t, _ in groups]))
        self.K = torch.tensor([K for _, K in groups]).repeat_interleave(lanes)
        self.groups, self.lanes = len(groups), lanes
        self.best = torch.stack([self._totals(simulate(self.traces, b, self.K).faults) for b in BASELINES]).min(0).values

    def _totals(self, faults: torch.Tensor) -> torch.Tensor:
        return faults.reshape(self.groups, self.lanes).sum(1)

    def __call__(self, net: L.LearnedNet) -> float:
        from ..core.simulate import simulate

        mine = self._totals(simulate(self.traces, "learned", self.K, options={"checkpoint": net}).faults)
        return float((mine.double() / self.best.double() - 1).mean()) * 100


def train(cfg: TrainConfig, log=None, keep=None) -> tuple[SlotNet, L.LearnedNet, dict]:
    """Behaviour cloning + DAgger, then the export.  ``log(round, info)`` after each round;
    ``keep(float weights, integer network, report)`` after each round with what the run would return if it
    stopped there (the best round on validation so far, else the last; no quantisation check yet), so that an
    interrupted run's caller can still write its finished rounds.

    Returns (float model, integer network, report: per round and the quantisation check)."""
    for name in ("lanes", "epochs", "batch_size", "max_decisions", "check_lanes", "threads", "window", "stride",
                 "density_sizes"):
        limits.check_int(name, getattr(cfg, name), 1)
    for name in ("rounds", "candidates", "far_horizon", "teacher_horizon", "dead_age", "seed_start", "check_seed",
                 "val_seed", "torch_seed"):
        limits.check_int(name, getattr(cfg, name), 0)
    if not cfg.Ks or len(cfg.hidden) != 2:
        raise ValueError(f"Ks must name a cache size and hidden two widths, got {cfg.Ks} and {cfg.hidden}")
    for k in cfg.Ks:
        limits.check_int("a cache size in Ks", k, 1)
    for h in cfg.hidden:
        limits.check_int("a hidden width", h, 1, L.MAX_HIDDEN)
    limits.check_number("beta", cfg.beta, 0, 1)
    limits.check_number("lr", cfg.lr, 0, lo_open=True)
    for name in ("weight_decay", "rank_coef", "variant_frac"):
        limits.check_number(name, getattr(cfg, name), 0, 1 if name == "variant_frac" else None)
    limits.check_number("rank_tau", cfg.rank_tau, 0, lo_open=True)
    if cfg.tie_rule not in ("any", "lru"):
        raise ValueError(f"tie_rule must be 'any' or 'lru', got {cfg.tie_rule!r}")
    if cfg.hard_weight <= 0 or (cfg.hard_weight != 1 and cfg.tie_rule != "lru"):
        raise ValueError(f"hard_weight must be > 0, and 1 unless tie_rule is 'lru', got {cfg.hard_weight}")
    if not 0 < cfg.calib_quantile <= 1:
        raise ValueError(f"calib_quantile must be in (0, 1], got {cfg.calib_quantile}")
    if cfg.teacher not in ("belady", "latent_min", "hit_density", "lfu_mru"):
        raise ValueError(f"teacher must be 'belady', 'latent_min', 'hit_density' or 'lfu_mru', got {cfg.teacher!r}")
    if cfg.teacher == "hit_density" and not cfg.trace_file:
        raise ValueError("teacher 'hit_density' needs a trace file")
    if cfg.teacher_acts and cfg.teacher not in ("hit_density", "lfu_mru"):
        raise ValueError(f"teacher_acts needs a table teacher ('hit_density' or 'lfu_mru'), got {cfg.teacher!r}")
    if cfg.dead_age and cfg.teacher != "lfu_mru":
        raise ValueError(f"dead_age is the lfu_mru teacher's: 0 with teacher {cfg.teacher!r}")
    if cfg.density_sizes != 1 and cfg.teacher != "hit_density":
        raise ValueError(f"density_sizes is the hit-density teacher's: 1 with teacher {cfg.teacher!r}")
    if cfg.val_lanes < 0 or (cfg.val_lanes and cfg.trace_file):
        raise ValueError(f"val_lanes must be >= 0, and 0 with a trace file, got {cfg.val_lanes}")
    if cfg.teacher == "latent_min" and (cfg.trace_file or cfg.candidates or cfg.stride != 1 or cfg.far_horizon
                                        or cfg.teacher_horizon < 1):
        raise ValueError("teacher 'latent_min' needs Zipf lanes, every slot, every decision, no far_horizon "
                         "and teacher_horizon >= 1")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.torch_seed)
    gen = torch.Generator().manual_seed(cfg.torch_seed)
    model = SlotNet(tuple(cfg.hidden))
    pool: dict = {}
    report = {"rounds": []}
    net = None
    part = training_part(cfg) if cfg.trace_file else None
    tables = None  # the table teachers' rankings, per K
    if cfg.teacher == "hit_density":
        tables = {k: hit_density.bagged(part[0], k, cfg.density_sizes) for k in cfg.Ks}
    elif cfg.teacher == "lfu_mru":
        tables = {k: hit_density.lfu_mru(dead_age=cfg.dead_age * k) for k in cfg.Ks}
    acting = {k: hit_density.ranks(t) for k, t in tables.items()} if cfg.teacher_acts else None  # per K, once
    validation = Validation(cfg.Ks, cfg.val_lanes, cfg.val_seed) if cfg.val_lanes else None
    kept = None  # (validation excess, round, float weights, integer network) of the best round so far
    for rnd in range(cfg.rounds + 1):
        start = time.time()
        seeds = np.arange(cfg.lanes) + cfg.seed_start + rnd * cfg.lanes
        traces, K = (trace_batch(part, cfg.seed_start + rnd, cfg.lanes, cfg) if part
                     else lane_batch(seeds, cfg.Ks, cfg.variant_frac))
        beta = 1.0 if rnd == 0 else cfg.beta * 0.5 ** (rnd - 1)
        if cfg.teacher == "latent_min":
            feats, dist, faults, decisions, t, ids = D.collect(traces, K, net, beta, seeds, return_ids=True)
            value = latent_values(seeds, cfg.Ks, cfg.variant_frac, K, decisions, t, ids, cfg.teacher_horizon)
            dist = np.where(value >= 0, (1 << 40) - value, -1)  # the loss's 'farthest': the fewest expected requests
        else:
            teacher = (hit_density.CLASS_OF_L, np.stack([acting[int(k)] for k in K])) if acting else None
            feats, dist, faults, decisions = D.collect(traces, K, net, beta, seeds, cfg.candidates, cfg.stride,
                                                       teacher=teacher)
            if tables is not None:
                dist = density_targets(tables, feats, dist, np.repeat(K, -(-decisions // cfg.stride)))
        _pool_add(pool, feats, dist, K, -(-decisions // cfg.stride))
        _pool_trim(pool, cfg.max_decisions)
        if not any(d.shape[0] for _, d in pool.values()):  # nothing to fit, and a schedule of 0 steps divides by 0
            raise ValueError(f"no eviction to learn from: no lane of {traces.shape[1]} requests overflows a cache of "
                             f"K = {', '.join(map(str, cfg.Ks))} (use a longer --window or a smaller --K)")
        collect_s = time.time() - start
        loss = fit(model, pool, cfg, gen)
        calib = torch.cat([f.reshape(-1, L.N_IN) for f, _ in pool.values()])
        net = quantise(model, calib, cfg.calib_quantile)
        info = {"round": rnd, "beta": beta, "decisions": int(sum(d.shape[0] for _, d in pool.values())),
                "rollout_faults": int(faults.sum()), "loss": loss, "collect_s": collect_s,
                "fit_s": time.time() - start - collect_s}
        if validation is not None:
            info["val_excess_pct"] = validation(net)
            if kept is None or info["val_excess_pct"] < kept[0]:
                kept = (info["val_excess_pct"], rnd, {k: v.clone() for k, v in model.state_dict().items()}, net)
        report["rounds"].append(info)
        if log is not None:
            log(rnd, info)
        if keep is not None:
            so_far = {**report, "rounds": list(report["rounds"]), **({"kept_round": kept[1]} if kept else {})}
            keep(kept[2] if kept else {k: v.clone() for k, v in model.state_dict().items()},
                 kept[3] if kept else net, so_far)
    if kept is not None:
        report["kept_round"] = kept[1]
        model.load_state_dict(kept[2])
        net = kept[3]
    report["check"] = quantisation_check(model, net, cfg, part)
    return model, net, report


def quantisation_check(model: SlotNet, net: L.LearnedNet, cfg: TrainConfig, part=None) -> dict:
    """Faults of the float model and of its integer export on held-out lanes (seeds from
    ``check_seed``): the randomised family and the App. B defaults at each K; with a training
    ``part`` of a trace file, its windows of seed ``check_seed`` instead."""
    from ..core.simulate import simulate

    if part is not None:
        traces, K = trace_batch(part, cfg.check_seed, cfg.check_lanes, cfg)
        out = {"windows": _pair(model, net, traces, K, cfg.candidates)}
        out["windows"]["belady"] = int(simulate(torch.from_numpy(traces), "belady", torch.from_numpy(K)).faults.sum())
        return out
    seeds = np.arange(cfg.check_lanes) + cfg.check_seed
    traces, K = lane_batch(seeds, cfg.Ks)
    out = {"randomised": _pair(model, net, traces, K)}
    default = zipf_traces(ZipfParams(), seed=seeds.tolist()).numpy()
    for k in cfg.Ks:
        out[f"default_K{k}"] = _pair(model, net, default, np.full(len(seeds), k))
    belady = simulate(torch.from_numpy(traces), "belady", torch.from_numpy(K)).faults
    out["randomised"]["belady"] = int(belady.sum())
    return out


def _pair(model, net, traces, K, candidates: int = 0) -> dict:
    from ..core.simulate import simulate

    opts = {"checkpoint": net, **({"candidates": candidates} if candidates else {})}
    quant = simulate(torch.from_numpy(traces), "learned", torch.from_numpy(K), options=opts).faults
    flt = D.float_faults(traces, K, float_net(model), candidates)
    return {"float": int(flt.sum()), "integer": int(quant.sum()),
            "relative": float(quant.sum()) / max(float(flt.sum()), 1.0) - 1.0}


def train_to(out, cfg: TrainConfig, command: str, log=None) -> tuple[L.LearnedNet, dict]:
    """:func:`train`, then its :func:`checkpoint` written to ``out`` atomically; returns (network, report).

    Finished rounds are never lost: a run stopped by Ctrl-C, SIGTERM or an error after its first round writes
    what those rounds would ship (the best round on validation so far, else the last; no quantisation check;
    ``report["interrupted_after_round"]``) before the exception goes on.  An existing ``out`` is refused."""
    import os

    from ..core.results import atomic_path

    if os.path.exists(out):
        raise ValueError(f"{out} exists; remove it or choose another --out")

    last = []  # (float weights, integer network, report) of the rounds finished so far

    def keep(*so_far):
        last[:] = so_far

    def save(model, net, report):
        report["seconds"] = round(time.time() - start, 1)
        with atomic_path(out) as tmp:
            torch.save(checkpoint(model, net, cfg, report, command), tmp)

    start = time.time()
    try:
        model, net, report = train(cfg, log=log, keep=keep)
    except BaseException:
        if last:
            weights, net, report = last
            model = SlotNet(tuple(cfg.hidden))
            model.load_state_dict(weights)
            save(model, net, {**report, "interrupted_after_round": len(report["rounds"]) - 1})
        raise
    save(model, net, report)
    return net, report


def checkpoint(model: SlotNet, net: L.LearnedNet, cfg: TrainConfig, report: dict, command: str) -> dict:
    """The learned-policy checkpoint: the integer network, plus the float weights, the config,
    the command and the training report as metadata."""
    meta = {"command": command, "config": asdict(cfg), "trained_K": list(cfg.Ks), "report": report,
            "float_state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "hidden": list(cfg.hidden), "in_shift": IN_SHIFT}
    meta["config"]["hidden"] = list(cfg.hidden)
    meta["config"]["Ks"] = list(cfg.Ks)
    return L.checkpoint_dict(net, meta)


def _field_docs() -> dict:
    """{field: the first sentence of its docstring} of :class:`TrainConfig`, for ``--help``."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(TrainConfig)).body[0].body
    return {a.target.id: d.value.value.split(". ")[0].replace("%", "%%") for a, d in zip(body, body[1:])
            if isinstance(a, ast.AnnAssign) and isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant)}


def main(argv=None) -> int:
    """``python -m gpupage.controller.slotnet --out PATH [--lanes N ...]``: train, export, save the checkpoint
    (one option per :class:`TrainConfig` field) and print the report.  Bad input is a one-line error (exit 2);
    an existing ``--out`` is never overwritten, and the checkpoint appears whole: when the run completes, or with
    its finished rounds' network when it is interrupted (:func:`train_to`)."""
    import argparse
    import json
    import sys
    from dataclasses import fields

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, without the long usage
            self.exit(2, f"{self.prog}: error: {message}\n")

    def int_list(text):
        return tuple(int(v) for v in text.split(","))

    def boolean(text):  # bool("False") is True
        if text.lower() not in ("true", "1", "false", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "1")

    def kind(default):
        return int_list if isinstance(default, tuple) else boolean if isinstance(default, bool) else type(default)

    ap = Parser(prog="python -m gpupage.controller.slotnet",
                description="Train the learned policy's network (behaviour cloning + DAgger).")
    ap.add_argument("--out", required=True, help="checkpoint path (must not exist)")
    docs = _field_docs()
    for f in fields(TrainConfig):
        default = getattr(TrainConfig, f.name)
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind(default), default=default,
                        help=f"{docs.get(f.name, '')} (default: {default})")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    try:
        net, report = train_to(args.out, cfg, "python -m gpupage.controller.slotnet " + " ".join(argv),
                               log=lambda r, info: print(json.dumps(info), flush=True))
    except (ValueError, OSError) as exc:  # bad input, said in the library's words
        ap.error(str(exc).splitlines()[0])
    print(json.dumps({"check": report["check"], "seconds": report["seconds"], "kept_round": report.get("kept_round"),
                      "macs_per_decision_K8": net.macs_per_decision(8)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

