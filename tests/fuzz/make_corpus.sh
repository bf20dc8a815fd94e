#!/usr/bin/env bash
# Regenerates the media seeds of the fuzz corpus (tests/fuzz/corpus/{y4m,wav,pipe_frames,mjpeg})
# with ffmpeg: a few tiny frames / 50 ms of audio each, so the corpus stays small. The text seeds
# (config, eval_tables, spool) are written by hand or copied from configs/ and docs/ and are not
# touched. Run from the repository root: bash tests/fuzz/make_corpus.sh
set -euo pipefail
C=tests/fuzz/corpus
FF="ffmpeg -hide_banner -loglevel error -y"
mkdir -p $C/y4m $C/wav $C/pipe_frames $C/mjpeg
src="testsrc=size=16x8:rate=5"
for f in yuv420p yuv422p yuv444p gray; do
  $FF -f lavfi -i "$src" -frames:v 2 -pix_fmt $f -strict -1 $C/y4m/16x8-$f.y4m
done
$FF -f lavfi -i "testsrc=size=15x7:rate=25" -frames:v 2 -pix_fmt yuv420p $C/y4m/15x7-odd-420.y4m
$FF -f lavfi -i "$src" -frames:v 1 -pix_fmt yuvj420p -color_range pc -strict -1 $C/y4m/16x8-fullrange.y4m
a="sine=frequency=440:sample_rate=RATE:duration=0.05"
wav() { # rate channels codec name
  $FF -f lavfi -i "${a/RATE/$1}" -ac $2 -c:a $3 "$C/wav/$4"
}
wav 16000 1 pcm_s16le s16-16k-mono.wav
wav 44100 2 pcm_s16le s16-44k1-stereo.wav
wav 8000 1 pcm_u8 u8-8k-mono.wav
wav 48000 1 pcm_s24le s24-48k-mono-extensible.wav
wav 22050 2 pcm_s32le s32-22k05-stereo-extensible.wav
wav 16000 1 pcm_f32le f32-16k-mono.wav
wav 11025 6 pcm_s16le s16-11k-6ch-extensible.wav
wav 16000 2 pcm_f64le f64-16k-stereo-unsupported.wav
# Raw frames: 2 frames of 16x16 per pixel format; the first 5 bytes are the fuzz target's
# geometry (format index, width u16 LE, height u16 LE), as tests/fuzz.rs reads them.
i=0
for f in rgb24 gray yuv420p nv12 yuyv422; do
  out=$C/pipe_frames/16x16-$f.raw
  printf "\\x$(printf %02x $i)\\x10\\x00\\x10\\x00" > $out
  $FF -f lavfi -i "testsrc=size=16x16:rate=5" -frames:v 2 -pix_fmt $f -f rawvideo - >> $out
  i=$((i + 1))
done
for f in yuvj420p yuvj422p yuvj444p gray; do
  $FF -f lavfi -i "testsrc=size=24x16:rate=5" -frames:v 1 -pix_fmt $f -c:v mjpeg -strict -1 $C/mjpeg/24x16-$f.jpg
done
$FF -f lavfi -i "testsrc=size=17x9:rate=5" -frames:v 1 -pix_fmt yuvj420p -c:v mjpeg $C/mjpeg/17x9-odd.jpg
ls -la $C/*
