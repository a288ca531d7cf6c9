#!/usr/bin/env bash
# The exact commands that trained checkpoints/llm_k1024.pt and llm_k4096.pt (CPU; one torch thread unless a command says otherwise), from calls
# 0..6399 (the first 80%) of the Mooncake conversation trace only.  Calls 6400..7999 are never read here:
# scripts/eval_llm.py replays them as the validation trace.
# Each command refuses to overwrite an existing checkpoint: remove the shipped files first (git restores them).
set -euo pipefail
cd "$(dirname "$0")/.."
F=../shared/traces/mooncake_conversation_train.jsonl
# llm_k1024.pt (~13 min on 2 cores, ~12 GB of memory): the hit-density teacher (LHD's table over count class and
# L(age), estimated on the training calls at K = 4096), 3 DAgger rounds of 8 windows of 40000 requests at K = 4096,
# every slot scored, every 16th decision kept, a decision where the least recently used slot is not the teacher's
# weighing 32.  Trained at K = 4096, it is the better network at K = 1024 (README, "Trained on Mooncake").
# The file was written by the equivalent `NUMBA_NUM_THREADS=2 python -m gpupage.controller.slotnet --out ... --Ks 4096
# --window 40000 --lanes 8 --stride 16 --rounds 2 --epochs 2 --batch-size 256 --max-decisions 300000 --check-lanes 2
# --teacher hit_density --tie-rule lru --hard-weight 32 --threads 2`; this command gives the same weights, bit for bit.
gpupage train --policy learned --out checkpoints/llm_k1024.pt --trace-file "$F" --format mooncake --K 4096 \
    --window 40000 --bc-lanes 8 --stride 16 --bc-rounds 2 --bc-epochs 2 --batch-size 256 --max-decisions 300000 \
    --check-lanes 2 --teacher hit_density --tie-rule lru --hard-weight 32 --threads 2
# llm_k4096.pt (~5 min): Belady's choices, 3 rounds of 8 windows of 20000 requests at K = 1024.  It was trained under
# specification version 1 (15 inputs, which it keeps); rerun today this command trains a version-2 network, the
# same through `gpupage train --policy learned ... --K 1024 --window 20000 --bc-lanes 8 --stride 16 --bc-rounds 2
# --bc-epochs 2 --batch-size 256 --max-decisions 300000 --check-lanes 2` (checked bit for bit).
python -m gpupage.controller.slotnet --out checkpoints/llm_k4096.pt --trace-file "$F" --Ks 1024 --window 20000 \
    --lanes 8 --stride 16 --rounds 2 --epochs 2 --batch-size 256 --max-decisions 300000 --check-lanes 2
