"""The paging environment's integer state: its layout, its constants and the decay table.

``env`` (the step, on both backends), ``features`` (the observation) and
``kernels.env_step`` (the CUDA step) all read this module, and it imports nothing
of gpupage, so none of them imports another to learn the layout.

Everything here is integer.  Decayed access counts are fixed point
(``ONE = 2**16``) and decay lazily: at an access after ``dt`` requests a count
becomes ``(c * DECAY[h, min(dt, CAP)]) >> 16`` plus ``ONE``, with the table
computed once on the host (like the Zipf thresholds), so every backend agrees
bit for bit.

numba caches a compiled function under its own file only: after changing a
constant here, clear the caches (``*.nbi``/``*.nbc`` under ``__pycache__``) so that
``env``'s loops recompile with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

ONE = 1 << 16
HALF_LIVES = (4, 16, 64, 256, 1024)
"""Half-lives (in requests) of the decayed access and fault counts: their profile over time
scales shows a block's (and the fault process's) recent history, e.g. a phase change."""
CAP = 16 * max(HALF_LIVES)
"""Beyond CAP requests every decayed count has dropped below 2**-16 of its value: factor 0."""
ACTIVE_GAP = 200
"""A block idle for this many requests starts a new activity streak when requested again
(most first touches after a working-set change do)."""
NOVEL_GAIN, CALM_DECAY, ALARM, REFRACTORY = 8, 1, 16, 50
"""Change detector (a CUSUM over novel requests, i.e. after ACTIVE_GAP idle requests or first
touches): S += NOVEL_GAIN on a novel request, else S -= CALM_DECAY, floored at 0 (which restarts
the candidate phase); at S >= ALARM the candidate becomes the epoch and detection pauses for
REFRACTORY requests.  The constants of the ``adaptive`` heuristic; here they only make features."""
D_S, D_CUR, D_GEN0, D_GEN1, D_NEXT, D_RESUME, D_CAND_T, D_EPOCH_T = range(8)
"""Columns of ``EnvState.det``: S, the epoch's counter array, the epoch and candidate generations,
the next generation, the end of the refractory pause, and the candidate's and epoch's start times."""


def decay_table(half_lives=HALF_LIVES, cap: int = CAP) -> torch.Tensor:
    """int64 [H, cap + 1]: floor(2**16 * 2**(-dt / h)) for dt = 0..cap."""
    dt = np.arange(cap + 1, dtype=np.float64)
    tab = np.floor(ONE * np.exp2(-dt[None, :] / np.asarray(half_lives, dtype=np.float64)[:, None]))
    return torch.from_numpy(tab.astype(np.int64))


_TABLES: dict = {}


def decay_table_on(device) -> torch.Tensor:
    """:func:`decay_table` on ``device``, made once per device."""
    key = str(device)
    if key not in _TABLES:
        _TABLES[key] = decay_table().to(device)
    return _TABLES[key]


@dataclass
class EnvState:
    """Integer state of B lanes.  At a decision, request ``t`` is the pending fault
    and nothing of it has been applied yet; every other field reflects requests < t."""

    traces: torch.Tensor  # int32 [B, T] dense block ids (-1 pads)
    nxt: torch.Tensor  # int32 [B, T] next index of the same block after t, NEVER if none
    ws_rank: torch.Tensor | None  # int16 [B, P, n] Zipf rank in phase p (-1: not in the working set); white-box
    shift: int  # phase length of ws_rank
    ws_size: int  # working-set size W of ws_rank
    t: torch.Tensor  # int64 [B] pending request (T when done)
    blk: torch.Tensor  # int64 [B, K] block in slot (-1 empty)
    last: torch.Tensor  # int64 [B, K] time of the slot's last access
    ins: torch.Tensor  # int64 [B, K] time of insertion
    hits: torch.Tensor  # int64 [B, K] hits since insertion
    slot_of: torch.Tensor  # int64 [B, n] slot of block (-1 not resident)
    count: torch.Tensor  # int64 [B, n] accesses of the block so far
    last_use: torch.Tensor  # int64 [B, n] time of the block's last access (-1 never)
    gap: torch.Tensor  # int64 [B, n] the block's last reuse gap (-1 none yet)
    dc: torch.Tensor  # int64 [B, n, H] decayed access counts, fixed point, as of last_use
    streak: torch.Tensor  # int64 [B, n] accesses since the block's activity streak began
    since: torch.Tensor  # int64 [B, n] time its activity streak began
    det: torch.Tensor  # int64 [B, 8] change detector, indexed by D_*: S, cur, epoch and candidate generations, ...
    pcount: torch.Tensor  # int64 [B, n, 2] accesses in pstamp's generation (index det[cur]: epoch, other: candidate)
    pstamp: torch.Tensor  # int64 [B, n, 2] generation those counts belong to
    fr: torch.Tensor  # int64 [B, H] decayed fault counts, fixed point, as of frt
    frt: torch.Tensor  # int64 [B] time of the last fault (-1 none)
    faults: torch.Tensor  # int64 [B] faults so far (cold fills included)
    decisions: torch.Tensor  # int64 [B] evictions so far
    done: torch.Tensor  # bool [B]

    @property
    def batch(self) -> int:
        return self.t.shape[0]

    @property
    def K(self) -> int:
        return self.blk.shape[1]

    @property
    def T(self) -> int:
        return self.traces.shape[1]

    def clone(self) -> "EnvState":
        """A copy whose mutable tensors are new (the traces and their indices are shared: never written)."""
        return replace(self, **{name: getattr(self, name).clone() for name in STEP_FIELDS})


STEP_FIELDS = ("t", "blk", "last", "ins", "hits", "slot_of", "count", "last_use", "gap", "dc", "streak", "since",
               "det", "pcount", "pstamp", "fr", "frt", "faults", "decisions", "done")
"""The state a step writes, in the argument order of ``env.advance_cpu`` and ``kernels.env_step.env_step``."""
