#!/usr/bin/env bash
# Interleaved A/B of affectd binaries on one recording: ROUNDS rounds of one `analyze` run per
# binary (A B C … A B C …), each under /usr/bin/time; prints per-binary medians of user+sys CPU,
# peak RSS and the vision / asr stage busy time from --stats, and the load range. Used for the
# size-profile comparison in docs/BENCHMARKS.md ("Binary size").
#
#   tools/ab-binaries.sh ROUNDS RECORDING BIN...      (runs in the repository root)
# Environment: AB_CONFIG (default tools/peer/affectd-1thread.toml), AB_OUT (default a temp dir:
# each run's JSONL and runs.tsv are kept there, to compare outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: tools/ab-binaries.sh ROUNDS RECORDING BIN..." >&2; exit 2; }
rounds=$1 rec=$2; shift 2
cfg="${AB_CONFIG:-tools/peer/affectd-1thread.toml}"
out="${AB_OUT:-$(mktemp -d)}"
mkdir -p "$out"; : > "$out/runs.tsv"
for r in $(seq "$rounds"); do
  for b in "$@"; do
    n=$(basename "$b"); load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%U %S %M" "$b" analyze "$rec" --config "$cfg" -q --stats \
      > "$out/$n-$r.jsonl" 2> "$out/err"
    read -r u s m < <(tail -1 "$out/err")
    v=$(awk '$1=="vision"{print $2}' "$out/err" | tr -d s)
    a=$(awk '$1=="asr"{print $2}' "$out/err" | tr -d s)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$load" "$u" "$s" "$m" "$v $a" >> "$out/runs.tsv"
  done
done
python3 - "$out/runs.tsv" <<'PY'
import collections, statistics as st, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    n, r, load, u, s, m, busy = line.rstrip("\n").split("\t")
    v, a = (busy.split() + ["nan", "nan"])[:2]
    d[n].append((float(u) + float(s), int(m) / 1024, float(v), float(a), float(load)))
for n, x in d.items():
    print(f"{n}: runs {len(x)}, CPU median {st.median(i[0] for i in x):.2f} s "
          f"{[round(i[0], 2) for i in x]}, peak RSS {st.median(i[1] for i in x):.0f} MiB, "
          f"vision busy {st.median(i[2] for i in x):.2f} s, asr busy {st.median(i[3] for i in x):.2f} s, "
          f"load {min(i[4] for i in x)}-{max(i[4] for i in x)}")
PY
echo "runs and outputs: $out"
