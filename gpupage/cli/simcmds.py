"""simulate, sweep, reproduce."""

import click

COMMANDS: list[click.Command] = []
