"""python -m gpupage: the same as the gpupage command."""

from .cli import main

main()
