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
