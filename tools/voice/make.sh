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
# ASR_THREADS=2 runs whisper.cpp on two threads: same features (ggml splits rows, not sums), faster.
printf '[speech]\nasr_threads = %s\n' "${ASR_THREADS:-1}" > "$WORK/eval.toml"
ev() { $bin eval "$@" --config "$WORK/eval.toml"; }
[ -s "$WORK/ravdess.jsonl" ] || ev voice --data "$DATA" --dump-features "$WORK/ravdess.jsonl"
# Out-of-domain anchors: the 22 ordinary calm speech clips of speech/ (read speech, JFK, a
# 3-speaker conversation; clean and noisy), labelled neutral; and the held-out calm check: the
# 11 GRID readers (never trained on).
calm_labels() {  # $1 = folder for labels.csv, $2 = first id; stdin: paths
  mkdir -p "$1"; { echo "path,emotion,actor"; n=$2; while read -r p; do echo "$p,neutral,$n"; n=$((n+1)); done; } > "$1/labels.csv"
}
# Each clip whole, and cut into 2.5 s pieces (>= 1 s kept): the daemon scores VAD utterances of a
# few seconds, so the anchors must include utterance-length audio too.
mkdir -p "$WORK/anchor-pieces"
tail -n +2 "$AFFECTD_DATA/speech/transcripts.tsv" | cut -f1 | while read -r p; do
  ffmpeg -nostdin -loglevel error -y -i "$AFFECTD_DATA/speech/$p" -f segment -segment_time 2.5 -c copy \
    "$WORK/anchor-pieces/$(echo "$p" | tr / _ | sed 's/\.wav$//')_%02d.wav"
done
{ tail -n +2 "$AFFECTD_DATA/speech/transcripts.tsv" | cut -f1 | sed "s#^#$AFFECTD_DATA/speech/#"
  for f in "$WORK"/anchor-pieces/*.wav; do
    if [ "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" | cut -d. -f1)" -ge 1 ]; then echo "$f"; fi
  done; } | calm_labels "$WORK/anchors" 1000
tail -n +2 "$AFFECTD_DATA/grid-av/labels.csv" | cut -d, -f1 | sed "s#^#$AFFECTD_DATA/grid-av/#" | calm_labels "$WORK/grid" 2000
[ -s "$WORK/anchors.jsonl" ] || ev voice --data "$WORK/anchors" --dump-features "$WORK/anchors.jsonl"
[ -s "$WORK/grid.jsonl" ] || ev voice --data "$WORK/grid" --dump-features "$WORK/grid.jsonl"
"$PY" tools/voice/train.py --features "$WORK/ravdess.jsonl" --anchors "$WORK/anchors.jsonl" \
    --check "$WORK/grid.jsonl" --out models/voice-emotion.onnx --results tools/voice/results | tee "$WORK/train.txt"
"$PY" tools/voice/manifest.py --results tools/voice/results --model models/voice-emotion.onnx
bash tools/merge_manifests.sh
$bin models verify
# The held-out table in tract, through the real speech path (actors the shipped head never saw):
ev voice --data "$DATA" --actors 21-24 | tee tools/voice/results/eval-heldout.txt
