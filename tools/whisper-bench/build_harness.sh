#!/bin/sh
# build_harness.sh base|new
set -e
T=/work/ggml-work/$1
nice -n 5 g++ -O2 -std=c++17 -I$T/include -I$T/ggml/include harness.cpp -o harness-$1 \
  $T/build/src/libwhisper.a $T/build/ggml/src/libggml.a $T/build/ggml/src/libggml-cpu.a $T/build/ggml/src/libggml-base.a -lpthread -lm
