"""Results files that survive interruption: atomic replacement and resumable, locked CSV tables.

Two ways to write results, chosen by what the file is:

* A file written whole (a report, a checkpoint, a plot, a log rewritten each step) goes
  through :func:`atomic_path`: it is written beside its destination and renamed over it,
  so a reader (or an interruption) sees the old file or the new one, never a torn one.
* A table of cells that grows over a long run (a sweep) is a :class:`ResultsTable`: a CSV
  appended whole rows at a time, each batch in one ``write`` system call, so SIGINT and
  SIGTERM stop it between rows; a short write (full disk) is cut back to the last whole
  row.  kill -9 may cut a batch that spans pages short, mid-row (Linux stops a write
  between pages for a fatal signal, and nothing runs after it): reopening drops the cut
  row.  Rows are keyed by cell, a JSON sidecar records the run's specification, and a
  second writer is refused by an advisory lock.  Reopening the
  same specification resumes: finished cells are skipped, in whatever order they were
  written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

try:  # advisory locks are POSIX; elsewhere a second writer is not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


def check_target(path) -> None:
    """A path that results replace or grow must be a regular file or nothing yet: replacing a device, a
    pipe or a socket with a file (``--out /dev/null`` run as root) is refused, as a directory is."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a results file")
    if path.exists() and not path.is_file():
        raise OSError(f"{path} is not a regular file (a device, pipe or socket); choose another --out")


def check_writable(path) -> None:
    """Fail before a long run, not after it, where ``path`` could not be written: it must pass
    :func:`check_target`, and a file must be creatable beside it (one is, then removed)."""
    path = Path(path)
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from None


@contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The result has the permissions a plain ``open(path, "w")`` would give it (those of the file it replaces, else
    0o666 less the umask), not mkstemp's private 0o600."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)  # the only portable way to read it
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def claim_dir(out_dir, names, overwrite: bool = False) -> None:
    """Refuse to write a run's files ``names`` into ``out_dir`` where any already exists, unless ``overwrite``:
    a whole-directory command never replaces an earlier run's results without being asked."""
    found = [n for n in names if os.path.lexists(os.path.join(out_dir, n))]
    if found and not overwrite:
        raise ValueError(f"{out_dir} holds an earlier run's {', '.join(found)}; "
                         "pass --overwrite to replace them or choose another --out")


def spec_path(path) -> Path:
    """The sidecar recording the specification of the run that writes ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".spec.json")


class ResultsTable:
    """A CSV of cells, resumable and safe to interrupt.

    Args:
        path: the CSV.
        columns: its header.
        key: the columns that identify a cell.
        spec: a JSON-able record of everything that determines the rows; reopening with
            another spec is an error, never an overwrite.
        overwrite: start over even if ``path`` holds rows.

    ``done`` is the set of finished cells (tuples of the key columns' text as written).
    Use as a context manager; ``append(rows)`` writes whole rows in one system call.
    """

    def __init__(self, path, columns, key, spec: dict, overwrite: bool = False):
        self.path = Path(path)
        self.columns = list(columns)
        self.key = list(key)
        self.spec = spec
        self.overwrite = overwrite
        self.fd = None
        self.done: set[tuple] = set()
        self.resumed = 0

    def __enter__(self):
        check_target(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock()
            self._open()
        except BaseException:
            os.close(self.fd)
            self.fd = None
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def _lock(self):
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{self.path} is being written by another gpupage run (it holds the file's lock); "
                               "wait for it or choose another --out") from None

    def _open(self):
        size = os.fstat(self.fd).st_size
        sidecar = spec_path(self.path)
        if size and not self.overwrite:
            if not sidecar.exists():
                raise ValueError(f"{self.path} already exists and was not written by a resumable run "
                                 f"(no {sidecar.name}); pass --overwrite to replace it or choose another --out")
            try:
                recorded = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                raise ValueError(f"{sidecar} is unreadable; pass --overwrite to start over") from None
            diff = spec_diff(recorded, self.spec)
            if diff:
                raise ValueError(f"{self.path} holds results of a different run (differs in: {', '.join(diff)}); "
                                 "pass --overwrite to replace them or choose another --out")
            self._read_rows(size)
            return
        os.ftruncate(self.fd, 0)
        write_text_atomic(sidecar, json.dumps(self.spec, indent=1, sort_keys=True) + "\n")
        self._write_all(self._encode([dict(zip(self.columns, self.columns))]))

    def _read_rows(self, size: int):
        data = os.pread(self.fd, size, 0)
        whole = data.rfind(b"\n") + 1  # a row cut by a crash has no newline: drop it
        if whole < size:
            os.ftruncate(self.fd, whole)
        lines = data[:whole].decode().splitlines()
        if not lines or next(csv.reader([lines[0]])) != self.columns:
            raise ValueError(f"{self.path} does not have the expected header ({','.join(self.columns)}); "
                             "pass --overwrite to replace it")
        idx = [self.columns.index(k) for k in self.key]
        for row in csv.reader(lines[1:]):
            if len(row) == len(self.columns):
                self.done.add(tuple(row[i] for i in idx))
        self.resumed = len(self.done)

    def cell(self, row: dict) -> tuple:
        """The key of ``row`` as it reads back from the file."""
        return tuple(_text(row[k]) for k in self.key)

    def append(self, rows: list[dict]) -> None:
        """Write whole rows, in one system call; skip cells already done."""
        rows = [r for r in rows if self.cell(r) not in self.done]
        if not rows:
            return
        self._write_all(self._encode(rows))
        self.done.update(self.cell(r) for r in rows)

    def _encode(self, rows) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:
            w.writerow([_text(r[c]) for c in self.columns])
        return buf.getvalue().encode()

    def _write_all(self, data: bytes):
        start = os.lseek(self.fd, 0, os.SEEK_END)
        try:
            written = os.write(self.fd, data)
            if written != len(data):  # a full disk writes short: never leave a torn row
                raise OSError(f"short write to {self.path} (disk full?)")
        except OSError:
            os.ftruncate(self.fd, start)
            raise


def _text(v) -> str:
    """How a value is written (floats to 6 significant digits, as before)."""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def file_identity(path) -> dict:
    """Path (absolute), size and SHA-256 of a file's bytes.  A content hash, not mtime: a trace copied
    to each node of a cluster (new mtime, maybe another path) is still the same trace, and a merge of
    its shards checks exactly that; hashing costs about what reading it does."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return {"path": os.path.abspath(path), "size": os.path.getsize(path), "sha256": h.hexdigest()}


def _content(v):
    """A record value as runs compare it: a :func:`file_identity` by its content alone (a trace or checkpoint
    copied to another path, as onto each node of a cluster, is the same file); dicts and lists item by item."""
    if isinstance(v, dict):
        if set(v) == {"path", "size", "sha256"}:
            return {"size": v["size"], "sha256": v["sha256"]}
        return {k: _content(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_content(x) for x in v]
    return v


def spec_diff(a: dict, b: dict) -> list[str]:
    """The top-level keys in which two runs' specification records differ (files compared by content)."""
    return sorted(k for k in set(a) | set(b) if _content(a.get(k)) != _content(b.get(k)))


def recorded_options(options: dict | None) -> dict:
    """Policy options as a results file's specification records them: a checkpoint given as a path by its
    :func:`file_identity`, so a run resumed after the file changed is refused instead of mixing two networks'
    rows (a checkpoint given as a dict or a network object has no file to name: it is recorded as its type)."""
    out = dict(options or {})
    ck = out.get("checkpoint")
    if isinstance(ck, (str, os.PathLike)):
        out["checkpoint"] = file_identity(ck) if os.path.isfile(ck) else os.fspath(ck)
    elif ck is not None:
        out["checkpoint"] = type(ck).__name__
    return out


__all__ = ["atomic_path", "write_text_atomic", "spec_path", "ResultsTable", "file_identity", "recorded_options",
           "spec_diff"]


def checkpoint_format(path) -> str | None:
    """The ``format`` a gpupage checkpoint records (``gpupage-controller-1``, ``gpupage-learned-1``, ...), or
    None for anything else.  Read with ``weights_only``: every gpupage checkpoint holds plain types, and
    a file that is not one is never unpickled."""
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not ours, whatever the unpickler says: the format's own loader diagnoses it
        return None
    return ck.get("format") if isinstance(ck, dict) else None
