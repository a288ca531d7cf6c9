"""The ``gpupage`` command line: thin commands over the library.

Command modules import only click at load time; torch, numba and triton load
inside the commands, so ``gpupage --help`` is fast.
"""

from __future__ import annotations

import signal
import sys
import threading

import click

from ..core.limits import set_memory_limit  # stdlib-only module


class _Terminated(Exception):
    """SIGTERM, raised where the program is, so that files close as after Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated


class _Group(click.Group):
    """Turns library errors into one-line messages with a non-zero exit, never a traceback.

    The library reports bad input as ValueError (or OSError, RuntimeError, KeyError) with a
    message meant for the user; any other exception is a bug, reported as one for the user to
    pass on."""

    def invoke(self, ctx):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Error: interrupted (finished results were kept)", err=True)
            sys.exit(130)
        except _Terminated:
            click.echo("Error: terminated (finished results were kept)", err=True)
            sys.exit(143)
        except (ValueError, OSError, RuntimeError, KeyError) as exc:
            raise click.ClickException(_first_line(exc) or type(exc).__name__) from None
        except MemoryError as exc:
            raise click.ClickException(f"out of memory ({_first_line(exc) or 'an allocation failed'}); "
                                       "try a smaller run or set --memory-limit") from None
        except Exception as exc:
            raise click.ClickException(f"internal error ({type(exc).__name__}: {_first_line(exc)}); "
                                       "please report it") from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
            set_memory_limit(None)  # --memory-limit holds for one command


def _first_line(exc: BaseException, width: int = 300) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[:width - 3] + "..."


@click.group(cls=_Group)
@click.version_option(package_name="gpupage")
def main():
    """gpupage: batched simulation of the Context Paging Problem (Neural Paging, §3-6)."""


def _register():
    from . import boundscmds, distcmds, mrccmds, prefetchcmds, simcmds, rlcmds

    for module in (simcmds, mrccmds, boundscmds, rlcmds, distcmds, prefetchcmds):
        for cmd in module.COMMANDS:
            main.add_command(cmd)


_register()
