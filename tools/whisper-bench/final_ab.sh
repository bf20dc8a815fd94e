#!/bin/bash
# Interleaved A/B: base, new, base, new, ... ; each process: load model, 1 warm-up call, then 2 passes over the 22 files.
M=/work/main/models/ggml-tiny.en-q8_0.bin; D=/work/shared/data/speech
cd /work/ggml-work
for r in 1 2 3 4 5; do
  for b in base new; do
    echo "== $b round $r load: $(cut -d' ' -f1 /proc/loadavg)"
    ./harness-$b $M $D 2 /dev/null | sed "s/^/$b /"
  done
done
