#!/usr/bin/env bash
# The exact command that trained checkpoints/learned_v1.pt (CPU, one torch thread; a few minutes).
# Behaviour cloning on Belady + 8 DAgger rounds rolled out by the numba `learned` policy itself, on
# App. B Zipf lanes with randomised parameters at K in {4, 8, 16}; training seeds 10000-11151,
# the quantisation check on seeds 30000-30063.  Evaluation seeds 1000-1039 are never seen.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m gpupage.controller.slotnet --out checkpoints/learned_v1.pt --lanes 128 --rounds 8 --epochs 2 --batch-size 1024 \
    --max-decisions 1200000
