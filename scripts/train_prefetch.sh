#!/usr/bin/env bash
# The shipped prefetch controller (issue 13): PPO on training seeds >= 10000, hint noise drawn per lane from
# {0, 0.05, 0.1, 0.2, 0.4, 0.7, 1, 1} (eps = 1 twice), best of the validation checks (seeds 9000-9031, eps = 0.1) kept.
# 6-9 minutes on 2 shared CPU cores (one thread); the weights are reproducible.  Pass --force to overwrite an existing checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
NUMBA_NUM_THREADS=1 python -m gpupage prefetch-train --out checkpoints/prefetch_blackbox_k8.pt --mode blackbox \
    --K 8 --lookahead 4 --lambda-fetch 0.3 --lambda-evict 0 --hint-noise 0.1 \
    --train-noise 0,0.05,0.1,0.2,0.4,0.7,1,1 --iterations 1000 --lanes 256 --num-steps 64 --episode-length 2000 \
    --lr 1e-3 --seed-start 10000 --torch-seed 0 --threads 1 "$@"
