#!/usr/bin/env bash
# Interleaved comparison (issue 20): affectd's whisper.cpp `eval asr` vs this CTranslate2 program,
# ROUNDS rounds (default 2) of A B A B ..., each run under /usr/bin/time -v, /proc/loadavg before
# and after every run. Logs go to $OUT (default /work/ct2-logs/runs).
set -u
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-/work/ct2-logs/runs}
CT2=${CT2:-/work/target-ct2/release/ct2-bench}
MODEL=${MODEL:-/work/ct2-model}
AFFECTD=${AFFECTD:-/work/target/release/affectd}
FULLCTX_CFG=${FULLCTX_CFG:-/work/ct2-logs/full-ctx.toml}
export AFFECTD_DATA=${AFFECTD_DATA:-/work/shared/data}
mkdir -p "$OUT"
# affectd with the full 30 s encoder window (what CTranslate2 always runs), for an equal-work comparison
[ -f "$FULLCTX_CFG" ] || { mkdir -p "$(dirname "$FULLCTX_CFG")"; sed 's/^fit_audio_ctx = true/fit_audio_ctx = false/' /work/main/configs/default.toml > "$FULLCTX_CFG"; }
run() { # name, command...
  local name=$1; shift
  local f="$OUT/$name"
  { echo "# $(date -Is) loadavg-before $(cat /proc/loadavg)"; echo "# cmd: $*"; } > "$f.log"
  ( cd /work/main && /usr/bin/time -v -o "$f.time" "$@" ) >> "$f.log" 2>&1
  echo "# $(date -Is) loadavg-after $(cat /proc/loadavg)" >> "$f.log"
  echo "$name: $(grep '^wer=' "$f.log") | user=$(grep 'User time' "$f.time" | awk '{print $NF}') sys=$(grep 'System time' "$f.time" | awk '{print $NF}') rss_kb=$(grep 'Maximum resident' "$f.time" | awk '{print $NF}') | $(grep loadavg "$f.log" | awk '{print $4}' | tr '\n' ' ')"
}
for r in $(seq 1 "$ROUNDS"); do
  run "r$r-A-affectd-default" "$AFFECTD" eval asr --data "$AFFECTD_DATA/speech"
  run "r$r-B-ct2-wrapper"     "$CT2" "$MODEL"
  run "r$r-A-affectd-fullctx" "$AFFECTD" eval asr -c "$FULLCTX_CFG" --data "$AFFECTD_DATA/speech"
  run "r$r-B-ct2-whispermel-enonly" "$CT2" --mel whisper --prompt en-only "$MODEL"
  run "r$r-B-ct2-whispermel-lang"   "$CT2" --mel whisper --prompt lang "$MODEL"
done
