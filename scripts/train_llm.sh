#!/usr/bin/env bash
# The exact command that trained checkpoints/llm_k1024.pt (= checkpoints/llm_k4096.pt, one file for both; CPU, one
# torch thread, about 5 min on the shared 2-core machine).  Behaviour cloning on Belady + 2 DAgger rounds on 8 windows
# of 20000 requests per round, drawn from calls 0..6399 (the first 80%) of the Mooncake conversation trace only, at
# K = 1024 with every slot scored, every 16th decision kept.  Calls 6400..7999 are never read here:
# scripts/eval_llm.py replays them as the validation trace.  The same trainer through the CLI (batch size, pool
# cap and check lanes at their defaults there):
#   gpupage train --policy learned --trace-file F --format mooncake --K 1024 --window 20000 --stride 16 \
#       --bc-lanes 8 --bc-rounds 2 --bc-epochs 2 --out OUT.pt
set -euo pipefail
cd "$(dirname "$0")/.."
python -m gpupage.controller.slotnet --out checkpoints/llm_k1024.pt \
    --trace-file ../shared/traces/mooncake_conversation_train.jsonl --Ks 1024 --window 20000 --lanes 8 --stride 16 \
    --rounds 2 --epochs 2 --batch-size 256 --max-decisions 300000 --check-lanes 2
cp checkpoints/llm_k1024.pt checkpoints/llm_k4096.pt
