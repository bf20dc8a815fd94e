//! Text stage latency: the MiniLM encoder at 8/16/32/64 tokens ([CLS] and [SEP] included), the
//! sentiment head alone, and the whole chain on a typical sentence. Run with
//! `cargo bench --bench text`.

use affectd::config::ModelsConfig;
use affectd::text::TextModel;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::path::PathBuf;

fn load() -> TextModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    TextModel::load(&ModelsConfig { dir, verify: true }).expect("load text models")
}

fn bench(c: &mut Criterion) {
    let mut m = load();
    let mut g = c.benchmark_group("text");
    g.sample_size(20);
    for n in [8usize, 16, 32, 64] {
        // "good" is one word piece: n - 2 words + [CLS] + [SEP] = n ids.
        let text = vec!["good"; n - 2].join(" ");
        let ids = m.tokenizer().encode(&text).unwrap();
        assert_eq!(ids.len(), n);
        g.bench_with_input(BenchmarkId::new("minilm_tokens", n), &ids, |b, ids| {
            b.iter(|| m.encoder_mut().embed(black_box(ids)).unwrap())
        });
    }
    let emb = m.analyze("thanks, that was helpful").unwrap().embedding;
    g.bench_function("head", |b| b.iter(|| m.head_mut().probs(black_box(&emb)).unwrap()));
    let sentence = "My order still hasn't arrived and nobody answers my emails.";
    g.bench_function("tokenize", |b| b.iter(|| m.tokenizer().encode(black_box(sentence)).unwrap()));
    g.bench_function("analyze_sentence", |b| b.iter(|| m.analyze(black_box(sentence)).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
