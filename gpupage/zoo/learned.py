"""``learned``: a small integer network scores each resident slot on its own; the lowest score goes.

Specification, version 2 (``SPEC_VERSION``)
===========================================

Every backend -- the numba CPU path below, the Triton kernel ``kernels/learned.py`` and the
plain-Python reference :func:`naive_learned` -- implements exactly this text, in integers only,
so all three make the same decision at every fault, bit for bit.  The registry's contract
holds (``gpupage/policies.py``): demand paging with forced insertion, a cold fill takes the
lowest empty slot, a faulting block takes its victim's slot, ties go to the least recently
accessed block.  Times are request indices t (pads count, and do nothing); T < 2**30.

**State** (per lane):

* per block x, surviving eviction: ``count[x]`` accesses so far, ``last_use[x]`` time of its
  last access, ``gap[x]`` its last reuse gap (0 until it is requested a second time) and, for
  each half-life h of ``HALF_LIVES`` = (16, 128, 1024), ``dc_h[x]``: its decayed access count
  in units of 2**-16, as of ``last_use[x]``.  All start at 0.
* per resident slot: its block, ``ins`` (time of insertion), ``hits`` (hits since insertion).
* context: ``fc_h`` decayed count of faults (cold fills included) and ``nc_h`` decayed count
  of novel requests (a block's first request), each with the time of its last event; 0 at 0.
* ``adaptive``'s change detector (:mod:`gpupage.zoo.heuristics`, its default constants
  NOVEL_GAP 200, NOVEL_GAIN 8, CALM_DECAY 1, ALARM 16, REFRACTORY 50, STALE 100, SUSPECT 8):
  per block an *epoch* count (accesses since the last declared change) and a *candidate*
  count (accesses since the CUSUM last left 0), reset lazily by generation stamps; per lane
  the CUSUM level S, ``resume`` (detection pauses while t < resume) and ``t_change``, the time
  of the last declared change (0 before the first).

**Decay**, for h a power of two: ``D_h(dt) = FRAC_h[dt & (h-1)] >> min(dt >> log2 h, 17)``
with ``FRAC_h[r] = floor(2**16 * 2**(-r/h))`` (a host table, computed once in float64, like
the Zipf thresholds).  An event at t on a counter c last touched at t_c sets
``c = ((c * D_h(t - t_c)) >> 16) + 2**16``; its value at t is ``V_h(c) = (c * D_h(t - t_c)) >> 16``.
The products need 64 bits; every counter and value stays below 2**31.

**Request** t of block x:

0. ``adaptive``'s access, exactly ``heuristics.access``: x is *novel* when ``count[x] == 0`` or
   ``last_use[x] <= t - NOVEL_GAP`` (both before step 3); both of x's counts grow by 1; if
   t >= resume, S grows by 8 when novel and shrinks by 1 otherwise; at S <= 0, S = 0 and the
   candidate restarts; at S >= 16 the candidate becomes the epoch, a new candidate starts,
   S = 0, resume = t + 50 and t_change = t.  So a decision at t sees request t here, as
   ``adaptive``'s own victim choice does.
1. A fault (x not resident) is an event of every ``fc_h`` at t; a novel request
   (``count[x] == 0``) is an event of every ``nc_h`` at t.
2. A hit decides nothing.  A fault with n < K filled slots takes slot n.  A fault on a full
   cache is a *decision* (below); x takes the victim's slot.
3. Then x's state: ``gap[x] = t - last_use[x]`` if ``count[x] > 0``; each ``dc_h[x]`` has an
   event at t; ``count[x] += 1``; ``last_use[x] = t``.  Its slot: ``hits += 1`` on a hit,
   ``ins = t, hits = 0`` on insertion.

**Features** at a decision at time t, each in [0, 255].  ``L(v)`` for 0 <= v < 2**31 is
Mitchell's log2 with 3 fractional bits: u = v + 1, e = floor(log2 u), ``L(v) = 8 e + f`` where f
is the 3 bits of u below its leading one (``(u >> (e-3)) & 7``, or ``(u << (3-e)) & 7`` when
e < 3); so L(0) = 0, L(1) = 8, L(2) = 12, L(2**31 - 1) = 248.  ``R_h(c) = min((V_h(c) * RM_h) >> 24, 255)``
with ``RM_h = round(2**16 (1 - 2**(-1/h)))`` is the recent rate per request times 256.
Per slot s holding block b:

* 0 ``L(t - last_use[b])`` recency, 1 ``L(t - ins)`` age, 2 ``L(hits)``, 3 ``L(count[b])``,
  4 ``L(gap[b])``, 5-7 ``L(V_h(dc_h[b]) >> 10)`` for h = 16, 128, 1024;
* 8 ``min(P, 255)`` with P b's epoch count when ``last_use[b] >= t - STALE``, else 0
  (``adaptive``'s priority), 9 ``min(c, 255)`` with c b's candidate count, 10 255 when
  S >= SUSPECT and b's candidate count is not 0 (``adaptive``'s protection), else 0;

and the context, the same for every slot: 11-13 ``R_h(fc_h)``, 14-16 ``R_h(nc_h)``, 17 ``L(K)``,
18 ``min(16 S, 255)``, 19 ``L(t - t_change)``.  No feature compares slots, and none depends on
the trace length.  ``FEATURES`` names them; a checkpoint whose feature list differs is refused,
except that a version-1 checkpoint (features 0-7 and 11-17) loads with zero weights on the
others, so it makes the decisions it made under version 1.  A network reading only features 8
and 10 as ``P + 256 [protected]`` is ``adaptive`` exactly while epoch counts stay below 256.

**Network** (weights from the checkpoint), inputs x_0..x_19:

* ``h1_j = min(max((b1_j + sum_i W1[j,i] x_i) >> s1, 0), 255)`` for j < H1,
* ``h2_m = min(max((b2_m + sum_j W2[m,j] h1_j) >> s2, 0), 255)`` for m < H2,
* ``score = sum_m w3_m h2_m``.

Weights are int16 (|w| <= 32767), shifts 0..30, H1, H2 <= 32, and every unit's bias and weights
satisfy ``|b| + 255 * sum |w| < 2**24`` (the output's: ``255 * sum |w3| < 2**24``).  So every
partial sum, in any order, is an integer below 2**24 in magnitude: int32 arithmetic is exact,
and so is float32 arithmetic (the CPU path's, for its vector FMAs).  ``>>`` is the arithmetic
(flooring) shift, the same in numba, Python and Triton (unlike ``//`` and ``%``).

**Victim**: the smallest (score, last access) among the candidates: every resident slot, or
with option ``candidates=C`` the C least recently accessed ones (all when C >= K).

Cost per decision: ``11 H1 + H1 H2 + H2`` multiply-adds per scored slot, plus ``9 H1`` for the
context's share of the first layer (the same for every slot, computed once); per request O(1).
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import leading_zeros

from ..core import rng
from ..core.limits import MAX_BLOCKS
from ..core.cpu import alloc_outputs, cpu_result, lane_chunks, lane_row, max_k
from ..core.io import hash_slot
from .heuristics import FAR_PAST, resolve_params
from .heuristics import access as ada_access
from .heuristics import forget as ada_forget
from .heuristics import standing as ada_standing

SPEC_VERSION = 2
FORMAT = "gpupage-learned-1"  # the file format; the spec version is recorded apart
HALF_LIVES = (16, 128, 1024)
LOG2_HALF_LIVES = (4, 7, 10)
FRAC_OFFSETS = (0, 16, 144)  # where each half-life's FRAC_h starts in the flat table
ONE = 1 << 16
MAX_DECAY_SHIFT = 17  # 2**16 >> 17 == 0: a count this old has decayed to nothing
FEATURES = ("recency", "age", "hits", "count", "gap", "decayed_16", "decayed_128", "decayed_1024",
            "epoch", "candidate", "protected",
            "fault_rate_16", "fault_rate_128", "fault_rate_1024", "novel_rate_16", "novel_rate_128",
            "novel_rate_1024", "log2_k", "cusum", "since_change")
N_SLOT = 11  # features 0..10 are per slot; the rest are the context
FEATURES_V1 = FEATURES[:8] + FEATURES[11:18]  # a version-1 checkpoint's inputs, widened on load
N_IN = len(FEATURES)
MAX_HIDDEN = 32
WEIGHT_MAX = 32767
SUM_LIMIT = 1 << 24  # |b| + 255 * sum |w| stays below this: sums are exact in int32 and float32
MAX_SHIFT = 30
MAX_T = 1 << 30
N_LEVELS = 249  # the values of L(v) for v < 2**31: 0..248
ADA = resolve_params(None)  # adaptive's default constants, the change detector's in features 8-10 and 18-19


def decay_fracs() -> np.ndarray:
    """int64 [sum(HALF_LIVES)]: FRAC_h[r] = floor(2**16 * 2**(-r/h)), one block per half-life."""
    return np.concatenate([np.floor(ONE * np.exp2(-np.arange(h, dtype=np.float64) / h)) for h in HALF_LIVES]
                          ).astype(np.int64)


def rate_muls() -> np.ndarray:
    """int64 [len(HALF_LIVES)]: RM_h = round(2**16 * (1 - 2**(-1/h)))."""
    return np.array([round(ONE * (1 - 2 ** (-1 / h))) for h in HALF_LIVES], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# The network and its checkpoint


class LearnedNet:
    """The integer network of the specification (weights as int32 arrays, shaped like torch's Linear)."""

    def __init__(self, W1, b1, s1, W2, b2, s2, w3):
        self.W1 = np.ascontiguousarray(W1, dtype=np.int32)  # [H1, N_IN]
        self.b1 = np.ascontiguousarray(b1, dtype=np.int32)  # [H1]
        self.W2 = np.ascontiguousarray(W2, dtype=np.int32)  # [H2, H1]
        self.b2 = np.ascontiguousarray(b2, dtype=np.int32)  # [H2]
        self.w3 = np.ascontiguousarray(w3, dtype=np.int32).reshape(-1)  # [H2]
        self.s1, self.s2 = int(s1), int(s2)
        self._check()

    @property
    def hidden(self) -> tuple[int, int]:
        return self.W1.shape[0], self.W2.shape[0]

    def _check(self):
        H1, H2 = self.W1.shape[0], self.W2.shape[0]
        if not (self.W1.shape == (H1, N_IN) and self.b1.shape == (H1,) and self.W2.shape == (H2, H1)
                and self.b2.shape == (H2,) and self.w3.shape == (H2,) and 1 <= H1 <= MAX_HIDDEN
                and 1 <= H2 <= MAX_HIDDEN):
            raise ValueError(f"learned network: inconsistent shapes W1 {self.W1.shape}, W2 {self.W2.shape}, "
                             f"w3 {self.w3.shape} (need W1 [H1, {N_IN}], W2 [H2, H1], H1, H2 <= {MAX_HIDDEN})")
        for name in ("W1", "W2", "w3"):
            if np.abs(getattr(self, name)).max() > WEIGHT_MAX:
                raise ValueError(f"learned network: {name} exceeds int16 (|w| <= {WEIGHT_MAX})")
        for name, W, b in (("layer 1", self.W1, self.b1), ("layer 2", self.W2, self.b2),
                           ("output", self.w3[None, :], np.zeros(1))):
            if (np.abs(b.astype(np.int64)) + 255 * np.abs(W.astype(np.int64)).sum(1)).max() >= SUM_LIMIT:
                raise ValueError(f"learned network: {name} can reach 2**24 (|b| + 255 sum |w| must stay below)")
        if not (0 <= self.s1 <= MAX_SHIFT and 0 <= self.s2 <= MAX_SHIFT):
            raise ValueError(f"learned network: shifts must be in [0, {MAX_SHIFT}], got {self.s1}, {self.s2}")

    def cpu_args(self) -> tuple:
        """What the numba path reads: float32 weights, layer 1 as [in, out] split into its slot
        and context parts, and each shift as the factor 2**-s (exact; see the specification)."""
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        W1t = self.W1.T
        return (f32(W1t[:N_SLOT]), f32(W1t[N_SLOT:]), f32(self.b1), np.float32(2.0 ** -self.s1),
                f32(self.W2), f32(self.b2), np.float32(2.0 ** -self.s2), f32(self.w3))

    def macs_per_decision(self, K: int) -> int:
        H1, H2 = self.hidden
        return K * (N_SLOT * H1 + H1 * H2 + H2) + (N_IN - N_SLOT) * H1

    def to_dict(self) -> dict:
        import torch

        t = lambda a, dt: torch.from_numpy(np.asarray(a)).to(dt)  # noqa: E731
        return {"W1": t(self.W1, torch.int16), "b1": t(self.b1, torch.int32), "s1": self.s1,
                "W2": t(self.W2, torch.int16), "b2": t(self.b2, torch.int32), "s2": self.s2,
                "w3": t(self.w3, torch.int16)}


def checkpoint_dict(net: LearnedNet, meta: dict | None = None) -> dict:
    """The checkpoint of ``net``: plain types and integer tensors (``torch.load(weights_only=True)``)."""
    return {"format": FORMAT, "spec_version": SPEC_VERSION, "features": list(FEATURES), "network": net.to_dict(),
            "meta": dict(meta or {})}


def is_checkpoint(path) -> bool:
    """Whether the file at ``path`` is a learned-policy checkpoint (of any spec version)."""
    from ..core.results import checkpoint_format

    return checkpoint_format(path) == FORMAT


def load_network(source) -> LearnedNet:
    """The integer network of a checkpoint: a path, a checkpoint dict or a :class:`LearnedNet`.

    Raises a one-line ValueError (OSError for a missing file) for anything that is not a
    learned-policy checkpoint of this specification."""
    if isinstance(source, LearnedNet):
        return source
    name = "checkpoint"
    if isinstance(source, (str, os.PathLike)):
        import torch

        name = str(source)
        if not os.path.isfile(name):
            raise OSError(f"no checkpoint at {name}")
        try:
            source = torch.load(name, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise ValueError(f"{name}: not a learned-policy checkpoint ({type(exc).__name__})") from None
    if not isinstance(source, dict) or source.get("format") != FORMAT:
        found = source.get("format") if isinstance(source, dict) else type(source).__name__
        raise ValueError(f"{name}: not a learned-policy checkpoint (format {found!r}, expected {FORMAT!r})")
    version = source.get("spec_version")
    features = {1: FEATURES_V1, SPEC_VERSION: FEATURES}.get(version)
    if features is None:
        raise ValueError(f"{name}: exported for learned spec version {version}, "
                         f"this gpupage implements versions 1 and {SPEC_VERSION}")
    if list(source.get("features", ())) != list(features):
        raise ValueError(f"{name}: its features {source.get('features')} differ from version {version}'s "
                         f"{list(features)}")
    w = source.get("network")
    try:
        W1, b1, s1, W2, b2, s2, w3 = (np.asarray(w[k]) for k in ("W1", "b1", "s1", "W2", "b2", "s2", "w3"))
    except (KeyError, TypeError):
        raise ValueError(f"{name}: learned checkpoint without a complete network") from None
    if version == 1 and W1.ndim == 2 and W1.shape[1] == len(FEATURES_V1):
        wide = np.zeros((W1.shape[0], N_IN), dtype=W1.dtype)
        wide[:, [FEATURES.index(f) for f in FEATURES_V1]] = W1
        W1 = wide
    return LearnedNet(W1, b1, s1, W2, b2, s2, w3)


def policy_options(options: dict | None) -> tuple[LearnedNet, int]:
    """(network, candidates or 0 for all) from ``options``: ``checkpoint`` (path, dict or
    :class:`LearnedNet`, required) and ``candidates`` (int >= 1)."""
    opts = options or {}
    if opts.get("checkpoint") is None:
        raise ValueError("policy 'learned' needs a checkpoint: options={'checkpoint': PATH} (--checkpoint PATH)")
    cand = opts.get("candidates")
    if cand is None:
        cand = 0
    elif isinstance(cand, bool) or not isinstance(cand, (int, np.integer)) or not 1 <= cand <= MAX_BLOCKS:
        raise ValueError(f"learned: candidates must be an integer in [1, 2**31], got {cand!r}")
    return load_network(opts["checkpoint"]), int(cand)


# ----------------------------------------------------------------------------------------------
# numba CPU path


@njit(inline="always", cache=True)
def log2fx(v):
    """L(v): floor(8 log2(v + 1)) in Mitchell's approximation (v >= 0, < 2**31): 8 e plus the 3 bits
    below u = v + 1's leading one, e = floor(log2 u) from a count of leading zeros (no branches)."""
    u = np.int64(v) + 1
    e = 63 - np.int64(leading_zeros(u))
    return 8 * e + (((u << 3) >> e) & 7)


@njit(inline="always", cache=True)
def _decay(frac, h, dt):
    """D_h(dt) for half-life index h."""
    lh = LOG2_HALF_LIVES[h]
    q = dt >> lh
    if q > MAX_DECAY_SHIFT:
        q = MAX_DECAY_SHIFT
    return frac[FRAC_OFFSETS[h] + (dt & ((1 << lh) - 1))] >> q


@njit(inline="always", cache=True)
def _event(c, tc, t, frac, h):
    """Counter c (last event at tc) after an event at t."""
    return ((c * _decay(frac, h, t - tc)) >> 16) + ONE


@njit(inline="always", cache=True)
def _context(t, k, fc, fct, nc, nct, frac, rmul, S, t_change, g):
    """The context features 11..19 into g[0:9]."""
    for h in range(3):
        v = (fc[h] * _decay(frac, h, t - fct)) >> 16
        g[h] = min((v * rmul[h]) >> 24, 255)
        v = (nc[h] * _decay(frac, h, t - nct)) >> 16
        g[3 + h] = min((v * rmul[h]) >> 24, 255)
    g[6] = log2fx(k)
    g[7] = min(16 * S, 255)
    g[8] = log2fx(t - t_change)


@njit(inline="always", cache=True)
def _slot_features(t, s, blk, last, ins, hits, count, gap, dc, frac, acnt, astamp, clock, f):
    """Features 0..10 of slot s into f[0:11] (clock: adaptive's, see heuristics.access)."""
    b = blk[s]
    dt = t - last[s]
    f[0] = log2fx(dt)
    f[1] = log2fx(t - ins[s])
    f[2] = log2fx(hits[s])
    f[3] = log2fx(count[b])
    f[4] = log2fx(gap[b])
    for h in range(3):
        f[5 + h] = log2fx(((dc[b, h] * _decay(frac, h, dt)) >> 16) >> 10)
    p, touched = ada_standing(t, b, last[s], ADA[5], acnt, astamp, clock)
    f[8] = min(p, 255)
    f[9] = min(acnt[1 - clock[3], b], 255) if touched else 0
    f[10] = 255 if touched and clock[4] >= ADA[6] else 0


@njit(inline="always", cache=True)
def _score(f, W1s, b1g, k1, W2, b2, k2, w3, h1, exact):
    """The network's score of one slot from its features f[0:8]; b1g = b1 + the context's share.

    float32 throughout: every value is an integer below 2**24, so each operation is exact and
    ``floor(a * 2**-s)`` is ``a >> s`` (k1, k2 = 2**-s1, 2**-s2).  ``exact`` False: a float
    network (:class:`gpupage.zoo.learned_dagger.FloatNet`), ReLU only.  The second layer is H2 dot products,
    whose sums stay in registers."""
    H1 = b1g.shape[0]
    H2 = b2.shape[0]
    for j in range(H1):
        h1[j] = b1g[j]
    for i in range(N_SLOT):
        x = f[i]
        for j in range(H1):
            h1[j] += W1s[i, j] * x
    for j in range(H1):
        h1[j] = min(max(np.floor(h1[j] * k1), np.float32(0)), np.float32(255)) if exact else max(h1[j], np.float32(0))
    score = np.float32(0)
    for m in range(H2):
        a = b2[m]
        for j in range(H1):
            a += W2[m, j] * h1[j]
        h = min(max(np.floor(a * k2), np.float32(0)), np.float32(255)) if exact else max(a, np.float32(0))
        score += w3[m] * h
    return score


# A decision's slots share few distinct feature vectors (about 1 in 10 at K = 1024 to 4096 on the
# Mooncake and cloudPhysics traces), so the CPU path scores each distinct one once: a table keyed
# by the 11 slot features (8 bits each), whose entries count only within the decision that wrote
# them (a stamp).  Equal inputs give equal scores, so the decisions are unchanged.
MEMO_MAX = 1 << 16  # entries; a lane chunk's table: the power of two >= 4 x the slots scored, at most this
MEMO_PROBES = 8  # linear probes before a score is computed without the table
MEMO_FROM = 32  # decisions scoring fewer slots skip the table: few repeats there, and it costs ~30 % at K = 8
NO_ENTRY = (-1, np.uint64(0), np.uint64(0))


def memo_entries(K: np.ndarray, cand: int) -> int:
    """The table's entries for lanes of sizes K scoring ``cand`` candidates (0: every slot)."""
    scored = int(K.max(initial=1)) if cand == 0 else min(int(K.max(initial=1)), cand)
    n = 16
    while n < 4 * scored and n < MEMO_MAX:
        n *= 2
    return n


@njit(inline="always", cache=True)
def memo_find(tkey, tstamp, f, stamp):
    """(entry, key a, key b) for slot features f: the entry holding them this decision, or the free
    entry where they go (``tstamp[entry] != stamp``), or -1 when MEMO_PROBES entries are taken."""
    a = np.uint64(0)
    for q in range(8):
        a |= np.uint64(f[q]) << np.uint64(8 * q)
    b = np.uint64(0)
    for q in range(8, N_SLOT):
        b |= np.uint64(f[q]) << np.uint64(8 * (q - 8))
    mask = tstamp.shape[0] - 1
    i = hash_slot(a ^ (b << np.uint64(40)), mask)  # b has 24 bits; both words are compared below
    for _ in range(MEMO_PROBES):
        if tstamp[i] != stamp or (tkey[i, 0] == a and tkey[i, 1] == b):
            return i, a, b
        i = (i + 1) & mask
    return -1, a, b


@njit(inline="always", cache=True)
def _lru_move(s, lprev, lnext, ends):
    """Slot s to the most recently used end of the list (unlinked first when it is in it)."""
    if ends[1] == s:
        return
    p = lprev[s]
    q = lnext[s]
    if q >= 0 or p >= 0 or ends[0] == s:  # in the list
        if p >= 0:
            lnext[p] = q
        else:
            ends[0] = q
        if q >= 0:
            lprev[q] = p
        else:
            ends[1] = p
    lprev[s] = ends[1]
    lnext[s] = -1
    if ends[1] >= 0:
        lnext[ends[1]] = s
    else:
        ends[0] = s
    ends[1] = s


# fastmath: the network's float32 sums are exact in any order (see _score)
@njit(cache=True, fastmath=True)
def _run_lane(trace, k, cand, net, exact, frac, rmul, want, hits_row, victims_row,
              expert, nxt_row, mkey, beta_thr, ecls, erank, record, feat_out, dist_out, aux_out, row0,
              slot_of, count, last_use, gap, dc, alast, acnt, astamp, blk, last, ins, hits, snu, lprev, lnext, order,
              f, g, b1g, h1, tkey, tstamp, tscore, stamp):
    """One lane of the specification.  Returns (faults, decisions).

    ``expert``: DAgger collection (:mod:`gpupage.zoo.learned_dagger`) -- at each decision the expert acts when
    ``draw(mkey, decision) < beta_thr``, the network otherwise: Belady (farthest next use by ``nxt_row``), or
    with a table ``erank`` [C, N_LEVELS] (more than one column) the slot of largest ``erank[ecls[L(count)],
    L(age)]``, both with ties to the least recently accessed; with ``record`` r > 0 every r-th decision d's
    features go to ``feat_out[row0 + d // r]`` (all N_IN per candidate, in candidate order) and each candidate's
    next-use distance to ``dist_out`` (-1: no candidate), and when ``aux_out`` has more than one column the
    decision's time and each candidate's block to ``aux_out[row, 0]`` and ``aux_out[row, 1 + i]``; with ``cand``
    the expert too picks among the candidates."""
    W1s, W1g, b1, k1, W2, b2, k2, w3 = net
    T = trace.shape[0]
    H1 = b1.shape[0]
    use_list = 0 < cand < k
    by_table = erank.shape[1] > 1
    ends = np.full(2, -1, dtype=np.int64)
    fc = np.zeros(3, dtype=np.int64)
    nc = np.zeros(3, dtype=np.int64)
    fct = 0
    nct = 0
    clock = (0, 1, 2, 0, 0, 0)  # adaptive's (gen0, gen1, nextgen, cur, S, resume)
    t_change = 0
    n = 0
    faults = 0
    decisions = 0
    for t in range(T):
        x = trace[t]
        if x < 0:
            continue
        cur = clock[3]
        clock = ada_access(t, x, ADA, alast, acnt, astamp, clock)
        if clock[3] != cur:
            t_change = t
        s = slot_of[x]
        if s < 0:
            faults += 1
            for h in range(3):
                fc[h] = _event(fc[h], fct, t, frac, h)
            fct = t
            if count[x] == 0:
                for h in range(3):
                    nc[h] = _event(nc[h], nct, t, frac, h)
                nct = t
            if n < k:
                s = n
                n += 1
            else:
                # a decision: score the candidates
                m = k
                if use_list:
                    m = cand
                    c = ends[0]
                    for i in range(cand):
                        order[i] = c
                        c = lnext[c]
                else:
                    for i in range(k):
                        order[i] = i
                _context(t, k, fc, fct, nc, nct, frac, rmul, clock[4], t_change, g)
                stamp[0] += 1  # a new context: scores of earlier decisions no longer hold
                use_expert = expert and rng.draw(mkey, decisions) < beta_thr
                rec = record > 0 and decisions % record == 0
                row = row0 + decisions // max(record, 1)
                if rec or not use_expert:
                    for j in range(H1):
                        b1g[j] = b1[j]
                        for i in range(N_IN - N_SLOT):
                            b1g[j] += W1g[i, j] * g[i]
                best = -1
                best_score = np.float32(0)
                far = np.int64(-1)
                for i in range(m):
                    c = order[i]
                    if rec or not use_expert:
                        _slot_features(t, c, blk, last, ins, hits, count, gap, dc, frac, acnt, astamp, clock, f)
                    if rec:  # candidate i's row (slot i's when every slot is a candidate)
                        for q in range(N_SLOT):
                            feat_out[row, i, q] = f[q]
                        for q in range(N_IN - N_SLOT):
                            feat_out[row, i, N_SLOT + q] = g[q]
                        dist_out[row, i] = snu[c] - t
                        if aux_out.shape[1] > 1:
                            aux_out[row, 0] = t
                            aux_out[row, 1 + i] = blk[c]
                    if use_expert:
                        # Belady (farthest next use) or the table (largest rank), ties to the least recently accessed
                        r = erank[ecls[log2fx(count[blk[c]])], log2fx(t - last[c])] if by_table else snu[c]
                        if r > far or (r == far and last[c] < last[best]):
                            far = r
                            best = c
                    else:
                        e, ka, kb = memo_find(tkey, tstamp, f, stamp[0]) if m >= MEMO_FROM else NO_ENTRY
                        if e >= 0 and tstamp[e] == stamp[0]:
                            sc = tscore[e]
                        else:
                            sc = _score(f, W1s, b1g, k1, W2, b2, k2, w3, h1, exact)
                            if e >= 0:
                                tstamp[e] = stamp[0]
                                tkey[e, 0] = ka
                                tkey[e, 1] = kb
                                tscore[e] = sc
                        if best < 0 or sc < best_score or (sc == best_score and last[c] < last[best]):
                            best_score = sc
                            best = c
                s = best
                decisions += 1
                v = blk[s]
                slot_of[v] = -1
                if want:
                    victims_row[t] = v
            blk[s] = x
            slot_of[x] = s
            ins[s] = t
            hits[s] = 0
        else:
            hits[s] += 1
            if want:
                hits_row[t] = 1
        if count[x] > 0:
            gap[x] = t - last_use[x]
        for h in range(3):
            dc[x, h] = _event(dc[x, h], last_use[x], t, frac, h)
        count[x] += 1
        last_use[x] = t
        last[s] = t
        if expert:
            snu[s] = nxt_row[t]
        if use_list:
            _lru_move(s, lprev, lnext, ends)
    # leave the shared scratch clean for the next lane
    for t in range(T):
        x = trace[t]
        if x >= 0:
            slot_of[x] = -1
            count[x] = 0
            last_use[x] = 0
            gap[x] = 0
            for h in range(3):
                dc[x, h] = 0
    ada_forget(trace, alast, astamp)
    for i in range(k):
        lprev[i] = -1
        lnext[i] = -1
    return faults, decisions


@njit(parallel=True, cache=True)
def _batch(traces, K, cand, net, exact, frac, rmul, n_ids, want, hits, victims, faults, decisions,
           expert, nxt, mkeys, beta_thr, ecls, erank, record, feat_out, dist_out, aux_out, rows, nchunks, nmemo):
    B = K.shape[0]
    kmax = max_k(K)
    H1 = net[2].shape[0]
    for c in prange(nchunks):
        slot_of = np.full(n_ids, -1, dtype=np.int64)
        count = np.zeros(n_ids, dtype=np.int64)
        last_use = np.zeros(n_ids, dtype=np.int64)
        gap = np.zeros(n_ids, dtype=np.int64)
        dc = np.zeros((n_ids, 3), dtype=np.int64)
        alast = np.full(n_ids, FAR_PAST, dtype=np.int64)
        acnt = np.zeros((2, n_ids), dtype=np.int64)
        astamp = np.full((2, n_ids), -1, dtype=np.int64)
        blk = np.empty(kmax, dtype=np.int64)
        last = np.empty(kmax, dtype=np.int64)
        ins = np.empty(kmax, dtype=np.int64)
        hts = np.empty(kmax, dtype=np.int64)
        snu = np.empty(kmax, dtype=np.int64)
        lprev = np.full(kmax, -1, dtype=np.int64)
        lnext = np.full(kmax, -1, dtype=np.int64)
        order = np.empty(kmax, dtype=np.int64)
        f = np.empty(N_SLOT, dtype=np.float32)
        g = np.empty(N_IN - N_SLOT, dtype=np.float32)
        b1g = np.empty(H1, dtype=np.float32)
        h1 = np.empty(H1, dtype=np.float32)
        tkey = np.zeros((nmemo, 2), dtype=np.uint64)
        tstamp = np.zeros(nmemo, dtype=np.int64)
        tscore = np.zeros(nmemo, dtype=np.float32)
        stamp = np.zeros(1, dtype=np.int64)  # runs on over the chunk's lanes, so no entry outlives its decision
        for b in range(c * B // nchunks, (c + 1) * B // nchunks):
            row = b if want else 0
            nrow = b if expert else 0
            trow = b if erank.shape[0] > 1 else 0
            faults[b], decisions[b] = _run_lane(
                lane_row(traces, b), K[b], cand, net, exact, frac, rmul, want, hits[row], victims[row],
                expert, nxt[nrow], mkeys[b], beta_thr, ecls, erank[trow], record, feat_out, dist_out, aux_out, rows[b],
                slot_of, count, last_use, gap, dc, alast, acnt, astamp, blk, last, ins, hts, snu, lprev, lnext, order,
                f, g, b1g, h1, tkey, tstamp, tscore, stamp)


_FRAC = decay_fracs()
_RMUL = rate_muls()
_NO_TABLE = (np.zeros(1, dtype=np.int64), np.zeros((1, 1, 1), dtype=np.int64))  # the expert is Belady


def _check_length(T: int) -> None:
    if T >= MAX_T:
        raise ValueError(f"policy 'learned' handles T < 2**30, got {T}")


def simulate_cpu(traces: np.ndarray, policy, K: np.ndarray, rkeys: np.ndarray, n_ids: int,
                 return_hits: bool = False, options: dict | None = None):
    """``learned`` on the CPU, with the contract of :func:`gpupage.core.cpu.simulate_cpu`.

    ``options``: ``{"checkpoint": path | checkpoint dict | LearnedNet, "candidates": C}`` (see
    :func:`policy_options`).  Returns (faults int64 [B], hits uint8 [B, T] | None, victims int64 [B, T] | None).
    """
    net, cand = policy_options(options)
    B, T = len(K), traces.shape[1]
    _check_length(T)
    K = np.minimum(np.asarray(K, dtype=np.int64), max(T, 1))
    faults, hits, victims = alloc_outputs(B, T, return_hits)
    decisions = np.empty(B, dtype=np.int64)
    dummy = np.zeros((1, 1), dtype=np.int64)
    _batch(traces, K, cand, net.cpu_args(), True, _FRAC, _RMUL, max(n_ids, 1), return_hits, hits,
           victims, faults, decisions, False, dummy, np.zeros(B, dtype=np.int64), np.int64(0), *_NO_TABLE, 0,
           np.zeros((1, 1, 1), dtype=np.uint8), dummy, dummy, np.zeros(B, dtype=np.int64),
           lane_chunks(B), memo_entries(K, cand))
    return cpu_result(faults, hits, victims, return_hits)
