#!/usr/bin/env bash
# Builds the bundled sample tests/data/sample/grid-call.mp4 from four GRID corpus clips
# (CC BY 4.0, Cooke et al. 2006) in the shared data folder: concatenated, re-encoded to
# H.264 + AAC so it is small. Run from the repository root:  bash tools/make_sample.sh
set -euo pipefail
data="${AFFECTD_DATA:-../shared/data}"
out="tests/data/sample/grid-call.mp4"
clips=(bbaf2n lrwp9a sbwe5n lwbsza)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for c in "${clips[@]}"; do
  f="$data/grid-av/clips/$c.mpg"
  [ -f "$f" ] || { echo "missing $f (set AFFECTD_DATA)" >&2; exit 1; }
  echo "file '$(realpath "$f")'" >> "$list"
done
mkdir -p "$(dirname "$out")"
ffmpeg -v error -y -f concat -safe 0 -i "$list" \
  -c:v libx264 -preset slow -crf 26 -pix_fmt yuv420p -g 50 \
  -c:a aac -b:a 64k -ar 44100 -ac 1 \
  -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact \
  -movflags +faststart "$out"
ls -l "$out"
