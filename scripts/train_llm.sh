#!/usr/bin/env bash
# The exact commands that trained checkpoints/llm_k1024.pt and llm_k4096.pt (CPU, one torch thread), from calls
# 0..6399 (the first 80%) of the Mooncake conversation trace only.  Calls 6400..7999 are never read here:
# scripts/eval_llm.py replays them as the validation trace.
set -euo pipefail
cd "$(dirname "$0")/.."
F=../shared/traces/mooncake_conversation_train.jsonl
# llm_k1024.pt (~13 min on 2 cores, ~12 GB of memory): the hit-density teacher (LHD's table over count class and
# L(age), estimated on the training calls at K = 4096), 3 DAgger rounds of 8 windows of 40000 requests at K = 4096,
# every slot scored, every 16th decision kept, a decision where the least recently used slot is not the teacher's
# weighing 32.  Trained at K = 4096, it is the better network at K = 1024 (README, "Trained on Mooncake").
NUMBA_NUM_THREADS=2 python -m gpupage.controller.slotnet --out checkpoints/llm_k1024.pt --trace-file "$F" --Ks 4096 \
    --window 40000 --lanes 8 --stride 16 --rounds 2 --epochs 2 --batch-size 256 --max-decisions 300000 \
    --check-lanes 2 --teacher hit_density --tie-rule lru --hard-weight 32 --threads 2
# llm_k4096.pt (~5 min): Belady's choices, 3 rounds of 8 windows of 20000 requests at K = 1024.  The same trainer
# through the CLI (batch size, pool cap and check lanes at their defaults there):
#   gpupage train --policy learned --trace-file F --format mooncake --K 1024 --window 20000 --stride 16 \
#       --bc-lanes 8 --bc-rounds 2 --bc-epochs 2 --out OUT.pt
python -m gpupage.controller.slotnet --out checkpoints/llm_k4096.pt --trace-file "$F" --Ks 1024 --window 20000 \
    --lanes 8 --stride 16 --rounds 2 --epochs 2 --batch-size 256 --max-decisions 300000 --check-lanes 2
