//! Criterion bench of whisper transcription: real-time factor of `clean/jfk.wav` (11 s) at 1 and
//! 2 threads. Run: `AFFECTD_DATA=/path/to/shared/data cargo bench --bench asr` (add
//! `--profile dev` to skip the LTO release build: whisper.cpp is compiled -O3 either way).
//! RTF = reported time per iteration / 11 s. Figures in docs/speech.md.

use affectd::audio::asr::{Asr, AsrParams};
use affectd::audio::vad::SpeechSegment;
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    std::env::var_os("AFFECTD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

fn transcribe(c: &mut Criterion) {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en-q8_0.bin");
    let wav = data_dir().join("speech/clean/jfk.wav");
    let samples = affectd::eval::asr::read_wav_16k(&wav).expect("jfk.wav (set AFFECTD_DATA)");
    let seg = SpeechSegment { start: 0.0, end: samples.len() as f64 / 16000.0, samples };
    let mut g = c.benchmark_group("asr");
    g.sample_size(10);
    for threads in [1usize, 2] {
        let mut asr = Asr::load(&model, AsrParams { threads, ..AsrParams::default() }).expect("model");
        g.bench_function(format!("jfk_11s_threads_{threads}"), |b| {
            b.iter(|| asr.transcribe(&seg).expect("transcribe"))
        });
    }
    g.finish();
}

criterion_group!(benches, transcribe);
criterion_main!(benches);
