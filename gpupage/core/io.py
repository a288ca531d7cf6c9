"""Reading real traces: plain text, CSV, libCacheSim's oracleGeneral binary and Mooncake JSONL,
each optionally gzip- or zstd-compressed.

Files stream in: compressed ones are decompressed a chunk at a time, and ids are made dense
while they arrive (a hash table in numba), so a trace needs little more memory than its int32
result.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import zlib
from dataclasses import dataclass, field

import numpy as np
from numba import njit

FORMATS = ("txt", "csv", "oracle", "mooncake")
# oracleGeneral record: u32 clock time, u64 object id, u32 size, i64 next-access vtime
ORACLE_DTYPE = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
# gzip's third byte is its only compression method (deflate): three bytes make a chance match rare
MAGIC = {"zst": b"\x28\xb5\x2f\xfd", "gz": b"\x1f\x8b\x08"}
COMPRESSION_NAMES = {"zst": "zstd", "gz": "gzip"}
_CHUNK = 1 << 22  # bytes handed to a parser at once
_INT32_DISTINCT = 2**31  # dense ids 0..2**31-1 fit int32; more distinct ids switch to int64
_INT64_MAX = np.iinfo(np.int64).max
_UINT64_MAX = np.uint64(np.iinfo(np.uint64).max)
_log = logging.getLogger(__name__)


@dataclass
class FileTrace:
    ids: np.ndarray
    """int32 [T] (int64 past 2**31 distinct ids): dense block ids 0..distinct-1, in order of first appearance."""
    original: np.ndarray
    """[distinct]: the file's id for each dense id (int64; uint64 for oracleGeneral, whose ids are unsigned, and for a
    text, CSV or Mooncake file with an id of 2**63 or more, as 64-bit hashes often are)."""
    path: str
    format: str = "txt"
    """The format the file was read as (``auto`` resolved)."""
    meta: dict = field(default_factory=dict)
    """Per-request int32 arrays aligned with ``ids``; Mooncake: ``call`` (the call's index in the file),
    ``pos_in_call`` (the block's position in its call's ``hash_ids``) and ``call_len`` (the call's blocks)."""

    @property
    def requests(self) -> int:
        return int(self.ids.shape[0])

    @property
    def distinct(self) -> int:
        return int(self.original.shape[0])


def read_trace(path: str | os.PathLike, fmt: str = "auto", column: str | int = 0) -> FileTrace:
    """Read a trace file and remap its (possibly sparse) ids to dense ones.

    ``fmt``:

    * ``txt``: one id per line (blank lines skipped);
    * ``csv``: ``column`` by header name or 0-based index (a header row is detected when its
      cell is not an integer);
    * ``oracle``: libCacheSim's oracleGeneral binary (24-byte records).  ``obj_size`` is
      ignored: every request is one block of one unit.  ``next_access_vtime`` is not used
      either; where it is filled in and matches none of the readings libCacheSim's tools give
      it (0- or 1-based index of the next request to the object, or the distance to it) one
      warning is logged.  Object ids are unsigned 64-bit;
    * ``mooncake``: Mooncake / LMCache JSONL, one call per line; every call's ``hash_ids``
      (its prompt's KV blocks) in call order make the request stream, and ``meta`` keeps the
      call structure.  Each block is an independent page: a KV block's dependence on its
      prefix is not modelled;
    * ``auto`` (default): from the name, a ``.zst``/``.gz`` suffix stripped first: ``.jsonl``
      mooncake; ``.oracleGeneral``, ``.bin`` or an ``.oracleGeneral.`` infix (libCacheSim's
      ``x.oracleGeneral.bin.zst``, ``x.oracleGeneral.sample10.zst``) oracle; ``.csv`` csv;
      anything else txt.

    Compression is recognised by its magic bytes (zstd ``28 B5 2F FD``, gzip ``1F 8B 08``),
    so a compressed file is read whatever its name; a ``.zst``/``.gz`` name on an
    uncompressed file is an error.  Errors are one-line ValueErrors (OSErrors for a missing
    file) naming the problem and, for text, the line.
    """
    path = os.fspath(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; choose from auto, {', '.join(FORMATS)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"trace file not found: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"trace file is not a regular file: {path}")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"trace file is empty: {path}")
    comp = compression(path)
    if fmt == "auto":
        fmt = infer_format(path)
    reader = {"txt": _read_txt, "csv": _read_csv, "oracle": _read_oracle, "mooncake": _read_mooncake}[fmt]
    nbytes = _decompressed_size(path, comp, size)
    # every request takes at least 2 bytes ("7\n"), an oracle one 24: an upper bound on T whose
    # untouched pages cost nothing
    dense = _Dense(nbytes // (ORACLE_DTYPE.itemsize if fmt == "oracle" else 2) + 1 if nbytes else 0)
    with _open(path, comp) as stream:
        try:
            meta = reader(stream, path, dense, column)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(f"{path}: truncated or corrupt {COMPRESSION_NAMES[comp]} stream ({exc})") from None
    ids, original = dense.finish()
    if ids.size == 0:
        raise ValueError(f"trace file has no requests: {path}")
    if dense.unsigned:
        original = original.view(np.uint64)
    if fmt == "oracle":
        _check_next_access(path, comp, ids, original.size)
    return FileTrace(ids, original, path, fmt, meta or {})


def infer_format(path: str) -> str:
    """The format ``auto`` picks for a file name (see :func:`read_trace`)."""
    name = os.path.basename(path).lower()
    for ext in MAGIC:
        if name.endswith("." + ext):
            name = name[: -len(ext) - 1]
            break
    if name.endswith(".jsonl"):
        return "mooncake"
    if name.endswith((".oraclegeneral", ".bin")) or ".oraclegeneral." in name:
        return "oracle"
    return "csv" if name.endswith(".csv") else "txt"


def compression(path: str) -> str | None:
    """``zst``, ``gz`` or None, from the file's magic bytes; a compression suffix must match them."""
    with open(path, "rb") as f:
        head = f.read(4)
    found = next((c for c, magic in MAGIC.items() if head.startswith(magic)), None)
    named = next((c for c in MAGIC if path.lower().endswith("." + c)), None)
    if named and named != found:
        raise ValueError(f"{path}: named .{named} but not {COMPRESSION_NAMES[named]}-compressed "
                         f"(no {COMPRESSION_NAMES[named]} magic bytes at its start)")
    return found


def _decompressed_size(path: str, comp: str | None, size: int) -> int | None:
    """The decompressed byte count where the file states it (zstd frame header, gzip trailer mod 2**32)."""
    if comp is None:
        return size
    with open(path, "rb") as f:
        if comp == "gz":
            if size < 4:
                return None  # too short to be gzip: the read reports it
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little")
        import zstandard

        try:
            n = zstandard.frame_content_size(f.read(18))
        except zstandard.ZstdError:
            return None  # a broken header: the read reports it
        return n if n >= 0 else None


def _open(path: str, comp: str | None):
    if comp == "gz":
        return gzip.open(path, "rb")
    f = open(path, "rb")
    return f if comp is None else io.BufferedReader(_ZstdReader(f, path), buffer_size=1 << 20)


class _ZstdReader(io.RawIOBase):
    """zstd frames decompressed as they are read.

    zstandard's own stream readers end quietly at a cut-off frame, so this one decompresses
    small input pieces (bounding the output held at once) and checks that the last frame ended.
    """

    def __init__(self, f, path: str):
        import zstandard

        self._f, self._path, self._errors = f, path, zstandard.ZstdError
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._buf, self._pos = b"", 0

    def readable(self):
        return True

    def readinto(self, b):
        while self._pos == len(self._buf):
            raw = self._f.read(1 << 16)
            if not raw:
                if self._in_frame:
                    raise ValueError(f"{self._path}: truncated or corrupt zstd stream (it ends inside a frame)")
                return 0
            try:
                self._feed(raw)
            except self._errors as exc:
                raise ValueError(f"{self._path}: truncated or corrupt zstd stream ({exc})") from None
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def _feed(self, raw: bytes):
        out = []
        while raw:
            self._in_frame = True
            out.append(self._obj.decompress(raw))
            raw = b""
            if self._obj.eof:  # frame done: what follows is the next frame
                raw = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._in_frame = False
        self._buf, self._pos = b"".join(out), 0

    def close(self):
        self._f.close()
        super().close()


# ---------------------------------------------------------------------------------------------
# dense ids while the file streams in


class _Dense:
    """File ids -> 0..distinct-1 in order of first appearance, filled chunk by chunk.

    The table holds dense ids (open addressing, linear probing); a slot's key is read back from
    ``original``, so beyond the result (4 bytes a request, 8 a distinct id) only the table
    costs memory: 6-12 bytes a distinct id.  Arrays grow by ``ndarray.resize`` (realloc, no
    copy of a large block), and the result array is sized from the file where it can be.
    """

    def __init__(self, capacity: int):
        self.ids = np.empty(max(capacity, 1 << 16), dtype=np.int32)
        self.n = 0
        self.original = np.empty(1 << 12, dtype=np.int64)
        self.nd = 0
        self.table = np.full(1 << 13, -1, dtype=np.int32)
        self.unsigned = False
        """Keys are uint64 bit patterns (oracleGeneral's always; a text reader's once an id reaches 2**63):
        ``original`` reads as uint64."""

    @property
    def limit(self) -> int:
        """Distinct ids the kernels may reach before make_room must run."""
        cap = _INT32_DISTINCT if self.table.dtype == np.int32 else _INT64_MAX
        return min(self.original.size, self.table.size * 7 // 10, cap)

    def make_room(self):
        if self.n == self.ids.size:
            self.ids.resize(self.ids.size + self.ids.size // 4 + 1, refcheck=False)
        if self.nd == self.original.size:
            self.original.resize(self.original.size + self.original.size // 4 + 1, refcheck=False)
        if self.table.dtype == np.int32 and self.nd >= _INT32_DISTINCT:
            self.ids = self.ids.astype(np.int64)
            self.table = self.table.astype(np.int64)
        if self.nd >= self.table.size * 7 // 10:
            dtype, size = self.table.dtype, 2 * self.table.size
            self.table = None  # free the old table before the new one exists
            self.table = np.full(size, -1, dtype=dtype)
            _rehash(self.table, self.original, self.nd)

    def add(self, keys: np.ndarray):
        """Append int64 keys (any layout)."""
        i = 0
        while i < keys.size:
            i, self.n, self.nd = _ingest(keys, i, self.ids, self.n, self.table, self.original, self.nd, self.limit)
            if i < keys.size:
                self.make_room()

    def finish(self):
        self.table = None
        self.ids.resize(self.n, refcheck=False)
        self.original.resize(self.nd, refcheck=False)
        return self.ids, self.original


@njit(inline="always", cache=True)
def hash_slot(key, mask):
    """Slot of ``key`` in a power-of-two table (``mask`` = size - 1): splitmix64's finaliser, so consecutive and
    strided keys spread over the table (the id table here, ``learned``'s score table)."""
    h = np.uint64(key)
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h = h ^ (h >> np.uint64(31))
    return np.int64(h & np.uint64(mask))


@njit(inline="always", cache=True)
def _lookup(key, table, original, nd):
    """(dense id of key, new distinct count), inserting key when new."""
    mask = table.size - 1
    s = hash_slot(key, mask)
    while True:
        v = table[s]
        if v < 0:
            table[s] = nd
            original[nd] = key
            return nd, nd + 1
        if original[v] == key:
            return v, nd
        s = (s + 1) & mask


@njit(cache=True)
def _rehash(table, original, nd):
    mask = table.size - 1
    for v in range(nd):
        s = hash_slot(original[v], mask)
        while table[s] >= 0:
            s = (s + 1) & mask
        table[s] = v


@njit(cache=True)
def _ingest(keys, i, out, n, table, original, nd, limit):
    """Dense ids of keys[i:] into out[n:] until keys, out or the table's room run out: (i, n, nd)."""
    while i < keys.size and n < out.size and nd < limit:
        out[n], nd = _lookup(keys[i], table, original, nd)
        n += 1
        i += 1
    return i, n, nd


# ---------------------------------------------------------------------------------------------
# formats

_TXT_NOT_INT, _TXT_NEGATIVE, _TXT_TOO_BIG = 1, 2, 3


def _unsigned_keys(keys, dense: _Dense) -> np.ndarray:
    """int64 bit patterns of ids in [0, 2**64) (a list, or a uint64 array: not copied), flagging
    ``dense.unsigned`` once one reaches 2**63."""
    arr = np.asarray(keys, dtype=np.uint64)
    dense.unsigned |= bool(arr.size) and int(arr.max()) > _INT64_MAX
    return arr.view(np.int64)


@njit(cache=True)
def _parse_txt(buf, final, keys):
    """The ids of buf's whole lines (the last one too when final), one decimal id per line, blanks
    skipped, into keys (at least buf.size // 2 + 1 long).  Returns (bytes consumed, lines, ids,
    status, token start, token end); status 0, or an error on the last line counted."""
    end = buf.size
    pos = line = k = 0
    while pos < end:
        e = pos
        while e < end and buf[e] != 10:
            e += 1
        if e == end and not final:
            break  # a partial line: the caller carries it into the next chunk
        line += 1
        s, t = pos, e
        while s < t and (buf[s] == 32 or buf[s] == 9 or buf[s] == 13):
            s += 1
        while t > s and (buf[t - 1] == 32 or buf[t - 1] == 9 or buf[t - 1] == 13):
            t -= 1
        if s < t:
            d = s + 1 if buf[s] == 43 or buf[s] == 45 else s  # '+' / '-'
            if d == t:
                return pos, line, k, _TXT_NOT_INT, s, t
            v = np.uint64(0)
            for j in range(d, t):
                c = np.uint64(buf[j]) - np.uint64(48)  # wraps above 9 below '0': one compare
                if c > np.uint64(9):
                    return pos, line, k, _TXT_NOT_INT, s, t
                if v > (_UINT64_MAX - c) // np.uint64(10):
                    return pos, line, k, _TXT_TOO_BIG, s, t
                v = v * np.uint64(10) + c
            if buf[s] == 45 and v != np.uint64(0):
                return pos, line, k, _TXT_NEGATIVE, s, t
            keys[k] = v
            k += 1
        pos = e + 1
    return pos, line, k, 0, 0, 0


def _read_txt(stream, path, dense, column):
    # parsing and densifying in one numba loop ran 5x slower than the two loops apart
    carry = np.empty(0, dtype=np.uint8)
    keys = np.empty(0, dtype=np.uint64)
    lines = 0
    while True:
        chunk = stream.read(_CHUNK)
        final = not chunk
        buf = np.concatenate([carry, np.frombuffer(chunk, dtype=np.uint8)]) if carry.size else \
            np.frombuffer(chunk, dtype=np.uint8)
        if keys.size < buf.size // 2 + 1:
            keys = np.empty(buf.size // 2 + 1, dtype=np.uint64)
        pos, line, k, status, s, t = _parse_txt(buf, final, keys)
        dense.add(_unsigned_keys(keys[:k], dense))
        lines += line
        if status:
            tok = bytes(buf[s:t]).decode("utf-8", errors="replace")
            what = {_TXT_NOT_INT: f"{tok[:40]!r} is not an integer block id",
                    _TXT_NEGATIVE: f"negative block id {tok[:40]}",
                    _TXT_TOO_BIG: f"block id {tok[:40]} does not fit in 64 bits (ids must be < 2**64)"}[status]
            raise ValueError(f"{path}: line {lines}: {what}")
        if final:
            return None
        carry = buf[pos:].copy()


def _read_csv(stream, path, dense, column):
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    rows = csv.reader(text)
    header = next((r for r in rows if any(c.strip() for c in r)), None)
    if header is None:
        return None
    try:
        idx = int(column)
    except ValueError:
        names = [h.strip() for h in header]
        if column not in names:
            raise ValueError(f"{path}: no column {column!r} in header {names}") from None
        idx = names.index(column)
    if not 0 <= idx < len(header):
        raise ValueError(f"{path}: column {idx} out of range (rows have {len(header)} columns)")
    cells, lines = [], []
    if _is_int(header[idx]):
        cells.append(header[idx].strip())
        lines.append(rows.line_num)
    for row in rows:
        if not any(c.strip() for c in row):
            continue
        if idx >= len(row):
            raise ValueError(f"{path}: line {rows.line_num} has no column {idx}")
        cells.append(row[idx].strip())
        lines.append(rows.line_num)
        if len(cells) == _CHUNK // 8:
            dense.add(_parse_cells(cells, lines, path, dense))
            cells, lines = [], []
    dense.add(_parse_cells(cells, lines, path, dense))
    return None


def _parse_cells(cells: list[str], lines: list[int], path: str, dense: _Dense) -> np.ndarray:
    """int64 keys of a chunk of CSV cells (uint64 bit patterns once an id reaches 2**63: ``dense.unsigned``)."""
    try:
        arr = np.array(cells, dtype=np.int64)
    except (ValueError, OverflowError):
        vals = []
        for tok, ln in zip(cells, lines):
            try:
                v = int(tok)
            except ValueError:
                raise ValueError(f"{path}: line {ln}: {tok[:40]!r} is not an integer block id") from None
            if v < 0:
                raise ValueError(f"{path}: line {ln}: negative block id {tok[:40]}") from None
            if v >= 2**64:
                raise ValueError(f"{path}: line {ln}: block id {tok[:40]} does not fit in 64 bits (ids must be < 2**64)")
            vals.append(v)
        return _unsigned_keys(vals, dense)  # int64 failed on valid ids: one is 2**63 or more
    if arr.size and arr.min() < 0:
        i = int(np.argmax(arr < 0))
        raise ValueError(f"{path}: line {lines[i]}: negative block id {arr[i]}")
    return arr


def _read_oracle(stream, path, dense, column):
    rec_size = ORACLE_DTYPE.itemsize
    dense.unsigned = True  # obj_id is u64
    carry, total = b"", 0
    while True:
        chunk = stream.read(_CHUNK // rec_size * rec_size)
        if not chunk:
            break
        buf = carry + chunk if carry else chunk
        whole = len(buf) // rec_size * rec_size
        dense.add(np.frombuffer(buf, dtype=ORACLE_DTYPE, count=whole // rec_size)["id"].view(np.int64))
        carry = buf[whole:]
        total += len(chunk)
    if carry:
        raise ValueError(f"{path}: {total} bytes of records is not a whole number of 24-byte oracleGeneral records")
    return None


_READINGS = ("0-based index", "1-based index as libCacheSim's traceConv writes", "distance as its FAQ says")


def _check_next_access(path: str, comp: str | None, ids: np.ndarray, distinct: int):
    """One logged warning when next_access_vtime is filled in but fits no reading of it.

    A second pass over the file: under each reading every claimed next request must hold the
    same block, later, and be claimed once, and the claims must number requests - distinct;
    together that makes them exactly the next uses.  Three bitmaps of T bits are the memory."""
    T = ids.size
    marks = np.zeros((len(_READINGS), (T + 7) // 8), dtype=np.uint8)
    alive = np.ones(len(_READINGS), dtype=np.bool_)
    counts = np.zeros(len(_READINGS), dtype=np.int64)
    fail_at = np.full(len(_READINGS), -1, dtype=np.int64)
    filled, t0 = False, 0
    with _open(path, comp) as stream:
        while True:
            chunk = stream.read(_CHUNK // ORACLE_DTYPE.itemsize * ORACLE_DTYPE.itemsize)
            if not chunk:
                break
            nxt = np.frombuffer(chunk, dtype=ORACLE_DTYPE)["next"]
            filled = filled or bool(np.any(nxt != 0))
            _check_next_chunk(ids, t0, nxt, alive, marks, counts, fail_at)
            t0 += nxt.size
    ok = alive & (counts == T - distinct)
    if filled and not ok.any():
        where = (f"every reading fails by request {int(fail_at.max())}" if not alive.any()
                 else "requests used again later have none")
        _log.warning(f"{path}: next_access_vtime disagrees with the trace's next uses under every reading "
                     f"({', '.join(_READINGS)}; {where}); it is ignored")


@njit(cache=True)
def _check_next_chunk(ids, t0, nxt, alive, marks, counts, fail_at):
    T = ids.size
    for i in range(nxt.size):
        c = nxt[i]
        if c == -1 or c == _INT64_MAX:  # libCacheSim's two "no next access" values
            continue
        t = t0 + i
        for k in range(3):
            if not alive[k]:
                continue
            good = 0 < c <= T
            target = 0
            if good:
                target = c if k == 0 else (c - 1 if k == 1 else t + c)
                good = t < target < T and ids[target] == ids[t] and not marks[k, target >> 3] & (1 << (target & 7))
            if good:
                marks[k, target >> 3] |= 1 << (target & 7)
                counts[k] += 1
            else:
                alive[k] = False
                fail_at[k] = t


def _read_mooncake(stream, path, dense, column):
    keys: list[int] = []
    lens: list[int] = []
    for lineno, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            call = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{path}: line {lineno}: malformed JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(call, dict) or "hash_ids" not in call:
            raise ValueError(f"{path}: line {lineno}: no \"hash_ids\" field")
        blocks = call["hash_ids"]
        if not isinstance(blocks, list):
            raise ValueError(f"{path}: line {lineno}: \"hash_ids\" is a {type(blocks).__name__}, not a list")
        for j, b in enumerate(blocks):
            if type(b) is not int or not 0 <= b < 2**64:  # bool is an int subclass: excluded
                raise ValueError(f"{path}: line {lineno}: hash_ids[{j}] = {json.dumps(b)[:40]} is not a block id "
                                 f"(an integer in [0, 2**64))")
        keys.extend(blocks)
        lens.append(len(blocks))
        if len(keys) >= _CHUNK // 8:
            dense.add(_unsigned_keys(keys, dense))
            keys = []
    dense.add(_unsigned_keys(keys, dense))
    call_len = np.array(lens, dtype=np.int32)
    starts = np.cumsum(call_len, dtype=np.int64) - call_len
    T = int(call_len.sum(dtype=np.int64))
    return {"call": np.repeat(np.arange(call_len.size, dtype=np.int32), call_len),
            "pos_in_call": (np.arange(T, dtype=np.int64) - np.repeat(starts, call_len)).astype(np.int32),
            "call_len": np.repeat(call_len, call_len)}


def write_oracle(path: str, ids: np.ndarray) -> None:
    """Write ids as an oracleGeneral file (size 1, next-access vtime the 0-based index, -1 for none)."""
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
