"""What a run may use: memory estimated before allocating, and threads that share a busy machine well.

Memory.  Every allocation that grows with the input (lanes x requests, blocks, K,
agents) is estimated first and refused, in one line with the estimate, when it
exceeds the memory available: the smaller of ``MemAvailable`` and what the
cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) still allows.
``GPUPAGE_MEMORY_LIMIT`` (e.g. ``16G``) or the commands' ``--memory-limit``
replaces that figure.

Threads.  numba's default OpenMP layer keeps its threads spinning at every
barrier, so a parallel call waits for the slowest thread, and a thread whose
core another process holds arrives a scheduler tick late, call after call.
:func:`configure_threads` picks numba's ``workqueue`` layer (threads sleep
instead of spinning), and :func:`work_threads` gives each parallel call no more
threads than it has chunks of work, so single-lane work never wakes the pool.

Stdlib only at import: the CLI imports this module for ``--help``.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from contextlib import contextmanager

MEMORY_ENV = "GPUPAGE_MEMORY_LIMIT"
INT64_MAX = (1 << 63) - 1
MAX_REQUESTS = (1 << 30) - 1
"""Longest trace a lane may have: next-use times are int32 with "never" = 2**30."""
MAX_BLOCKS = 1 << 31
"""Most distinct blocks of a generated trace family (ids are int32)."""
_CHECK_FROM = 1 << 26  # estimates below 64 MiB are never refused: no need to read /proc

_override: int | None = None


class MemoryLimitError(ValueError):
    """A run would need more memory than is available (a ValueError: callers report it in one line)."""


def parse_size(text: str, name: str = MEMORY_ENV) -> int:
    """'16G', '512M', '1.5T', '2GiB', '100000' (bytes) -> bytes; binary units."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(?:i?b)?\s*", str(text), flags=re.I)
    if not m:
        raise ValueError(f"{name}: cannot read {text!r} as a size (use e.g. 16G or 512M)")
    value = float(m.group(1)) * 1024 ** "bkmgtp".find(m.group(2).lower() or "b")
    if not value >= 1:
        raise ValueError(f"{name}: a memory limit must be at least 1 byte, got {text!r}")
    return int(value)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def set_memory_limit(nbytes: int | None) -> None:
    """Override the available memory (None: back to the environment and the machine)."""
    global _override
    _override = nbytes


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Bytes the cgroup still allows (limit - usage), or None without a limit."""
    paths = {"/"}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers in ("", "memory") or "memory" in controllers.split(","):
                    paths.add(path or "/")
    except OSError:
        pass
    room = None
    for p in paths:
        for base, limit, usage in (("/sys/fs/cgroup", "memory.max", "memory.current"),
                                   ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes")):
            d = os.path.join(base, p.lstrip("/"))
            lim = _read_int(os.path.join(d, limit))
            if lim is None or lim >= 1 << 60:  # "max", or v1's "no limit" (a page-rounded 2**63)
                continue
            r = lim - (_read_int(os.path.join(d, usage)) or 0)
            room = r if room is None else min(room, r)
    return room


def available_memory() -> tuple[int | None, str]:
    """(bytes a run may still allocate or None when unknown, where the figure comes from)."""
    if _override is not None:
        return _override, "--memory-limit"
    env = os.environ.get(MEMORY_ENV)
    if env:
        return parse_size(env), MEMORY_ENV
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    room = _cgroup_room()
    if room is not None and (avail is None or room < avail):
        return max(room, 0), "the cgroup's memory limit"
    return avail, "MemAvailable"


def require(nbytes: float, what: str) -> None:
    """Refuse, in one line naming the estimate, ``what`` when it needs more memory than is available."""
    if nbytes < _CHECK_FROM and _override is None and not os.environ.get(MEMORY_ENV):
        return
    room, source = available_memory()
    if room is not None and nbytes > room:
        raise MemoryLimitError(f"{what} needs about {format_size(nbytes)}, more than the {format_size(room)} "
                               f"available ({source}); set {MEMORY_ENV} (e.g. 16G) or --memory-limit to override")


# ------------------------------------------------------------------------------------------- settings


def check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    """A one-line ValueError unless ``value`` is an integer in [lo, hi] (no upper bound when hi is None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")


def check_number(name: str, value, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> None:
    """A one-line ValueError unless ``value`` is a finite number in [lo, hi] ((lo, hi] with ``lo_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        if lo is not None and hi is not None:
            span = f" in {'(' if lo_open else '['}{lo}, {hi}]"
        else:
            span = f" {'>' if lo_open else '>='} {lo}" if lo is not None else f" <= {hi}" if hi is not None else ""
        raise ValueError(f"{name} must be a finite number{span}, got {value!r}")


# ------------------------------------------------------------------------------------------- threads


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        n = os.cpu_count() or 1
    quota = None
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            q, period = f.read().split()
            if q != "max":
                quota = int(q) / int(period)
    except (OSError, ValueError):
        q, period = _read_int("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), _read_int("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if q and period:
            quota = q / period
    return max(1, min(n, math.ceil(quota)) if quota else n)


def configure_threads(threads: int | None = None) -> int:
    """Given ``threads``, numba's thread count, capped at numba's pool (one thread per core); returns the
    count in force.  (Its threading layer is chosen when ``gpupage`` is imported.)"""
    # torch's OpenMP threads spin too; the runtime reads this when torch is imported (the CLI calls us first)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numba

    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return numba.get_num_threads()


@contextmanager
def torch_threads(rows: int):
    """Within the block torch computes on one thread unless its ops see ``rows`` >= 2**15 rows.

    Layer norm and GELU fork even for a few rows, and a fork waits for a thread whose core
    another process holds: on a busy machine one lane's forward pass took 10-100x longer."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(before if rows >= 1 << 15 else 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def work_threads(chunks: int):
    """Within the block numba's parallel calls use at most ``chunks`` threads (at least 1)."""
    import numba

    before = configure_threads()
    numba.set_num_threads(max(1, min(before, chunks)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# ------------------------------------------------------------------------------------------- estimates


def simulate_bytes(B: int, T: int, return_hits: bool, remapped: bool = False, chunks: int = 0,
                   n_ids: int = 0, kmax: int = 0) -> int:
    """Memory a CPU ``simulate`` call adds to its input and its dense ids (its caller adds the converted
    copy): per-request outputs (victims mapped back to sparse ids take a second copy), and each lane
    chunk's scratch (per-block maps, one lane's next uses or predictions, per-slot keys)."""
    per_request = (18 if remapped else 9) if return_hits else 0
    return B * T * per_request + chunks * (64 * n_ids + 16 * T + 64 * kmax) + 32 * B


def lanes_that_fit(per_lane: int, most: int) -> int:
    """Lanes a batch may hold: ``most``, or fewer so that they take at most half the memory available."""
    room, _ = available_memory()
    return most if room is None else max(1, min(most, room // 2 // max(per_lane, 1)))
