"""Trace files: every format and compression against plain Python encoders and references, the
Mooncake call structure, next_access_vtime readings, and one-line errors on bad input."""

import gzip
import json
import logging
import os
import struct

import numpy as np
import pytest
import zstandard
from test_cli import assert_one_line_error, run

from gpupage.core import io as gio
from gpupage.cli.options import TRACE_FORMATS
from gpupage.core.io import FORMATS, infer_format, read_trace
from gpupage.core.simulate import simulate

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "traces")
MOONCAKE = os.path.join(SHARED, "mooncake_conversation_train.jsonl")
COMPRESSIONS = ["", ".gz", ".zst"]


def compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    if suffix == ".zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def sparse_trace(T=3000, distinct=400, seed=0):
    gen = np.random.default_rng(seed)
    pool = gen.integers(0, 2**62, size=distinct)
    return [int(x) for x in pool[np.minimum(gen.zipf(1.3, size=T) - 1, distinct - 1)]]


def first_appearance(ids):
    seen = {}
    return [seen.setdefault(x, len(seen)) for x in ids], list(seen)


def encode(ids, fmt) -> bytes:
    """The trace in each format, written without gpupage (blank lines and stray whitespace included)."""
    if fmt == "txt":
        return "".join(f" {x}\r\n" + ("\n" if i % 97 == 0 else "") for i, x in enumerate(ids)).encode()
    if fmt == "csv":
        return ("time,obj,size\n" + "".join(f"{i},{x},4096\n" for i, x in enumerate(ids))).encode()
    if fmt == "oracle":
        return b"".join(struct.pack("<IQIq", i, x, 4096, -1) for i, x in enumerate(ids))
    calls, i = [], 0
    while i < len(ids):  # calls of 1..20 blocks
        n = 1 + (i * 7) % 20
        calls.append(json.dumps({"timestamp": i, "input_length": 512 * n, "output_length": 9,
                                 "hash_ids": ids[i:i + n]}))
        i += n
    return ("\n".join(calls) + "\n").encode()


EXT = {"txt": ".txt", "csv": ".csv", "oracle": ".oracleGeneral.bin", "mooncake": ".jsonl"}


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("suffix", COMPRESSIONS)
def test_round_trip_every_format_and_compression(tmp_path, fmt, suffix):
    ids = sparse_trace()
    path = write(tmp_path, "t" + EXT[fmt] + suffix, compress(encode(ids, fmt), suffix))
    tr = read_trace(path, column="obj")  # auto
    dense, original = first_appearance(ids)
    assert tr.format == fmt
    assert tr.ids.dtype == np.int32 and tr.ids.tolist() == dense
    assert tr.original.tolist() == original
    assert tr.requests == len(ids) and tr.distinct == len(original)
    assert read_trace(path, fmt, column=1).ids.tolist() == dense


@pytest.mark.parametrize("chunk", [24, 100])
@pytest.mark.parametrize("fmt", FORMATS)
def test_chunk_boundaries_inside_lines_and_records(tmp_path, monkeypatch, fmt, chunk):
    monkeypatch.setattr(gio, "_CHUNK", chunk)
    ids = sparse_trace(T=500)
    path = write(tmp_path, "t" + EXT[fmt] + ".zst", compress(encode(ids, fmt), ".zst"))
    tr = read_trace(path, column="obj")
    assert tr.original[tr.ids].tolist() == ids


def test_long_zstd_stream_without_content_size_and_several_frames(tmp_path):
    # 200k requests: many 64 KiB input pieces, table and result growth (no size in the header)
    ids = sparse_trace(T=200_000, distinct=60_000, seed=1)
    data = encode(ids, "txt")
    half = len(data) // 2
    cut = data.index(b"\n", half) + 1
    frames = []
    for part in (data[:cut], data[cut:]):
        buf = zstandard.ZstdCompressor().compressobj()
        frames.append(buf.compress(part) + buf.flush())
    assert zstandard.get_frame_parameters(frames[0]).content_size == zstandard.CONTENTSIZE_UNKNOWN
    tr = read_trace(write(tmp_path, "t.txt.zst", b"".join(frames)))
    dense, original = first_appearance(ids)
    assert tr.ids.tolist() == dense and tr.original.tolist() == original


def test_more_than_int32_distinct_ids_switch_to_int64(tmp_path, monkeypatch):
    monkeypatch.setattr(gio, "_INT32_DISTINCT", 50)
    ids = sparse_trace(T=2000, distinct=300)
    tr = read_trace(write(tmp_path, "t.txt", encode(ids, "txt")))
    assert tr.ids.dtype == np.int64 and tr.ids.tolist() == first_appearance(ids)[0]


def test_oracle_ids_are_unsigned_64_bit(tmp_path):
    ids = [2**64 - 1, 2**63, 5, 2**63, 2**64 - 1]
    tr = read_trace(write(tmp_path, "t.bin", encode(ids, "oracle")))
    assert tr.original.dtype == np.uint64 and tr.original[tr.ids].tolist() == ids


@pytest.mark.parametrize("fmt", ["txt", "csv", "mooncake"])
def test_text_ids_up_to_2_64_read_as_unsigned(tmp_path, fmt):
    """64-bit hashes written in decimal reach 2**63 half the time: they read as uint64, and ids that equal only
    as bit patterns (2**63 and -2**63) never meet, since negative ids are refused."""
    ids = [2**64 - 1, 2**63, 5, 2**63 - 1, 2**63, 2**64 - 1, 0]
    tr = read_trace(write(tmp_path, "t" + EXT[fmt], encode(ids, fmt)), column="obj")
    assert tr.original.dtype == np.uint64 and tr.original[tr.ids].tolist() == ids
    assert tr.ids.tolist() == first_appearance(ids)[0]
    small = read_trace(write(tmp_path, "s" + EXT[fmt], encode([2**63 - 1, 3, 2**63 - 1], fmt)), column="obj")
    assert small.original.dtype == np.int64 and small.original.tolist() == [2**63 - 1, 3]


def test_mooncake_call_structure(tmp_path):
    lines = ['{"timestamp": 0, "input_length": 1500, "output_length": 3, "hash_ids": [10, 11, 12]}', "",
             '{"timestamp": 5, "input_length": 10, "output_length": 3, "hash_ids": []}',
             '  ', '{"timestamp": 9, "hash_ids": [10, 11, 99, 100]}']
    tr = read_trace(write(tmp_path, "m.jsonl", ("\n".join(lines) + "\n").encode()))
    assert tr.format == "mooncake"
    assert tr.original[tr.ids].tolist() == [10, 11, 12, 10, 11, 99, 100]
    assert tr.meta["call"].tolist() == [0, 0, 0, 2, 2, 2, 2]
    assert tr.meta["pos_in_call"].tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert tr.meta["call_len"].tolist() == [3, 3, 3, 4, 4, 4, 4]
    assert all(a.dtype == np.int32 for a in tr.meta.values())


@pytest.mark.skipif(not os.path.exists(MOONCAKE), reason="mooncake_conversation_train.jsonl not present")
def test_real_mooncake_trace():
    tr = read_trace(MOONCAKE)
    assert tr.format == "mooncake"
    assert (tr.requests, tr.distinct) == (197_462, 128_199)
    assert int(tr.meta["call"].max()) + 1 == 8000 == np.unique(tr.meta["call"]).size
    with open(MOONCAKE) as f:
        calls = [json.loads(ln)["hash_ids"] for ln in f if ln.strip()]
    assert tr.original[tr.ids].tolist() == [b for c in calls for b in c]
    assert tr.meta["pos_in_call"].tolist() == [j for c in calls for j in range(len(c))]
    assert tr.meta["call_len"].tolist() == [len(c) for c in calls for _ in c]


@pytest.mark.parametrize("name, fmt", [
    ("a.jsonl", "mooncake"), ("a.JSONL.zst", "mooncake"), ("a.jsonl.gz", "mooncake"),
    ("w01.oracleGeneral.bin.zst", "oracle"), ("cluster52.oracleGeneral.sample10.zst", "oracle"),
    ("x.oracleGeneral", "oracle"), ("x.bin", "oracle"), ("x.BIN.gz", "oracle"),
    ("a.csv", "csv"), ("a.csv.zst", "csv"), ("a.txt", "txt"), ("a.txt.gz", "txt"), ("trace", "txt"),
    ("a.zst", "txt"), ("a.json", "txt"),
])
def test_auto_format_from_the_name(name, fmt):
    assert infer_format(os.path.join("some.dir.jsonl", name)) == fmt


def test_cli_format_choices_are_the_readers():
    assert TRACE_FORMATS == ("auto", *FORMATS)


def _oracle_with_next(ids, nxt):
    rec = np.zeros(len(ids), dtype=[("t", "<u4"), ("id", "<u8"), ("s", "<u4"), ("n", "<i8")])
    rec["t"], rec["id"], rec["s"], rec["n"] = np.arange(len(ids)), ids, 1, nxt
    return rec.tobytes()


def _next_uses(ids):
    """next index with the same id, or None (a plain loop)."""
    out, later = [None] * len(ids), {}
    for t in range(len(ids) - 1, -1, -1):
        out[t] = later.get(ids[t])
        later[ids[t]] = t
    return out


NONE = np.iinfo(np.int64).max


@pytest.mark.parametrize("reading, warns", [
    (lambda t, n: -1 if n is None else n, False),                 # 0-based index (gpupage's write_oracle)
    (lambda t, n: -1 if n is None else n + 1, False),             # 1-based (libCacheSim's traceConv)
    (lambda t, n: NONE if n is None else n - t, False),           # distance (libCacheSim's FAQ), INT64_MAX for none
    (lambda t, n: 0, False),                                      # not filled in
    (lambda t, n: -1, True),                                      # reuses without a next access
    (lambda t, n: -1 if n is None else n + 2, True),              # off by two
    (lambda t, n: -1 if n is None or t == 700 else n, True),      # one claim missing
])
def test_next_access_vtime_readings(tmp_path, caplog, reading, warns):
    ids = sparse_trace(T=1000, distinct=50)
    nxt = [reading(t, n) for t, n in enumerate(_next_uses(ids))]
    path = write(tmp_path, "t.oracleGeneral.zst", compress(_oracle_with_next(ids, nxt), ".zst"))
    with caplog.at_level(logging.WARNING, logger="gpupage.core.io"):
        tr = read_trace(path)
    assert tr.original[tr.ids].tolist() == ids
    msgs = [r.getMessage() for r in caplog.records if r.name == "gpupage.core.io"]
    assert len(msgs) == (1 if warns else 0), msgs
    if warns:
        assert "next_access_vtime disagrees" in msgs[0] and path in msgs[0]


def test_next_access_check_catches_a_block_claimed_twice(tmp_path, caplog):
    # ids a b a a: claims 0->3 and 2->3 point forward at the same block, and their count is right
    ids, nxt = [7, 8, 7, 7], [3, -1, 3, -1]
    with caplog.at_level(logging.WARNING, logger="gpupage.core.io"):
        read_trace(write(tmp_path, "t.bin", _oracle_with_next(ids, nxt)))
    assert len(caplog.records) == 1


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_compressed_file_without_its_suffix_is_read_by_magic_bytes(tmp_path, fmt, suffix):
    ids = sparse_trace(T=300)
    path = write(tmp_path, "t" + EXT[fmt], compress(encode(ids, fmt), suffix))
    assert read_trace(path, column="obj").original[read_trace(path, column="obj").ids].tolist() == ids


@pytest.mark.parametrize("suffix", COMPRESSIONS)
def test_simulate_json_names_the_format_and_compression_changes_no_fault(tmp_path, suffix):
    ids = sparse_trace()
    path = write(tmp_path, "t.oracleGeneral" + suffix, compress(encode(ids, "oracle"), suffix))
    res = run("simulate", path, "--policy", "lru,fifo,belady", "--K", "4,32", "--json", "--device", "cpu")
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in res.output.strip().splitlines()]
    dense = np.array(first_appearance(ids)[0])
    for r in rows:
        assert r["format"] == "oracle"
        assert r["faults"] == int(simulate(dense, r["policy"], r["K"]).faults[0])


def test_libcachesim_reads_the_same_zstd_trace(tmp_path):
    lcs = pytest.importorskip("libcachesim")
    ids = sparse_trace()
    path = write(tmp_path, "t.oracleGeneral.zst", compress(_oracle_with_next(ids, [-1] * len(ids)), ".zst"))
    tr = read_trace(path)
    for K in (4, 32):
        cache = lcs.LRU(cache_size=K, hashpower=16)
        miss_ratio, _ = cache.process_trace(lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE))
        assert round(miss_ratio * len(ids)) == int(simulate(tr.ids, "lru", K).faults[0])


def test_evaluate_takes_format_and_its_old_name(tmp_path):
    ckpt = os.path.join(os.path.dirname(__file__), "..", "checkpoints", "pagecontroller_k8.pt")
    path = write(tmp_path, "calls", compress(encode(sparse_trace(T=300), "mooncake"), ".gz"))
    for opt in ("--format", "--trace-format"):
        res = run("evaluate", "--checkpoint", ckpt, "--K", "8", "--trace-file", path, opt, "mooncake",
                  "--policies", "lru", "--device", "cpu")
        assert res.exit_code == 0, res.output
        assert f"{path} (mooncake, 300 requests)" in res.output


def _bad_files(tmp_path):
    """(path, format, words of the one-line error) for every bad input."""
    good = compress(encode(sparse_trace(T=2000), "txt"), ".zst")
    gz = gzip.compress(encode(sparse_trace(T=2000), "txt"))
    oracle = compress(encode([1, 2, 3], "oracle")[:-5], ".zst")
    (tmp_path / "dir").mkdir()
    cases = [
        (write(tmp_path, "cut.txt.zst", good[: len(good) // 2]), "auto", ["truncated or corrupt zstd stream"]),
        (write(tmp_path, "junk.zst", good[:8] + b"\x00" * 64), "auto", ["truncated or corrupt zstd stream"]),
        (write(tmp_path, "cut.txt.gz", gz[: len(gz) // 2]), "auto", ["truncated or corrupt gzip stream"]),
        (write(tmp_path, "tiny.gz", gz[:3]), "auto", ["truncated or corrupt gzip stream"]),
        (write(tmp_path, "plain.zst", b"1\n2\n"), "auto", ["named .zst but not zstd-compressed"]),
        (write(tmp_path, "partial.bin.zst", oracle), "auto", ["24-byte"]),
        (write(tmp_path, "empty.txt", b""), "auto", ["is empty"]),
        (write(tmp_path, "blank.txt.gz", gzip.compress(b"\n \n")), "auto", ["has no requests"]),
        ("/dev/null", "txt", ["not a regular file"]),
        (str(tmp_path / "dir"), "txt", ["not a regular file"]),
        (str(tmp_path / "missing.txt"), "txt", ["not found"]),
        (write(tmp_path, "big.txt", b"1\n\n18446744073709551615\n18446744073709551616\n"), "auto",
         ["line 4", "does not fit in 64 bits"]),
        (write(tmp_path, "huge.txt", b"1\n" + b"9" * 30 + b"\n"), "auto", ["line 2", "does not fit in 64 bits"]),
        (write(tmp_path, "big.csv", b"obj\n1\n18446744073709551616\n"), "csv", ["line 3", "does not fit in 64 bits"]),
        (write(tmp_path, "neg.csv", b"obj\n18446744073709551615\n-2\n"), "csv", ["line 3", "negative block id -2"]),
        (write(tmp_path, "m8.jsonl", b'{"hash_ids": [18446744073709551616]}\n'), "auto", ["line 1", "not a block id"]),
        (write(tmp_path, "neg.txt", b"1\n-5\n"), "auto", ["line 2", "negative block id -5"]),
        (write(tmp_path, "word.txt.gz", gzip.compress(b"1\n2\nabc\n")), "auto", ["line 3", "not an integer"]),
        (write(tmp_path, "m1.jsonl", b'{"hash_ids": [1]}\n\n{"input_length": 5}\n'), "auto", ["line 3", "hash_ids"]),
        (write(tmp_path, "m2.jsonl", b'{"hash_ids": "1,2"}\n'), "auto", ["line 1", "not a list"]),
        (write(tmp_path, "m3.jsonl", b'{"hash_ids": [1, true]}\n'), "auto", ["line 1", "hash_ids[1] = true"]),
        (write(tmp_path, "m4.jsonl", b'{"hash_ids": [1.5]}\n'), "auto", ["line 1", "not a block id"]),
        (write(tmp_path, "m5.jsonl", b'{"hash_ids": [1]}\n{"hash_ids": [2\n'), "auto", ["line 2", "malformed JSON"]),
        (write(tmp_path, "m6.jsonl", b'[1, 2]\n'), "auto", ["line 1", "hash_ids"]),
        (write(tmp_path, "m7.jsonl.zst", compress(b'{"hash_ids": [-3]}\n', ".zst")), "auto",
         ["line 1", "not a block id"]),
    ]
    return cases


def test_bad_input_library_errors(tmp_path):
    for path, fmt, words in _bad_files(tmp_path):
        with pytest.raises((ValueError, OSError)) as err:
            read_trace(path, fmt)
        msg = str(err.value)
        assert "\n" not in msg and all(w in msg for w in words), (path, msg)


def test_bad_input_cli_errors(tmp_path):
    for path, fmt, words in _bad_files(tmp_path):
        if os.path.isdir(path):
            words = ["is a directory"]  # click's own check of TRACE_FILE
        assert_one_line_error(run("simulate", path, "--format", fmt, "--device", "cpu"), *words)
