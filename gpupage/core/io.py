"""Reading real traces: plain text, CSV and libCacheSim's oracleGeneral binary."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

FORMATS = ("txt", "csv", "oracle")
# oracleGeneral record: u32 clock time, u64 object id, u32 size, i64 next-access vtime
ORACLE_DTYPE = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


@dataclass
class FileTrace:
    ids: np.ndarray
    """int64 [T]: dense block ids 0..distinct-1, in order of first appearance."""
    original: np.ndarray
    """[distinct]: the file's id for each dense id."""
    path: str

    @property
    def requests(self) -> int:
        return int(self.ids.shape[0])

    @property
    def distinct(self) -> int:
        return int(self.original.shape[0])


def read_trace(path: str, fmt: str = "txt", column: str | int = 0) -> FileTrace:
    """Read a trace file and remap its (possibly sparse) ids to dense ones.

    ``fmt``: ``txt`` (one id per line), ``csv`` (``column`` by header name or
    0-based index; a header row is detected when its cell is not an integer),
    ``oracle`` (libCacheSim oracleGeneral binary).  Raises ValueError with a
    one-line message naming the problem (empty, malformed, unknown format).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"trace file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"trace file is empty: {path}")
    raw = {"txt": _read_txt, "csv": _read_csv, "oracle": _read_oracle}[fmt](path, column)
    if raw.size == 0:
        raise ValueError(f"trace file has no requests: {path}")
    # dense ids in order of first appearance, so the mapping reads naturally
    uniq, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return FileTrace(rank[inverse].astype(np.int64), uniq[order], path)


def _parse_ints(tokens: list[str], path: str, what: str) -> np.ndarray:
    try:
        arr = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        for i, tok in enumerate(tokens):
            try:
                int(tok)
            except ValueError:
                raise ValueError(f"{path}: {what} {i + 1}: {tok[:40]!r} is not an integer block id") from None
        raise ValueError(f"{path}: block id out of range") from None
    if arr.size and arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{path}: {what} {i + 1}: negative block id {arr[i]}")
    return arr


def _read_txt(path: str, column) -> np.ndarray:
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    tokens = [ln.strip() for ln in lines]
    # line numbers in messages count blank lines too
    keep = [i for i, tok in enumerate(tokens) if tok]
    try:
        return _parse_ints([tokens[i] for i in keep], path, "request")
    except ValueError as exc:
        msg = str(exc)
        if ": request " in msg:
            n = int(msg.split(": request ")[1].split(":")[0])
            msg = msg.replace(f": request {n}:", f": line {keep[n - 1] + 1}:")
        raise ValueError(msg) from None


def _read_csv(path: str, column) -> np.ndarray:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        return np.empty(0, dtype=np.int64)
    header = rows[0]
    try:
        idx = int(column)
    except ValueError:
        names = [h.strip() for h in header]
        if column not in names:
            raise ValueError(f"{path}: no column {column!r} in header {names}") from None
        idx = names.index(column)
    if not 0 <= idx < len(header):
        raise ValueError(f"{path}: column {idx} out of range (rows have {len(header)} columns)")
    start = 0 if _is_int(header[idx]) else 1
    cells = []
    for n, row in enumerate(rows[start:], start=start + 1):
        if idx >= len(row):
            raise ValueError(f"{path}: row {n} has no column {idx}")
        cells.append(row[idx].strip())
    return _parse_ints(cells, path, "row")


def _read_oracle(path: str, column) -> np.ndarray:
    size = os.path.getsize(path)
    if size % ORACLE_DTYPE.itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of 24-byte oracleGeneral records")
    ids = np.fromfile(path, dtype=ORACLE_DTYPE)["id"]
    if ids.size and ids.max() >= 2**63:
        raise ValueError(f"{path}: block id {int(ids.max())} does not fit in int64")
    return ids.astype(np.int64)


def write_oracle(path: str, ids: np.ndarray) -> None:
    """Write ids as an oracleGeneral file (size 1, next-access vtime filled in, -1 for none)."""
    ids = np.asarray(ids, dtype=np.int64)
    rec = np.zeros(ids.size, dtype=ORACLE_DTYPE)
    rec["time"] = np.arange(ids.size, dtype=np.uint32)
    rec["id"] = ids
    rec["size"] = 1
    rec["next"] = next_access(ids)
    rec.tofile(path)


def next_access(ids: np.ndarray) -> np.ndarray:
    """next_access[t] = next index with the same id, or -1 (vectorised by a stable sort on id)."""
    order = np.argsort(ids, kind="stable")
    nxt = np.full(ids.size, -1, dtype=np.int64)
    same = ids[order[1:]] == ids[order[:-1]]
    nxt[order[:-1][same]] = order[1:][same]
    return nxt


def _is_int(text: str) -> bool:
    try:
        int(text.strip())
        return True
    except ValueError:
        return False
