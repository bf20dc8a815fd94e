//! Text stage against the Python reference (tools/text/parity.json), hand-written sentences,
//! neutral read speech, the generated neutral and sarcasm/hedge sets, broken model files, and an
//! accuracy floor on TweetEval validation (that one needs AFFECTD_DATA: run with `--ignored`).

mod common;
use affectd::config::{Config, ModelsConfig};
use affectd::text::{TextModel, LABELS};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

fn models_cfg() -> ModelsConfig {
    ModelsConfig { dir: repo().join("models"), verify: true }
}

/// One model for the whole test binary (loading optimises two graphs).
fn model() -> MutexGuard<'static, TextModel> {
    static M: OnceLock<Mutex<TextModel>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(TextModel::load(&models_cfg()).expect("load text models")))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn parity() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("tools/text/parity.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["sentences"].as_array().unwrap().clone()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn tokenizer_matches_reference_ids() {
    let m = model();
    for s in parity() {
        let text = s["text"].as_str().unwrap();
        let want: Vec<i64> = s["ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let got = m.tokenizer().encode(text).unwrap();
        assert_eq!(got, want, "ids for {text:?}");
    }
}

#[test]
fn embeddings_match_reference() {
    let mut m = model();
    let mut worst_abs = 0f32;
    let mut worst_cos = 1f32;
    for s in parity() {
        let text = s["text"].as_str().unwrap();
        let got = m.analyze(text).unwrap();
        assert_eq!(got.embedding.len(), 384);
        let compact = floats(&s["embedding_compact"]);
        let float = floats(&s["embedding"]);
        let d = max_abs(&got.embedding, &compact);
        let c = cosine(&got.embedding, &float);
        assert!(d <= 1e-4, "{text:?}: max abs {d} vs embedding_compact");
        assert!(c >= 0.99, "{text:?}: cosine {c} vs float32 embedding");
        let norm: f32 = got.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{text:?}: norm {norm}");
        worst_abs = worst_abs.max(d);
        worst_cos = worst_cos.min(c);
    }
    eprintln!("embedding parity: max abs {worst_abs:.2e} vs compact, min cosine {worst_cos:.5} vs float32");
}

#[test]
fn head_probabilities_match_reference() {
    let mut m = model();
    let mut worst = 0f32;
    for s in parity() {
        let text = s["text"].as_str().unwrap();
        // The head alone on the reference embedding, then the whole chain.
        let head = m.head_mut().probs(&floats(&s["embedding_compact"])).unwrap();
        let want = floats(&s["probs"]);
        let d = max_abs(&head, &want);
        assert!(d <= 1e-3, "{text:?}: head probs {head:?} vs {want:?}");
        let got = m.analyze(text).unwrap();
        let d2 = max_abs(&got.probs, &want);
        assert!(d2 <= 1e-3, "{text:?}: chain probs {:?} vs {want:?}", got.probs);
        assert_eq!(got.label, s["label"].as_str().unwrap(), "{text:?}");
        assert_eq!(got.tokens, s["ids"].as_array().unwrap().len());
        worst = worst.max(d).max(d2);
    }
    eprintln!("probability parity: max abs {worst:.2e}");
}

#[test]
fn obvious_sentences() {
    let mut m = model();
    let cases = [
        ("This is the worst service I have ever had, I am furious.", "negative"),
        ("I hate this, it is broken again and nobody helps me.", "negative"),
        ("Terrible experience, I want my money back.", "negative"),
        ("Thank you so much, that was wonderful and really helpful!", "positive"),
        ("I love it, great job, everything works perfectly.", "positive"),
        ("Excellent support, I am very happy with the result.", "positive"),
    ];
    for (text, want) in cases {
        let s = m.analyze(text).unwrap();
        assert_eq!(s.label, want, "{text:?}: {:?}", s.probs);
        assert!((s.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Fixed expectations, not the formula again: a clear sentence is confidently its class.
        assert!(s.confidence > 0.6, "{text:?}: confidence {}", s.confidence);
        if want == "negative" {
            assert!(s.score < -0.3, "{text:?}: score {}", s.score);
        } else {
            assert!(s.score > 0.3, "{text:?}: score {}", s.score);
        }
    }
}

/// Read neutral speech stays neutral: GRID's 11 command transcripts (grid-av/labels.csv) and
/// RAVDESS's two statements. None of them was trained on (tools/text/neutral_set.py holds them
/// out; its generated training sentences follow the same grammars).
#[test]
fn neutral_read_speech_is_neutral() {
    let mut m = model();
    let texts = [
        "bin blue at f two now",
        "bin red by k seven now",
        "lay blue at x four now",
        "lay blue by c two again",
        "lay red with p nine again",
        "lay white by s zero again",
        "place white in j three please",
        "set blue in a one again",
        "set blue with e five now",
        "set white in z three now",
        "set white with p two soon",
        "Kids are talking by the door",
        "Dogs are sitting by the door",
    ];
    for text in texts {
        let s = m.analyze(text).unwrap();
        assert_eq!(s.label, "neutral", "{text:?}: {:?}", s.probs);
        assert!(s.score.abs() < 0.3, "{text:?}: score {}", s.score);
    }
}

/// Python (onnxruntime) figures of the shipped files, tools/text/results/head.json, and the floors
/// the Rust chain must keep (a little below, for tract-vs-onnxruntime float differences).
const NEUTRAL_PY: f64 = 0.994;
const NEUTRAL_FLOOR: f64 = 0.95;
const SARCASM_PY: f64 = 0.400;
const SARCASM_FLOOR: f64 = 0.35;
const TWEETEVAL_VAL_PY: f64 = 0.659;
const TWEETEVAL_VAL_FLOOR: f64 = 0.63;

fn report_field(report: &str, k: &str) -> f64 {
    let last = report.lines().last().unwrap();
    last.split(' ').find_map(|kv| kv.strip_prefix(k)).unwrap().parse().unwrap()
}

/// The held-out part of the generated neutral set (our own text, in the repository): commands,
/// digits, spelled letters, small talk, scenes and requests, two families never trained on.
#[test]
fn generated_neutral_set_is_neutral() {
    let cfg = Config { models: models_cfg(), ..Config::default() };
    let csv = repo().join("tools/text/data/neutral_eval.csv");
    let report = affectd::eval::text::run(&csv, &cfg).unwrap();
    eprintln!("{report}");
    let acc = report_field(&report, "accuracy=");
    assert!(acc >= NEUTRAL_FLOOR, "neutral rate {acc} < {NEUTRAL_FLOOR} (Python measured {NEUTRAL_PY})");
}

/// Sarcasm and hedges (tools/text/data/sarcasm_hedges.csv, written here, never trained on): a
/// regression floor, not a target — the fine-tuned model gets most of them wrong in one direction.
#[test]
fn sarcasm_and_hedges_floor() {
    let cfg = Config { models: models_cfg(), ..Config::default() };
    let csv = repo().join("tools/text/data/sarcasm_hedges.csv");
    let report = affectd::eval::text::run(&csv, &cfg).unwrap();
    eprintln!("{report}");
    let acc = report_field(&report, "accuracy=");
    assert!(acc >= SARCASM_FLOOR, "accuracy {acc} < {SARCASM_FLOOR} (Python measured {SARCASM_PY})");
}

#[test]
fn edge_inputs_are_valid() {
    let mut m = model();
    let empty = m.analyze("").unwrap();
    assert_eq!(empty.tokens, 2, "empty text is [CLS] [SEP]");
    assert!(empty.probs.iter().all(|p| p.is_finite()));
    let long = "the service was slow and the staff were rude ".repeat(100);
    let s = m.analyze(&long).unwrap();
    assert_eq!(s.tokens, 256, "long text is truncated to 256 tokens");
    assert_eq!(s.label, "negative");
    for t in ["\u{0}\u{7}\t\n", "😀😀😀", "東京", "a\u{200b}b", &"x".repeat(5000)] {
        let s = m.analyze(t).unwrap();
        assert!(s.tokens >= 2 && s.tokens <= 256 && s.probs.iter().all(|p| p.is_finite()), "{t:?}");
    }
    assert_eq!(m.labels(), LABELS);
    let v = m.versions();
    assert_eq!(v.len(), 3);
    assert!(v["text_encoder"].starts_with("minilm-l6-v2.onnx@ebf63e2d0e64"), "{v:?}");
    assert!(v["text_tokenizer"].starts_with("minilm-tokenizer.json@"), "{v:?}");
    assert!(v["text_sentiment"].starts_with("text-sentiment-head.onnx@"), "{v:?}");
}

/// A models folder with the real manifest and files, one of which (`broken`) replaced by `bytes`.
fn models_with(dir: &Path, broken: &str, bytes: Option<&[u8]>) {
    let src = repo().join("models");
    std::fs::copy(src.join("manifest.toml"), dir.join("manifest.toml")).unwrap();
    for f in ["minilm-l6-v2.onnx", "minilm-tokenizer.json", "text-sentiment-head.onnx"] {
        if f == broken {
            if let Some(b) = bytes {
                std::fs::write(dir.join(f), b).unwrap();
            }
        } else {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
}

#[test]
fn missing_and_corrupt_files_are_named() {
    for file in ["minilm-l6-v2.onnx", "minilm-tokenizer.json", "text-sentiment-head.onnx"] {
        // Missing.
        let d = tempfile::tempdir().unwrap();
        models_with(d.path(), file, None);
        for verify in [true, false] {
            let cfg = ModelsConfig { dir: d.path().to_path_buf(), verify };
            let e = TextModel::load(&cfg).unwrap_err().to_string();
            assert!(e.contains(file) && e.contains("missing"), "{e}");
        }
        // Corrupt: caught by the hash with verify, by the loader without.
        let d = tempfile::tempdir().unwrap();
        models_with(d.path(), file, Some(b"{ this is not a model"));
        let cfg = ModelsConfig { dir: d.path().to_path_buf(), verify: true };
        let e = TextModel::load(&cfg).unwrap_err().to_string();
        assert!(e.contains(file) && (e.contains("corrupt") || e.contains("truncated")), "{e}");
        let cfg = ModelsConfig { dir: d.path().to_path_buf(), verify: false };
        let e = TextModel::load(&cfg).unwrap_err().to_string();
        assert!(e.contains(file) && e.starts_with("model "), "{e}");
    }
}

/// TweetEval validation (2000 tweets) as a `text,label` CSV.
fn tweeteval_val_csv() -> PathBuf {
    let dir = data_dir().join("tweeteval");
    let texts = std::fs::read_to_string(dir.join("val_text.txt")).unwrap();
    let labels = std::fs::read_to_string(dir.join("val_labels.txt")).unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["text", "label"]).unwrap();
    let mut n = 0;
    for (t, l) in texts.lines().zip(labels.lines()) {
        let label = match l.trim() {
            "0" => "negative",
            "1" => "neutral",
            "2" => "positive",
            other => panic!("unexpected TweetEval label {other}"),
        };
        w.write_record([t.trim_end(), label]).unwrap();
        n += 1;
    }
    assert_eq!(n, 2000);
    let p = scratch().join(format!("tweeteval-val-{}.csv", std::process::id()));
    std::fs::write(&p, w.into_inner().unwrap()).unwrap();
    p
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn tweeteval_accuracy_floor() {
    let csv = tweeteval_val_csv();
    let cfg = Config { models: models_cfg(), ..Config::default() };
    let report = affectd::eval::text::run(&csv, &cfg).unwrap();
    eprintln!("{report}");
    let last = report.lines().last().unwrap();
    assert!(last.starts_with("accuracy=") && last.ends_with("n=2000"), "{last}");
    let field =
        |k: &str| -> f64 { last.split(' ').find_map(|kv| kv.strip_prefix(k)).unwrap().parse().unwrap() };
    let recall = field("macro_recall=");
    assert!(
        recall >= TWEETEVAL_VAL_FLOOR,
        "macro_recall {recall} < {TWEETEVAL_VAL_FLOOR} (Python measured {TWEETEVAL_VAL_PY}): {last}"
    );
}

/// `AFFECTD_TEXT_CSV=/path/file.csv cargo test --test text -- --ignored --nocapture eval_csv`:
/// the evaluation on any `text,label` CSV (until the CLI's `eval text` is wired).
#[test]
#[ignore = "needs AFFECTD_TEXT_CSV (a text,label CSV to evaluate)"]
fn eval_csv_from_env() {
    let csv = std::env::var_os("AFFECTD_TEXT_CSV").expect("set AFFECTD_TEXT_CSV to a text,label CSV");
    let cfg = Config { models: models_cfg(), ..Config::default() };
    let report = affectd::eval::text::run(Path::new(&csv), &cfg).unwrap();
    println!("{report}");
    let rows = affectd::eval::text::read_csv(Path::new(&csv)).unwrap().len();
    assert!(rows > 0, "empty CSV");
    assert!(report.contains(&format!(" n={rows}\n")), "every row is scored: {report}");
    let acc: f64 =
        report.split("accuracy=").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap();
    assert!((0.0..=1.0).contains(&acc), "{report}");
}
