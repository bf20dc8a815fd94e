//! Fusion head latency in tract: a full interval (48 face tokens + 2 utterances), a face-only
//! interval and a words-only one, plus laying the tokens out. Run with `cargo bench --bench fusion`.

use affectd::fusion::head::{FusionHead, HEAD};
use affectd::fusion::tokens::{FaceToken, IntervalTokens, TextToken, TEXT_EMBEDDING};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::PathBuf;

fn interval(faces: usize, texts: usize) -> IntervalTokens {
    let face = |i: usize| FaceToken {
        probs: vec![0.1, 0.02, 0.08, 0.3, 0.1, 0.05, 0.35],
        quality: 0.9,
        t: i as f32 / faces.max(1) as f32,
    };
    let text = |i: usize| TextToken {
        probs: [0.2, 0.5, 0.3],
        embedding: (0..TEXT_EMBEDDING).map(|k| ((k + i) as f32 * 0.37).sin() / 13.8).collect(),
        t: 0.5,
    };
    IntervalTokens {
        faces: (0..faces).map(face).collect(),
        texts: (0..texts).map(text).collect(),
        voices: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let (p, e) = affectd::model::locate(&dir, HEAD, true).expect("fusion head");
    let mut h = FusionHead::load(&p, &e, None).expect("load fusion head");
    let mut g = c.benchmark_group("fusion");
    g.sample_size(50);
    for (name, toks) in [
        ("interval_48faces_2utts", interval(48, 2)),
        ("face_only_48", interval(48, 0)),
        ("words_only_1", interval(0, 1)),
    ] {
        g.bench_function(name, |b| b.iter(|| h.predict(black_box(&toks)).unwrap()));
    }
    let toks = interval(48, 2);
    g.bench_function("layout_tokens", |b| b.iter(|| black_box(&toks).to_input()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
