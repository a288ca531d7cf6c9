"""Shared option decorators and value parsers for every command (click only: --help stays fast)."""

from __future__ import annotations

import math

import click

from ..core.limits import INT64_MAX, MAX_BLOCKS, MAX_REQUESTS  # stdlib-only module

CANDIDATES = click.IntRange(1, MAX_BLOCKS)
"""learned's --candidates: no cache holds more slots than blocks have ids."""

MAX_LISTED = 1 << 20
"""Most values a list option may expand to (one range of seeds is never expanded)."""
INT64_MIN = -INT64_MAX - 1
MAX_THREADS = 1024


def parse_int_list(text: str, name: str = "value", lo: int | None = None, hi: int | None = None,
                   lazy: bool = False, unique: bool = False):
    """'2,4,8' or '2-5' or '1,4-6' -> the ints in the order given (ranges inclusive), each in [lo, hi];
    with ``unique``, each once (the first time it is given).

    At most ``MAX_LISTED`` values, except with ``lazy``, where a single range comes back as a
    ``range`` of up to 2**63 - 1 values (seeds ``1-100000000`` cost a few bytes, not 100M ints)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    spans = []
    for part in parts:
        try:
            if "-" in part[1:]:
                a, b = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                a_i, b_i = int(a), int(b)
                if b_i < a_i:
                    raise click.BadParameter(f"{name}: {part!r} runs backwards (write the smaller end first)")
                spans.append(range(a_i, b_i + 1))
            else:
                spans.append(range(int(part), int(part) + 1))
        except ValueError:
            raise click.BadParameter(f"{name}: cannot read {part!r} (use e.g. 2,4,8 or 42-51)") from None
    if not spans:
        raise click.BadParameter(f"{name}: no values given")
    for r in spans:
        if lo is not None and r[0] < lo:
            raise click.BadParameter(f"{name} must be >= {lo}, got {r[0]}")
        if hi is not None and r[-1] > hi:
            raise click.BadParameter(f"{name} must be <= {hi}, got {r[-1]}")
    total = sum(r.stop - r.start for r in spans)  # len() stops at 2**63
    if lazy and len(spans) == 1:
        if total > INT64_MAX:
            raise click.BadParameter(f"{name}: {total} values, more than the 2**63 - 1 a range may hold")
        return spans[0]
    if total > MAX_LISTED:
        more = " (one range a-b may be longer)" if lazy else ""
        raise click.BadParameter(f"{name}: {total} values, more than the {MAX_LISTED} a list may hold{more}")
    values = [x for r in spans for x in r]
    return list(dict.fromkeys(values)) if unique else values


def parse_float_list(text: str, name: str = "value") -> list[float]:
    try:
        out = [float(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{name}: cannot read {text!r} (use e.g. 0,0.1,0.2)") from None
    if not all(math.isfinite(v) for v in out):
        raise click.BadParameter(f"{name}: every value must be a finite number, got {text!r}")
    if not out:
        raise click.BadParameter(f"{name}: no values given")
    return out


def parse_warmup(text: str, name: str = "--warmup") -> int | float:
    """'1000' -> 1000 requests; '0.1' -> a tenth of the trace (checked against its length later)."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise click.BadParameter(f"{name}: cannot read {text!r} (use a number of requests, e.g. 1000, "
                                     "or a fraction of the trace in (0, 1), e.g. 0.1)") from None
    if not (value >= 0 and (value < 1 or float(value).is_integer())):
        raise click.BadParameter(f"{name} must be a number of requests >= 0 or a fraction in (0, 1), got {text}")
    return value


def _callback(parser, name, **bounds):
    return lambda ctx, param, value: None if value is None else parser(value, name, **bounds)


def checked_text(parser, name, **bounds):
    """A callback that refuses what ``parser`` cannot read, yet keeps the text as given (a resumed run
    compares its options as typed)."""
    def cb(ctx, param, value):
        if value is not None:
            parser(value, name, **bounds)
        return value
    return cb


def k_option(default="8", help="Cache size(s) K_b in blocks, e.g. 8 or 2,4,8."):
    return click.option("--K", "K", default=default, show_default=True, callback=_callback(parse_int_list, "--K", lo=1),
                        help=help + " Sizes beyond the trace length act as the trace length.")


def seeds_option(default="42-51"):
    return click.option("--seeds", default=default, show_default=True,
                        callback=_callback(parse_int_list, "--seeds", lo=INT64_MIN, hi=INT64_MAX, lazy=True,
                                           unique=True),
                        help="Seeds (64-bit), inclusive ranges allowed: 42-51 or 1,5,9 (a seed given twice runs once).")


def zipf_options(f):
    """The non-stationary Zipf family's parameters (paper App. B defaults)."""
    for opt in reversed([
        click.option("--M", "M", type=click.IntRange(1, MAX_BLOCKS), default=64, show_default=True,
                     help="Blocks in external memory."),
        click.option("--alpha", type=Finite(0), default=1.2, show_default=True, help="Zipf exponent."),
        click.option("--W", "W", type=click.IntRange(1, MAX_BLOCKS), default=16, show_default=True,
                     help="Working-set size (at most M)."),
        click.option("--shift", type=click.IntRange(1), default=500, show_default=True,
                     help="Working set redrawn every SHIFT requests."),
        click.option("--T", "T", type=click.IntRange(1, MAX_REQUESTS), default=5000, show_default=True,
                     help="Trace length."),
    ]):
        f = opt(f)
    return f


def warmup_option(f):
    return click.option("--warmup", default="0", show_default=True, callback=_callback(parse_warmup, "--warmup"),
                        help="Requests that fill the cache without being counted: a number (1000) or a fraction "
                             "of the trace (0.1).")(f)


def device_option(f):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                        help="auto: CUDA kernels when a GPU is present, else the CPU path.")(f)


def quiet_option(f):
    return click.option("--quiet", is_flag=True, help="No progress bar.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout, nothing else.")(f)


# gpupage.core.io.FORMATS behind "auto" (not imported here: it loads numpy and numba)
TRACE_FORMATS = ("auto", "txt", "csv", "oracle", "mooncake")


def trace_format_option(*names):
    return click.option(*names, type=click.Choice(TRACE_FORMATS), default="auto", show_default=True,
                        help="txt: one id per line; csv: a column (--column where there is one, else the first); "
                             "oracle: libCacheSim oracleGeneral; mooncake: JSONL hash_ids. auto: from the name "
                             "(.jsonl, .oracleGeneral/.bin, .csv, else txt; .zst/.gz stripped first). zstd and "
                             "gzip files are decompressed whatever their name.")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available; 'cuda' without a GPU is a one-line error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise click.UsageError("--device cuda: no CUDA device is available")
    return device


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan and infinities, which no setting means."""

    name = "finite float range"

    def _describe_range(self) -> str:
        # click describes an unbounded range as "x<=None" in --help; there is no range to describe
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{rv} is not a finite number.", param, ctx)
        return rv


def _threads(ctx, param, value):
    from ..core.limits import configure_threads, cpu_count

    configure_threads(value or cpu_count())  # imports numba: runs when the command does, never for --help
    return value


def _memory_limit(ctx, param, value):
    from ..core.limits import parse_size, set_memory_limit

    set_memory_limit(None if value is None else parse_size(value, "--memory-limit"))  # the group resets it


def memory_option(f):
    return click.option("--memory-limit", default=None, metavar="SIZE", expose_value=False, callback=_memory_limit,
                        help="Memory a run may use, e.g. 16G [default: $GPUPAGE_MEMORY_LIMIT, else the smaller of "
                             "MemAvailable and the cgroup limit]; larger runs are refused up front.")(f)


def resource_options(f):
    """--threads and --memory-limit."""
    f = memory_option(f)
    return click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None, expose_value=False,
                        callback=_threads, help="Compute threads [default: all cores this process may use].")(f)

