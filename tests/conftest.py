"""Shared test setup.

Without a CUDA device the Triton kernels are tested under the interpreter, so
plain ``pytest`` runs the kernel equality tests too.  TRITON_INTERPRET is read
when triton is first imported, hence here, before any test module imports it
(``import torch`` does not import triton).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray instance (2 CPUs) for every test that runs chunks on Ray: starting one takes seconds."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
