#!/usr/bin/env bash
# The exact commands that trained checkpoints/llm_k1024.pt and llm_k4096.pt (CPU, 2 torch threads), from calls
# 0..6399 (the first 80%) of the Mooncake conversation trace only.  Calls 6400..7999 are never read here:
# scripts/eval_llm.py replays them as the validation trace.
# Each command refuses to overwrite an existing checkpoint: remove the shipped files first (git restores them).
# A rerun gives the same networks bit for bit; the files differ only in their metadata (the command, the seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
F=../shared/traces/mooncake_conversation_train.jsonl
# llm_k4096.pt (~9 min on 2 cores): the bagged hit-density teacher (the mean of LHD's tables over count class and
# L(age), estimated on the training calls at K = 1024, 2048, 4096, 8192 and 16384, each scaled to its largest
# density), 3 DAgger rounds of 8 windows of 120000 requests at K = 1024 (the pool capped at 210000 decisions for
# memory), every slot scored, every 16th decision kept, a decision where the least recently used slot is not the
# teacher's weighing 32.  Trained at K = 1024, it serves K = 4096 better than any run trained at 4096 did; the
# longer windows did better than 40000 on replays of 3,200 calls and more (README, "Trained on Mooncake").
gpupage train --policy learned --out checkpoints/llm_k4096.pt --trace-file "$F" --format mooncake --K 1024 \
    --window 120000 --bc-lanes 8 --stride 16 --bc-rounds 2 --bc-epochs 2 --batch-size 256 --max-decisions 210000 \
    --check-lanes 2 --teacher hit_density --density-sizes 5 --tie-rule lru --hard-weight 32 --threads 2
# llm_k1024.pt (~25 min on 2 cores): the fixed ranking "blocks idle for 16 K requests or more first, then the
# lowest count class, then the youngest L(age)" (hit_density.lfu_mru with dead_age 16 K), 6 DAgger rounds of
# 8 windows of 80000 requests (twice the 40000 it was first trained on: they did better on replays of 3,200 calls
# and more), the rest as above with the pool capped at 300000 decisions.
gpupage train --policy learned --out checkpoints/llm_k1024.pt --trace-file "$F" --format mooncake --K 1024 \
    --window 80000 --bc-lanes 8 --stride 16 --bc-rounds 5 --bc-epochs 2 --batch-size 256 --max-decisions 300000 \
    --check-lanes 2 --teacher lfu_mru --dead-age 16 --tie-rule lru --hard-weight 32 --threads 2
