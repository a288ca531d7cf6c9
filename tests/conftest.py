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


def _patch_the_language_once_per_launch():
    """Under the interpreter, make a nested ``@triton.jit`` call reuse its launch's patch of ``triton.language``.

    Triton's interpreter re-patches the language module (``inspect.getmembers`` over it, then one
    attribute at a time) at every call of a jit function from a kernel, nearly half of an
    equality test's time.  Inside a launch the module is already patched, so only a call whose
    function sees a language module the launch has not patched (``tl.core``, from triton's own
    helpers) patches; the launch's own patch and restore are Triton's.  Kernels run unchanged: a
    function left unpatched raises ("Did you forget to add @triton.jit ?") rather than computing
    differently.  A Triton without these internals is left alone.
    """
    import triton.language as tl
    from triton.runtime import interpreter

    patch = getattr(interpreter, "_patch_lang", None)
    executor = getattr(interpreter, "GridExecutor", None)
    if patch is None or executor is None:
        return
    run = executor.__call__
    launches: list[set] = []  # per running launch, the language modules it has patched

    class Kept:
        def restore(self):
            pass

    def patch_lang(fn):
        mods = {id(v) for v in fn.__globals__.values() if v is tl or v is tl.core}
        if launches and mods <= launches[-1]:
            return Kept()  # a call from a kernel whose launch patched these modules already
        if launches:
            launches[-1] |= mods
        return patch(fn)

    def launch(self, *args, **kwargs):
        launches.append(set())
        try:
            return run(self, *args, **kwargs)
        finally:
            launches.pop()

    interpreter._patch_lang = patch_lang
    executor.__call__ = launch


if os.environ.get("TRITON_INTERPRET") == "1":
    _patch_the_language_once_per_launch()


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray instance (2 CPUs) for every test that runs chunks on Ray: starting one takes seconds."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
