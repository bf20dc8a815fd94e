#!/usr/bin/env bash
# Regenerates models/fusion-head.onnx and models/fusion-early.onnx from the shared data:
# pseudo-pairs (Rust, deterministic) → stage features (Rust, the shipped models) → training
# (Python) → manifest. Run from the repository root:
#   python3 -m venv /tmp/venv-fusion && /tmp/venv-fusion/bin/pip install -r tools/fusion/requirements.txt
#   PY=/tmp/venv-fusion/bin/python bash tools/fusion/make.sh
# Needs the voice head (models/voice-emotion.onnx, tools/voice/make.sh) for the pairs' `wav` column.
# PROFILE=dev uses the test build's binary instead of a release build (same models, same numbers).
set -euo pipefail
PY="${PY:-python3}"
WORK="${WORK:-/tmp/affectd-fusion}"
export AFFECTD_DATA="${AFFECTD_DATA:-$(pwd)/../shared/data}"
mkdir -p "$WORK"
PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE"
bin="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/affectd"
$bin eval make-pairs --split train --n "${N_TRAIN:-20000}" --seed 1 --out "$WORK/train.csv"
$bin eval make-pairs --split dev --n "${N_DEV:-3000}" --seed 2 --out "$WORK/dev.csv"
# Voice features of the RAVDESS recordings from tools/voice/make.sh's dump (skips whisper there),
# when present; else each recording goes through whisper.cpp here.
VF=()
[ -s "${VOICE_FEATURES:-/tmp/affectd-voice/ravdess.jsonl}" ] && VF=(--voice-features "${VOICE_FEATURES:-/tmp/affectd-voice/ravdess.jsonl}")
$bin eval fusion --pairs "$WORK/train.csv" --dump-features "$WORK/train.jsonl" "${VF[@]}"
$bin eval fusion --pairs "$WORK/dev.csv" --dump-features "$WORK/dev.jsonl" "${VF[@]}"
(cd tools/fusion && "$PY" train.py --train "$WORK/train.jsonl" --train-csv "$WORK/train.csv" \
   --dev "$WORK/dev.jsonl" --out "$WORK" --results results)
(cd tools/fusion && "$PY" manifest.py --built "$WORK" --results results --models ../../models)
bash tools/merge_manifests.sh
$bin models verify
# The ablation table, in tract through the real stages:
$bin eval fusion --pairs "$WORK/dev.csv" --per-modality "${VF[@]}"
