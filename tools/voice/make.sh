#!/usr/bin/env bash
# Regenerates models/voice-emotion.onnx and its manifest entry from RAVDESS speech:
# features from the real speech path (Rust: whisper.cpp with the shipped ggml model, encoder output
# pooled per file) → logistic regression (Python, deterministic) → manifest → held-out table.
# Run from the repository root:
#   python3 -m venv /work/venv-voice && /work/venv-voice/bin/pip install -r tools/voice/requirements.txt
#   PY=/work/venv-voice/bin/python bash tools/voice/make.sh
# PROFILE=dev uses the test build's binary instead of a release build.
set -euo pipefail
PY="${PY:-python3}"
WORK="${WORK:-/tmp/affectd-voice}"
export AFFECTD_DATA="${AFFECTD_DATA:-$(pwd)/../shared/data}"
DATA="$AFFECTD_DATA/ravdess-speech-16k"
mkdir -p "$WORK"
PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE"
bin="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/affectd"
[ -s "$WORK/ravdess.jsonl" ] || $bin eval voice --data "$DATA" --dump-features "$WORK/ravdess.jsonl"
"$PY" tools/voice/train.py --features "$WORK/ravdess.jsonl" --out models/voice-emotion.onnx \
    --results tools/voice/results | tee "$WORK/train.txt"
"$PY" tools/voice/manifest.py --results tools/voice/results --model models/voice-emotion.onnx
bash tools/merge_manifests.sh
$bin models verify
# The held-out table in tract, through the real speech path (actors the shipped head never saw):
$bin eval voice --data "$DATA" --actors 21-24 | tee tools/voice/results/eval-heldout.txt
