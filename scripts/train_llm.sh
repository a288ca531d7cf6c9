#!/usr/bin/env bash
# The exact command that trained checkpoints/llm_k1024.pt (= checkpoints/llm_k4096.pt, one file for both; CPU,
# one torch thread, about 12 min on the shared 2-core machine).  Behaviour cloning on Belady + 3 DAgger rounds
# on windows of 15000 requests of calls 0..6399 (the first 80%) of the Mooncake conversation trace only, at
# K = 1024 and 4096 with candidates = 256 (the 256 least recently accessed slots), every 4th decision kept.
# Calls 6400..7999 are never read here: scripts/eval_llm.py replays them as the validation trace.
# `gpupage train --policy learned --trace-file F --format mooncake --bc-Ks 1024,4096 --candidates 256
#  --window 15000 --stride 4 --bc-lanes 24 --bc-rounds 3 --bc-epochs 2 ...` is the same trainer behind the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m gpupage.controller.slotnet --out checkpoints/llm_k1024.pt \
    --trace-file ../shared/traces/mooncake_conversation_train.jsonl --Ks 1024,4096 --candidates 256 --window 15000 \
    --lanes 24 --stride 4 --rounds 3 --epochs 2 --batch-size 512 --max-decisions 300000 --check-lanes 4
cp checkpoints/llm_k1024.pt checkpoints/llm_k4096.pt
