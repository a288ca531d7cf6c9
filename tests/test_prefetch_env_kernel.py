"""kernels.prefetch_env (the prefetch env's Triton step) equals the plain-Python reference of the spec at every
step, and its serving equals gpupage.core.prefetch's.

Runs on CUDA when present, otherwise under TRITON_INTERPRET=1 (set by conftest.py); shapes stay small because
the interpreter is slow.
"""

import os

import pytest
import torch

from gpupage.core.prefetch import make_hints, simulate_prefetch
from gpupage.core.traces import ZipfLatent, ZipfParams, zipf_traces

pytestmark = [
    pytest.mark.interpreter,
    pytest.mark.skipif(not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
                       reason="needs CUDA or TRITON_INTERPRET=1"),
]
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _batch(B, T, K, L, M, pads, seed):
    """Zipf traces whose working set (W > K) forces faults on a full cache, noisy hints, the latent state."""
    W = min(M, K + 4)
    traces, latent = zipf_traces(ZipfParams(M=M, W=W, shift=23, T=T), seed=[seed + b for b in range(B)],
                                 return_latent=True)
    if pads:
        traces[torch.rand(traces.shape, generator=torch.Generator().manual_seed(seed)) < 0.15] = -1
    hints = make_hints(traces, L, 0.3, M, seed=[seed + b for b in range(B)])
    return traces, hints, latent


def _actions(B, K, g):
    """Random prefetch bits (about 1 in 8 lanes -1: left alone) and victims in [-1, K)."""
    pf = torch.randint(0, 2, (B,), generator=g)
    pf[torch.rand(B, generator=g) < 0.125] = -1
    return pf, torch.randint(-1, K, (B,), generator=g)


@pytest.mark.parametrize("B,T,K,L,M,pads,white", [
    (1, 40, 1, 1, 6, False, False),
    (5, 45, 3, 4, 12, True, True),
    (35, 16, 3, 1, 10, True, False),  # two programs, the second one partly empty
    (6, 40, 8, 4, 20, True, True),
    (3, 70, 17, 4, 30, False, False),  # BLOCK_K = 32: 4 lanes per program
    (1, 100, 33, 2, 80, False, True),  # BLOCK_K = 64: one lane per program
])
def test_kernel_equals_reference_at_every_step(B, T, K, L, M, pads, white):
    from kernels.prefetch_env import NaiveLanes, naive_prefetch_env_step, new_state, prefetch_env_step

    traces, hints, latent = _batch(B, T, K, L, M, pads, seed=100 * K + L)
    ws = latent.working_sets if white else None
    st = new_state(traces.to(DEV), hints.to(DEV), L, K, None if ws is None else ws.to(DEV), latent.shift)
    ref = NaiveLanes(traces, hints, L, K, ws, latent.shift)
    g = torch.Generator().manual_seed(B * K + L)
    kinds = set()
    for step in range(3 * T):
        pf, vic = _actions(B, K, g)
        got = [x.cpu() for x in prefetch_env_step(st, pf.to(DEV), vic.to(DEV))]
        want = naive_prefetch_env_step(ref, pf.tolist(), vic.tolist())
        for name, a, b in zip(("obs_global", "obs_slots", "counts", "done"), got, want):
            assert torch.equal(a, b), (step, name)
        kinds.update(got[0][~got[3], 0].tolist())
        if bool(got[3].all()):
            break
    assert bool(got[3].all())
    assert kinds == {0, 1}  # both kinds of decision were exercised
    assert got[0].shape[1] == (14 if white else 12)


@pytest.mark.parametrize("prefetch", [0, 1])
def test_fixed_actions_serve_as_the_cpu_path(prefetch):
    """Always prefetching with adaptive's victims is follow-the-hint with adaptive eviction; never prefetching
    is plain adaptive (gpupage.core.prefetch's numba path)."""
    from kernels.prefetch_env import new_state, prefetch_env_step

    B, T, K, L = 5, 40, 3, 2
    traces, hints, _ = _batch(B, T, K, L, 12, True, seed=5)
    st = new_state(traces.to(DEV), hints.to(DEV), L, K)
    total = torch.zeros(B, 3, dtype=torch.int64)
    done = torch.zeros(B, dtype=torch.bool)
    while not bool(done.all()):
        _, _, acc, done = prefetch_env_step(st, torch.full((B,), prefetch), torch.full((B,), -1))
        total += acc.cpu()
    cpu = simulate_prefetch(traces, K, "follow_hint" if prefetch else "never", "adaptive", hints=hints, L=L,
                            backend="cpu")
    assert torch.equal(total, torch.stack([cpu.faults, cpu.prefetches, cpu.evictions], 1))
    assert int(total[:, 0].sum()) > B * K  # faults beyond the cold fills: victims were chosen


def test_bad_input_is_one_line_error():
    from gpupage.controller.prefetch_env import PrefetchEnv
    from kernels.prefetch_env import launch_prefetch_env, new_state, prefetch_env_step

    traces = torch.zeros(2, 8, dtype=torch.int32)
    st = new_state(traces.to(DEV), traces.to(DEV), 1, 2)
    with pytest.raises(ValueError, match=r"victim slots must be in \[-1, 2\), got 2"):
        prefetch_env_step(st, torch.zeros(2, dtype=torch.int64), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="prefetch actions must be -1, 0 or 1, got 3"):
        prefetch_env_step(st, torch.tensor([0, 3]), torch.zeros(2, dtype=torch.int64))
    st.check()
    # actions already on the device are checked by the kernel, and raise at the next host read
    launch_prefetch_env(st, torch.tensor([0, -1], device=DEV), torch.tensor([-2, 0], device=DEV))
    with pytest.raises(ValueError, match=r"an action was out of range: .* victim in \[-1, 2\)"):
        st.check()
    env = PrefetchEnv(traces.to(DEV), traces.to(DEV), 1, 2, backend="triton")
    with pytest.raises(ValueError, match=r"victim slots must be in \[-1, 2\)"):
        env.step(torch.zeros(2, dtype=torch.int64), torch.tensor([5, 0]))
    with pytest.raises(ValueError, match="unknown backend"):
        PrefetchEnv(traces, traces, 1, 2, backend="gpu")
    with pytest.raises(ValueError, match="K <= 1024"):
        new_state(traces, traces, 1, 2000)
    with pytest.raises(ValueError, match="both be"):
        new_state(traces, traces[:1], 1, 2)


def test_reset_lanes_starts_them_over_and_leaves_the_others():
    from kernels.prefetch_env import new_state, prefetch_env_step, reset_lanes

    B, T, K, L = 3, 40, 3, 2
    traces, hints, _ = _batch(B, T, K, L, 12, False, seed=9)
    st = new_state(traces.to(DEV), hints.to(DEV), L, K)
    fresh = new_state(traces.to(DEV), hints.to(DEV), L, K)
    ones, adaptive = torch.ones(B, dtype=torch.int64), torch.full((B,), -1)
    for _ in range(4):
        prefetch_env_step(st, ones, adaptive)
    kept = [x.clone() for x in (st.obs_global[1:], st.st[:, 1:], st.tile[:, :, 1:])]
    reset_lanes(st, torch.tensor([True, False, False], device=DEV))
    for _ in range(4):  # lane 0 replays from the start; lanes 1 and 2 are left alone (-1)
        a = prefetch_env_step(st, torch.tensor([1, -1, -1]), adaptive)
        b = prefetch_env_step(fresh, ones, adaptive)
        assert torch.equal(a[0][0].cpu(), b[0][0].cpu()) and torch.equal(a[2][0].cpu(), b[2][0].cpu())
    assert all(torch.equal(k, x) for k, x in zip(kept, (st.obs_global[1:], st.st[:, 1:], st.tile[:, :, 1:])))


@pytest.mark.parametrize("B,T,K,L,pads,white", [(4, 40, 3, 4, True, True), (3, 60, 17, 1, False, False),
                                                (34, 16, 1, 4, True, False)])
def test_triton_env_equals_numba_env_and_reference(B, T, K, L, pads, white):
    """gpupage.controller.prefetch_env.PrefetchEnv on both backends and the plain-Python reference: the same
    raw observations, rewards, done flags and counts at every step, through a lane replacement too."""
    from gpupage.controller.prefetch_env import PrefetchEnv
    from kernels.prefetch_env import NaiveLanes, naive_prefetch_env_step

    M = 16 + K
    traces, hints, latent = _batch(B, T, K, L, M, pads, seed=7 * K + L)
    mode = "whitebox" if white else "blackbox"
    kw = dict(lam_fetch=0.3, lam_evict=0.7, mode=mode, latent=latent)
    cpu = PrefetchEnv(traces, hints, L, K, backend="cpu", **kw)
    tri = PrefetchEnv(traces.to(DEV), hints.to(DEV), L, K, backend="triton", **kw)
    ref = NaiveLanes(traces, hints, L, K, latent.working_sets if white else None, latent.shift)
    zeros = [0] * B
    naive_prefetch_env_step(ref, zeros, zeros)  # the envs serve to the first decisions when built
    assert torch.equal(tri.obs_global.cpu(), torch.from_numpy(cpu.obs_global))
    g = torch.Generator().manual_seed(K)
    replaced = False
    for step in range(4 * T):
        pf, vic = _actions(B, K, g)
        a = cpu.step(pf, vic)
        b = [x.cpu() for x in tri.step(pf.to(DEV), vic.to(DEV))]
        og, os_, acc, done = naive_prefetch_env_step(ref, pf.tolist(), vic.tolist())
        for name, x, y in zip(("obs_global", "obs_slots", "reward", "done"), a, b):
            assert torch.equal(x, y), (step, name)
        if not replaced:
            assert torch.equal(a[0], og) and torch.equal(a[1], os_) and torch.equal(a[3], done)
            acc = acc.double()
            assert torch.equal(a[2], -(acc[:, 0] + 0.3 * acc[:, 1] + 0.7 * acc[:, 2]))
        assert torch.equal(tri.kind.cpu(), torch.from_numpy(cpu.kind))
        assert torch.equal(tri.t.cpu(), torch.from_numpy(cpu.t))
        if bool(a[3].all()):
            if replaced:
                break
            lanes = torch.arange(B) % 2 == 0  # new episodes (the same lanes, reversed) on every other lane
            new = (traces[lanes].flip(1), hints[lanes].flip(1), ZipfLatent(latent.working_sets[lanes], latent.shift))
            cpu.replace(lanes, *new)
            tri.replace(lanes.to(DEV), *new)
            replaced = True
    assert replaced and bool(a[3].all())
    for name, v in cpu.counts().items():
        assert torch.equal(tri.counts()[name].cpu(), v), name
