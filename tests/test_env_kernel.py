"""kernels.env_step under the Triton interpreter equals the numba CPU path exactly."""

import os

import pytest
import torch

from gpupage.controller import env as E
from gpupage.controller import state as S
from gpupage.core.traces import ZipfParams, zipf_traces

pytestmark = pytest.mark.interpreter

INT_FIELDS = S.STEP_FIELDS


def _arrays(state):
    return [getattr(state, f).clone() for f in INT_FIELDS]


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
                    reason="needs the Triton interpreter or a GPU")
@pytest.mark.parametrize("B,K,M,T", [(1, 1, 5, 40), (5, 3, 17, 97), (37, 8, 64, 130), (33, 13, 40, 101),
                                     (9, 20, 64, 300), (1, 4, 64, 700), (5, 41, 120, 300), (3, 100, 150, 400)])
def test_env_kernel_equals_cpu(B, K, M, T):
    from kernels.env_step import env_step

    zp = ZipfParams(M=M, W=min(M, max(9, K + K // 4)), shift=53 if T < 500 else 300, T=T)  # K < W: decisions
    traces = zipf_traces(zp, seed=list(range(B)))
    if B > 2:
        traces[2, ::7] = -1
    _, st = E.reset_traces(E.EnvParams(K=K), traces)
    cpu, tri = _arrays(st), _arrays(st)
    g = torch.Generator().manual_seed(B * K)
    tab = S.decay_table()
    for _ in range(25 if B > 1 else 250):  # the long lane reaches idle gaps and detector alarms
        action = torch.randint(0, K, (B,), generator=g)
        action[::4] = -1 if B > 3 else action[::4]  # lanes that only advance
        E.advance_cpu(action.numpy(), st.traces.numpy(), *[a.numpy() for a in cpu], tab.numpy(), S.CAP)
        env_step(action, st.traces, *tri, tab, S.CAP)
        for name, a, b in zip(INT_FIELDS, cpu, tri):
            assert torch.equal(a, b), name
        if bool(cpu[INT_FIELDS.index("done")].all()):
            break
