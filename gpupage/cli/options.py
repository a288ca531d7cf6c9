"""Shared option decorators and value parsers for every command (click only: --help stays fast)."""

from __future__ import annotations

import click


def parse_int_list(text: str, name: str = "value") -> list[int]:
    """'2,4,8' or '2-5' or '1,4-6' -> sorted-as-given list of ints (ranges inclusive)."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise click.BadParameter(f"{name}: cannot read {part!r} (use e.g. 2,4,8 or 42-51)") from None
    if not out:
        raise click.BadParameter(f"{name}: no values given")
    return out


def parse_float_list(text: str, name: str = "value") -> list[float]:
    try:
        out = [float(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{name}: cannot read {text!r} (use e.g. 0,0.1,0.2)") from None
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


def _callback(parser, name):
    return lambda ctx, param, value: None if value is None else parser(value, name)


def k_option(default="8", help="Cache size(s) K_b in blocks, e.g. 8 or 2,4,8."):
    return click.option("--K", "K", default=default, show_default=True, callback=_callback(parse_int_list, "--K"), help=help)


def seeds_option(default="42-51"):
    return click.option("--seeds", default=default, show_default=True, callback=_callback(parse_int_list, "--seeds"),
                        help="Seeds, inclusive ranges allowed: 42-51 or 1,5,9.")


def zipf_options(f):
    """The non-stationary Zipf family's parameters (paper App. B defaults)."""
    for opt in reversed([
        click.option("--M", "M", type=int, default=64, show_default=True, help="Blocks in external memory."),
        click.option("--alpha", type=float, default=1.2, show_default=True, help="Zipf exponent."),
        click.option("--W", "W", type=int, default=16, show_default=True, help="Working-set size."),
        click.option("--shift", type=int, default=500, show_default=True, help="Working set redrawn every SHIFT requests."),
        click.option("--T", "T", type=int, default=5000, show_default=True, help="Trace length."),
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
