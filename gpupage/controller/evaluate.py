"""Evaluation of controllers against the registry's policies, and Prop. 6's bound.

Prop. 6: if a fraction p of a policy's T evictions are Belady-optimal at the
state it visits, and one non-optimal eviction costs at most D_f extra faults,
then F_learned <= F_opt + (1 - p) D_f T.  For demand paging D_f = 1 holds
exactly: an optimal eviction keeps the optimum reachable from the state, and a
cache differing from the optimal one in one block can follow the optimal
schedule with at most one extra fault.  So the bound holds per trace, not only
in expectation, and :func:`prop6` checks it.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from . import env as E
from .features import observe
from .network import PageController
from ..core import limits


@njit(parallel=True, cache=True)
def _replay_optimality(traces, nxt, victims, K, n_ids, warmup, out):
    """out[b] = (faults, evictions, optimal evictions, bad victims, faults from request ``warmup`` on)
    replaying ``victims`` on lane b."""
    B, T = traces.shape
    for b in prange(B):
        slot_of = np.full(n_ids, -1, dtype=np.int64)
        blk = np.full(K, -1, dtype=np.int64)
        last = np.zeros(K, dtype=np.int64)
        n = 0
        faults = 0
        ev = 0
        opt = 0
        bad = 0
        counted = 0
        for t in range(T):
            x = traces[b, t]
            if x < 0:
                continue
            s = slot_of[x]
            if s >= 0:
                last[s] = t
                continue
            faults += 1
            if t >= warmup:
                counted += 1
            if n < K:
                s = n
                n += 1
            else:
                v = victims[b, t]
                s = slot_of[v] if 0 <= v < n_ids else -1
                if s < 0:
                    bad += 1
                    s = 0
                    v = blk[0]
                ev += 1
                far = -1
                for i in range(K):
                    far = max(far, nxt[b, last[i]])
                if nxt[b, last[s]] == far:
                    opt += 1
                slot_of[v] = -1
            # written out, not core.cpu's evict/place: in this prange loop they measured 10% slower
            blk[s] = x
            slot_of[x] = s
            last[s] = t
        out[b, 0] = faults
        out[b, 1] = ev
        out[b, 2] = opt
        out[b, 3] = bad
        out[b, 4] = counted


def _replay(traces, victims, K: int, warmup: int = 0):
    """(traces, the per-lane ``_replay_optimality`` table) for victims in the traces' ids."""
    tr = torch.as_tensor(traces)
    vi = torch.as_tensor(victims)
    if tr.dim() == 1:
        tr, vi = tr.unsqueeze(0), vi.unsqueeze(0)
    if tr.shape != vi.shape:
        raise ValueError(f"victims {tuple(vi.shape)} must match traces {tuple(tr.shape)}")
    K = min(int(K), max(tr.shape[1], 1))  # a larger cache never evicts either: no [K] scratch beyond T
    # int64 copies of the traces, victims and dense ids, next uses in two widths, a mask
    limits.require(45 * tr.numel(), f"checking Prop. 6 on {tr.shape[0]} lanes x {tr.shape[1]} requests")
    arr = tr.detach().cpu().numpy().astype(np.int64)
    vic = vi.detach().cpu().numpy().astype(np.int64)
    valid = arr >= 0
    uniq, inv = np.unique(arr[valid], return_inverse=True)
    dense = np.full(arr.shape, -1, dtype=np.int64)
    dense[valid] = inv
    pos = np.clip(np.searchsorted(uniq, vic), 0, max(len(uniq) - 1, 0))
    vdense = np.where((vic >= 0) & (uniq[pos] == vic) if len(uniq) else False, pos, -1)
    out = np.zeros((arr.shape[0], 5), dtype=np.int64)
    with limits.work_threads(arr.shape[0]):
        nxt = E.next_occurrence(dense.astype(np.int32)).astype(np.int64)
        _replay_optimality(dense, nxt, vdense, int(K), max(len(uniq), 1), warmup, out)
    if out[:, 3].any():
        raise ValueError(f"{int(out[:, 3].sum())} victims were not resident at their eviction")
    return tr, out


def prop6(traces, K: int, victims) -> dict:
    """Prop. 6 for any policy's decisions on ``traces``.

    Args:
        traces: integer ``[B, T]`` (or ``[T]``) block ids (-1 pads).
        victims: ``[B, T]`` block evicted at request t, -1 where none (the format of
            ``simulate(..., return_hits=True).victims`` and :func:`controller_rollout`).
    Returns:
        dict of per-lane lists and totals: ``p`` (share of evictions that were Belady-optimal
        at the visited state), ``D_f`` = 1, ``T`` (evictions), ``F_opt``, ``F_learned``,
        ``bound`` = F_opt + (1 - p) D_f T, ``holds`` (F_learned <= bound on every lane).
    """
    from ..core.simulate import simulate

    tr, out = _replay(traces, victims, K)
    f_opt = simulate(tr.cpu(), "belady", int(K)).faults.numpy()
    faults, ev, opt = out[:, 0], out[:, 1], out[:, 2]
    p = np.where(ev > 0, opt / np.maximum(ev, 1), 1.0)
    bound = f_opt + (ev - opt)  # F_opt + (1 - p) * D_f * T with D_f = 1, in integers
    return {
        "p": p.tolist(), "D_f": 1, "T": ev.tolist(), "F_opt": f_opt.tolist(), "F_learned": faults.tolist(),
        "bound": bound.tolist(), "holds": bool((faults <= bound).all()),
        "p_mean": float(opt.sum() / max(ev.sum(), 1)), "T_total": int(ev.sum()),
        "F_opt_total": int(f_opt.sum()), "F_learned_total": int(faults.sum()), "bound_total": int(bound.sum()),
    }


@torch.no_grad()
def controller_rollout(model: PageController, traces, K: int, latent=None, device="cpu", greedy: bool = True):
    """Run the controller on traces.  Returns (faults int64 [B], victims int64 [B, T] in the traces' ids)."""
    mode = model.config.mode
    model.to(device)
    T = torch.as_tensor(traces).shape[-1]
    # the env's state is [B, K]: a cache of T or more blocks never evicts, so nothing is asked of the model
    params = E.EnvParams(K=min(int(K), max(T, 1)), mode=mode, device=str(device))
    obs, st = E.reset_traces(params, traces, latent)
    B, T = st.traces.shape
    victims = torch.full((B, T), -1, dtype=torch.int64, device=st.t.device)
    lanes = torch.arange(B, device=st.t.device)
    step = 0
    with limits.torch_threads(B * params.K):
        while step % E.DONE_CHECK_EVERY or not bool(st.done.all()):
            a = model.act(obs, greedy=greedy)
            tt = st.t.clamp(max=T - 1)
            victims[lanes, tt] = torch.where(st.done, victims[lanes, tt], st.blk[lanes, a])
            E.step_inplace(st, a)
            obs = observe(st, mode)
            step += 1
    victims = _original_ids(torch.as_tensor(traces), st.traces, victims)
    return st.faults.cpu(), victims.cpu()


def _original_ids(orig: torch.Tensor, dense: torch.Tensor, victims: torch.Tensor) -> torch.Tensor:
    """Map victims from the env's dense ids back to the traces' ids."""
    orig = orig.reshape(dense.shape).to(torch.int64).cpu()
    if torch.equal(orig, dense.cpu().to(torch.int64)):
        return victims
    n = int(dense.max()) + 1
    lut = torch.full((n,), -1, dtype=torch.int64)
    valid = dense.cpu() >= 0
    lut[dense.cpu()[valid].long()] = orig[valid]
    v = victims.cpu()
    return torch.where(v >= 0, lut[v.clamp(min=0)], v)


def mean_sd(x) -> dict:
    a = np.asarray(x, dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def evaluate(model: PageController | None, traces, K: int, latent=None, policies=None, seed=0,
             device="cpu", prop6_report: bool = True, warmup=0) -> dict:
    """Fault rate, competitive ratio (faults / Belady's) and faults beyond the compulsory
    first touches, per policy, each {mean, sd} over lanes (plus the per-lane ``faults`` and
    ``non_compulsory``).

    ``policies``: registry names (default: :func:`default_policies`); the controller (when
    given) is keyed ``controller``, with its Prop. 6 report under ``controller.prop6`` (over
    the whole trace).  ``warmup``: requests that fill the caches uncounted (an int, or a
    fraction of T in (0, 1)); every count starts after it."""
    from ..core.simulate import first_touches, resolve_warmup, simulate

    tr = torch.as_tensor(traces)
    if tr.dim() == 1:
        tr = tr.unsqueeze(0)
    w = resolve_warmup(warmup, tr.shape[1])
    requests = (tr[:, w:] >= 0).sum(1).double()
    compulsory = first_touches(tr, w).double()
    on_device = tr.to(device)
    opt = simulate(on_device, "belady", K, warmup=w).faults.double().cpu()
    names = policies if policies is not None else default_policies()
    faults = {}
    for name in names:
        faults[name] = simulate(on_device, name, K, seed=seed, warmup=w).faults.double().cpu()
    out = {}
    ctrl_victims = None
    if model is not None:
        f, ctrl_victims = controller_rollout(model, tr, K, latent, device)
        f, ctrl_victims = f.cpu(), ctrl_victims.cpu()
        if w:  # the controller's faults from the warm-up's end, replaying its evictions
            f = torch.from_numpy(_replay(tr, ctrl_victims, K, w)[1][:, 4])
        faults = {"controller": f.double(), **faults}
    for name, f in faults.items():
        out[name] = {**_summary(f, requests, opt, compulsory), "faults": [int(v) for v in f],
                     "non_compulsory": [int(v) for v in f - compulsory]}
    if model is not None and prop6_report:
        out["controller"]["prop6"] = prop6(tr, K, ctrl_victims)
    return out


def _summary(f, requests, opt, compulsory) -> dict:
    """{mean, sd} over lanes of a policy's fault rate, competitive ratio and non-compulsory faults."""
    return {"fault_rate": mean_sd((f / requests).numpy()), "competitive_ratio": mean_sd((f / opt).numpy()),
            "non_compulsory_faults": mean_sd((f - compulsory).numpy())}


def default_policies() -> list[str]:
    """Every online registry policy that evicts and needs no checkpoint, plus belady (the optimum)."""
    from ..core.policies import POLICIES

    return [n for n, p in POLICIES.items()
            if p.evicts and not p.needs_checkpoint and (n == "belady" or not p.needs_future)]


BASELINES = ("lru", "lfu", "fifo", "clock", "arc", "adaptive", "s3fifo", "sieve", "wtinylfu", "lirs")
"""The baselines a learned checkpoint is judged against (with belady, the optimum)."""


def evaluate_learned(checkpoint, traces, K: int, candidates: int | None = None, policies=None, seed=0,
                     warmup=0, device="cpu") -> dict:
    """The registry's ``learned`` policy (keyed ``controller``) against ``policies`` (default
    :data:`BASELINES` and belady) on traces ``[B, T]``.

    One lane: ``{policy: {"faults": int, "non_compulsory_faults": int}}``.  Several (seeds):
    ``{policy: {"faults", "non_compulsory_faults", "fault_rate", "competitive_ratio": {mean, sd}}}``
    plus ``gap_to_best_baseline``: the paired per-lane difference of the controller's faults
    and those of the baseline with the fewest mean faults (``baseline``, ``mean``, ``se``)."""
    from ..core.simulate import first_touches, resolve_warmup, simulate
    from ..zoo.learned import load_network

    tr = torch.as_tensor(traces)
    if tr.dim() == 1:
        tr = tr.unsqueeze(0)
    w = resolve_warmup(warmup, tr.shape[1])
    opts = {"checkpoint": load_network(checkpoint), **({} if candidates is None else {"candidates": candidates})}
    on_device = tr.to(device)
    names = list(policies) if policies is not None else list(BASELINES) + ["belady"]
    faults = {"controller": simulate(on_device, "learned", K, warmup=w, options=opts).faults.cpu()}
    for name in names:
        faults[name] = simulate(on_device, name, K, seed=seed, warmup=w).faults.cpu()
    compulsory = first_touches(tr, w).cpu()
    if tr.shape[0] == 1:
        return {n: {"faults": int(f[0]), "non_compulsory_faults": int(f[0] - compulsory[0])} for n, f in faults.items()}
    requests = (tr[:, w:] >= 0).sum(1).double()
    opt = simulate(on_device, "belady", K, warmup=w).faults.double().cpu() if "belady" not in faults \
        else faults["belady"].double()
    out = {n: {"faults": mean_sd(f.numpy()), **_summary(f, requests, opt, compulsory)} for n, f in faults.items()}
    base = [n for n in names if n in BASELINES] or [n for n in names if n != "belady"]
    if base:
        best = min(base, key=lambda n: float(faults[n].double().mean()))
        gap = (faults["controller"] - faults[best]).double().numpy()
        out["gap_to_best_baseline"] = {"baseline": best, "mean": float(gap.mean()),
                                       "se": float(gap.std(ddof=1) / np.sqrt(gap.size))}
    return out
