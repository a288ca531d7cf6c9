"""DAgger collection at simulator speed: the ``learned`` policy's numba lanes (:mod:`gpupage.zoo.learned`) rolled
out with an expert mixed in, every decision's features and next-use distances recorded, for the trainer
(:mod:`gpupage.controller.slotnet`); and a float network run as a policy, to check a quantisation."""

from __future__ import annotations

import numpy as np

from ..core import rng
from ..core.cpu import fill_next_uses, lane_chunks
from .learned import (_FRAC, _NO_TABLE, _RMUL, N_IN, N_LEVELS, N_SLOT, LearnedNet, _batch, _check_length,
                      memo_entries)


def next_uses(traces):
    """int64 [B, T]: the next time the block of request t is requested (NEVER_USED if never; pads too)."""
    out = np.full(traces.shape, NEVER_USED, dtype=np.int64)
    fill_next_uses(traces, out)
    return out


NEVER_USED = 1 << 40  # next use of a block never requested again: farther than any time


class FloatNet:
    """A float network of the integer network's shape, run as a policy by :func:`float_faults`
    (ReLU without the integer floors and saturation; for checking a quantisation, not the spec)."""

    def __init__(self, W1, b1, W2, b2, w3):
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        W1t = np.asarray(W1).T  # W1 per integer feature, [H1, N_IN]
        self.args = (f32(W1t[:N_SLOT]), f32(W1t[N_SLOT:]), f32(b1), np.float32(1), f32(W2), f32(b2),
                     np.float32(1), f32(w3))

    def cpu_args(self) -> tuple:
        return self.args


def _teacher_args(teacher, B: int) -> tuple[np.ndarray, np.ndarray]:
    """collect's ``teacher`` checked: (cls int64 [256], rank int64 [B, C, N_LEVELS]); cls covers every uint8
    feature value."""
    cls, rank = (np.ascontiguousarray(a, dtype=np.int64) for a in teacher)
    if cls.shape != (256,) or rank.ndim != 3 or rank.shape[0] != B or rank.shape[2] < N_LEVELS:
        raise ValueError(f"teacher: cls [256] and rank [{B}, C, {N_LEVELS}] expected, got {cls.shape} and "
                         f"{rank.shape}")
    if cls.min() < 0 or cls.max() >= rank.shape[1]:
        raise ValueError(f"teacher: cls must index rank's {rank.shape[1]} classes")
    return cls, rank


def _rollout(traces, K, net, exact, beta, seeds, record, cand=0, ids=False, teacher=None):
    """Run _batch over a whole batch (DAgger mixing with Belady, or ``teacher``'s table, when ``seeds`` is given):
    (faults, decisions, features, distances, aux), the last three (every ``record``-th decision) only
    when ``record`` > 0; aux int64 ``[N, 1 + S]`` (time, candidates' blocks) only with ``ids``."""
    traces = np.ascontiguousarray(traces)
    B, T = traces.shape
    _check_length(T)
    K = np.minimum(np.asarray(K, dtype=np.int64), max(T, 1))
    n_ids = max(int(traces.max()) + 1, 1)
    expert = seeds is not None
    thr = np.int64(rng.probability_threshold(beta) if beta < 1 else 1 << 32)
    nxt = next_uses(traces) if expert else np.zeros((1, 1), dtype=np.int64)
    mkeys = np.zeros(B, dtype=np.int64)
    if expert:
        mkeys[:] = [rng.stream_key(int(k), rng.STREAM_EXPERT_MIX) for k in rng.lane_keys(np.asarray(seeds), B)]
    faults = np.empty(B, dtype=np.int64)
    decisions = np.empty(B, dtype=np.int64)
    ecls, erank = _NO_TABLE if teacher is None else _teacher_args(teacher, B)
    common = (net.cpu_args(), exact, _FRAC, _RMUL, n_ids, False, np.zeros((1, 1), dtype=np.uint8),
              np.zeros((1, 1), dtype=np.int64), faults, decisions, expert, nxt, mkeys, thr, ecls, erank)
    rows = np.zeros(B, dtype=np.int64)
    none = np.zeros((1, 1), dtype=np.int64)
    nmemo = memo_entries(K, cand)
    _batch(traces, K, cand, *common, 0, np.zeros((1, 1, 1), dtype=np.uint8), none, none, rows, lane_chunks(B), nmemo)
    if not record:
        return faults, decisions, None, None, None
    kept = -(-decisions // record)
    rows[1:] = np.cumsum(kept)[:-1]
    width = int(K.max()) if cand == 0 else min(int(K.max()), cand)
    feats = np.zeros((int(kept.sum()), width, N_IN), dtype=np.uint8)
    dist = np.full(feats.shape[:2], -1, dtype=np.int64)
    aux = np.full((feats.shape[0], width + 1), -1, dtype=np.int64) if ids else none
    _batch(traces, K, cand, *common, record, feats, dist, aux, rows, lane_chunks(B), nmemo)
    return faults, decisions, feats, dist, (aux if ids else None)


def collect(traces: np.ndarray, K: np.ndarray, net: LearnedNet | None, beta: float, seeds, candidates: int = 0,
            stride: int = 1, return_ids: bool = False, teacher: tuple | None = None):
    """Roll out the integer network mixed with an expert and record every decision (DAgger).

    At each decision the expert acts when a draw of stream ``rng.STREAM_EXPERT_MIX`` of the lane's
    seed, at the decision's index, falls below ``beta`` (``net`` None: the expert always); the
    network otherwise.  The expert is Belady (farthest next use), or with ``teacher`` = (``cls`` int
    ``[256]``, ``rank`` int ``[B, C, N_LEVELS]``) a table: the slot of largest ``rank[b, cls[L(count)],
    L(age)]`` (L of its block's accesses and of the requests since its last one, features 3 and 0).  Either's
    ties go to the least recently accessed.  Two passes of the simulator: one counts each lane's decisions, the
    other writes them.  ``candidates`` C >= 1: the policy with option ``candidates=C`` -- each
    decision records (and Belady chooses among) the C least recently accessed slots only.
    ``stride`` r: record only every r-th decision of a lane (0, r, 2r, ...).

    Args:
        traces: int ``[B, T]`` dense ids (-1 pads).  K: int ``[B]``.  seeds: int ``[B]``.
    Returns:
        (features uint8 ``[N, S, N_IN]``, next-use distance int64 ``[N, S]`` (-1 where a lane has
        no such slot; about NEVER_USED when never), faults int64 ``[B]``, decisions int64 ``[B]``),
        S = max K (or C when smaller); the N = sum ceil(decisions / r) recorded decisions in lane order.
        With ``return_ids`` also each decision's time int64 ``[N]`` and its candidates' blocks int64 ``[N, S]``
        (-1: no candidate), for labels from a generator's latent state.
    """
    if net is None:
        net, beta = LearnedNet(np.zeros((1, N_IN)), [0], 0, [[0]], [0], 0, [0]), 1.0
    if stride < 1:
        raise ValueError(f"collect: stride must be >= 1, got {stride}")
    faults, decisions, feats, dist, aux = _rollout(traces, K, net, True, beta, np.asarray(seeds), stride, candidates,
                                                   return_ids, teacher)
    if return_ids:
        return feats, dist, faults, decisions, aux[:, 0], aux[:, 1:]
    return feats, dist, faults, decisions


def float_faults(traces: np.ndarray, K: np.ndarray, net: FloatNet, candidates: int = 0) -> np.ndarray:
    """int64 [B]: faults of the float network ``net`` as a policy (every slot scored, or the
    ``candidates`` least recently accessed)."""
    return _rollout(traces, K, net, False, 1.0, None, 0, candidates)[0]
