"""Float features of the Page Controller, computed from the env's integer state by one torch function.

Per resident slot (black-box, Def. 10: what the request history implies):
recency, age since insertion, hits since insertion, total accesses of the block,
decayed access counts at each half-life of ``state.HALF_LIVES``, the block's
last reuse gap, and its activity streak (accesses, and time, since it was last
requested after ``state.ACTIVE_GAP`` idle requests: after a working-set change
this separates the new phase's blocks from the old one's) and its accesses
since the change detector's last alarm (epoch) and since its current candidate
change began, each as ``log1p(x) / log1p(T)`` and as its rank among the
residents (so the network sees the cache *relative* to itself, whatever K is),
plus each decayed count over the residents' largest.  Global: t/T, the recent
fault rates at each half-life, the fault rate so far, log2 K, the detector's
statistic and the time since its epoch and candidate began.

White-box (§5.5) adds the trace generator's latent state: whether the block is
in the current phase's working set, its Zipf rank there, and how far into the
phase the request is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .state import ALARM, CAP, D_CAND_T, D_CUR, D_EPOCH_T, D_GEN0, D_GEN1, D_S, HALF_LIVES, EnvState, decay_table_on

RAW = ("recency", "age", "hits", "count") + tuple(f"decayed_{h}" for h in HALF_LIVES) + (
    "reuse_gap", "streak", "active_for", "epoch_count", "candidate_count")
SLOT_DIM = {"blackbox": 2 * len(RAW) + len(HALF_LIVES), "whitebox": 2 * len(RAW) + len(HALF_LIVES) + 2}
GLOBAL_DIM = {"blackbox": 6 + len(HALF_LIVES), "whitebox": 7 + len(HALF_LIVES)}


class Obs(NamedTuple):
    slots: torch.Tensor  # float32 [B, K, SLOT_DIM[mode]]
    glob: torch.Tensor  # float32 [B, GLOBAL_DIM[mode]]
    mask: torch.Tensor  # bool [B, K]: slots that may be evicted


def resident_rank(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rank of each slot's value among the resident slots, in [0, 1] (ties share the mean rank).

    x: [B, K, F]; mask: bool [B, K].  Permutation-equivariant (no index tie-break)."""
    m = mask[:, None, :, None]
    less = ((x[:, :, None, :] > x[:, None, :, :]) & m).sum(2).float()
    eq = ((x[:, :, None, :] == x[:, None, :, :]) & m).sum(2).float()
    n = mask.sum(1).float().clamp(min=2)[:, None, None]
    return (less + 0.5 * (eq - 1)) / (n - 1)


def observe(state: EnvState, mode: str = "blackbox") -> Obs:
    """The observation of every lane at its pending decision."""
    B, K = state.blk.shape
    T = state.T
    tab = decay_table_on(state.t.device)  # int64 [H, CAP + 1]
    mask = state.blk >= 0
    blk = state.blk.clamp(min=0)
    now = state.t[:, None]
    H = len(HALF_LIVES)

    lu = torch.gather(state.last_use, 1, blk)
    dt = (now - lu).clamp(0, CAP)
    dc = torch.gather(state.dc, 1, blk[:, :, None].expand(B, K, H))
    decayed = (dc.double() * tab.t()[dt].double() / float(1 << 32)).float()  # [B, K, H]
    gap = torch.gather(state.gap, 1, blk)
    cur = state.det[:, D_CUR][:, None, None]
    pc = torch.gather(state.pcount, 1, blk[:, :, None].expand(B, K, 2))
    ps = torch.gather(state.pstamp, 1, blk[:, :, None].expand(B, K, 2))
    pc_cur, pc_other = pc.gather(2, cur.expand(B, K, 1)), pc.gather(2, (1 - cur).expand(B, K, 1))
    ps_cur, ps_other = ps.gather(2, cur.expand(B, K, 1)), ps.gather(2, (1 - cur).expand(B, K, 1))
    epoch_count = torch.where(ps_cur == state.det[:, D_GEN0][:, None, None], pc_cur, 0)
    cand_count = torch.where(ps_other == state.det[:, D_GEN1][:, None, None], pc_other, 0)
    raw = torch.cat([
        (now - state.last).float()[..., None],
        (now - state.ins).float()[..., None],
        state.hits.float()[..., None],
        torch.gather(state.count, 1, blk).float()[..., None],
        decayed,
        torch.where(gap < 0, torch.full_like(gap, T), gap).float()[..., None],
        torch.gather(state.streak, 1, blk).float()[..., None],
        (now - torch.gather(state.since, 1, blk)).float()[..., None],
        epoch_count.float(),
        cand_count.float(),
    ], dim=2)
    logs = torch.log1p(raw) / math.log1p(T)
    ranks = resident_rank(raw, mask)
    rel = decayed / decayed.masked_fill(~mask[..., None], 0).amax(1, keepdim=True).clamp(min=1e-6)
    parts = [logs, ranks, rel]

    t = state.t.float().clamp(min=1)
    fdt = (state.t - state.frt).clamp(0, CAP)
    fr_now = state.fr.double() * tab.t()[fdt].double() / float(1 << 32)  # [B, H]
    per_request = torch.tensor([1 - 2 ** (-1 / h) for h in HALF_LIVES], dtype=torch.float64, device=fr_now.device)
    recent_rates = (fr_now * per_request).float().clamp(max=1)  # decayed fault rates at each half-life
    glob = [state.t.float() / T, state.faults.float() / t, torch.full_like(t, math.log2(K) / 8)]
    glob += list(recent_rates.unbind(1))
    glob += [state.det[:, D_S].float() / ALARM,
             torch.log1p((state.t - state.det[:, D_EPOCH_T]).clamp(min=0).float()) / math.log1p(T),
             torch.log1p((state.t - state.det[:, D_CAND_T]).clamp(min=0).float()) / math.log1p(T)]

    if mode == "whitebox":
        if state.ws_rank is None:
            raise ValueError("white-box features need the generator's latent state")
        P, W = state.ws_rank.shape[1], state.ws_size
        phase = (state.t // state.shift).clamp(max=P - 1)
        ranks_now = state.ws_rank[torch.arange(B, device=blk.device), phase]  # [B, n]
        r = torch.gather(ranks_now.long(), 1, blk)
        parts.append((r >= 0).float()[..., None])
        parts.append(torch.where(r >= 0, (r.float() + 1) / W, torch.full_like(r, 2).float())[..., None])
        glob.append((state.t % state.shift).float() / state.shift)
    elif mode != "blackbox":
        raise ValueError(f"unknown mode {mode!r}")
    slots = torch.cat(parts, dim=2).masked_fill(~mask[..., None], 0)
    return Obs(slots, torch.stack(glob, dim=1), mask)

