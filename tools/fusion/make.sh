#!/usr/bin/env bash
# Regenerates models/fusion-head.onnx and models/fusion-early.onnx from the shared data:
# pseudo-pairs (Rust, deterministic) → stage features (Rust, the shipped models) → training
# (Python) → manifest. Run from the repository root:
#   python3 -m venv /tmp/venv-fusion && /tmp/venv-fusion/bin/pip install -r tools/fusion/requirements.txt
#   PY=/tmp/venv-fusion/bin/python bash tools/fusion/make.sh
set -euo pipefail
PY="${PY:-python3}"
WORK="${WORK:-/tmp/affectd-fusion}"
export AFFECTD_DATA="${AFFECTD_DATA:-$(pwd)/../shared/data}"
mkdir -p "$WORK"
cargo build --release
bin=target/release/affectd
$bin eval make-pairs --split train --n 20000 --seed 1 --out "$WORK/train.csv"
$bin eval make-pairs --split dev --n 3000 --seed 2 --out "$WORK/dev.csv"
$bin eval fusion --pairs "$WORK/train.csv" --dump-features "$WORK/train.jsonl"
$bin eval fusion --pairs "$WORK/dev.csv" --dump-features "$WORK/dev.jsonl"
(cd tools/fusion && "$PY" train.py --train "$WORK/train.jsonl" --train-csv "$WORK/train.csv" \
   --dev "$WORK/dev.jsonl" --out "$WORK" --results results)
(cd tools/fusion && "$PY" manifest.py --built "$WORK" --results results --models ../../models)
bash tools/merge_manifests.sh
$bin models verify
# The ablation table, in tract through the real stages:
$bin eval fusion --pairs "$WORK/dev.csv" --per-modality
