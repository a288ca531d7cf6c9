"""The ``gpupage`` command line: thin commands over the library.

Command modules import only click at load time; torch, numba and triton load
inside the commands, so ``gpupage --help`` is fast.
"""

from __future__ import annotations

import signal
import sys
import threading

import click


class _Terminated(Exception):
    """SIGTERM, raised where the program is, so that files close as after Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated


class _Group(click.Group):
    """Turns library errors into one-line messages with a non-zero exit, never a traceback."""

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
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(msg) from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


@click.group(cls=_Group)
@click.version_option(package_name="gpupage")
def main():
    """gpupage: batched simulation of the Context Paging Problem (Neural Paging, §3-6)."""


def _register():
    from . import boundscmds, distcmds, mrccmds, simcmds, rlcmds

    for module in (simcmds, mrccmds, boundscmds, rlcmds, distcmds):
        for cmd in module.COMMANDS:
            main.add_command(cmd)


_register()
