//! The cross-compiled aarch64 binary, run under qemu-user, gives the same results as the native
//! build: Whisper's transcript of a real GRID clip, text sentiment, and (where qemu-user can run
//! threads) the whole `analyze` pipeline's intervals on that clip.
//!
//! `#[ignore]`d in a plain `cargo test`; `.ci/run` runs them after `cross/build.sh` with
//! `AFFECTD_QEMU_BIN=path/to/aarch64/affectd … -- --ignored`; there an unset variable, a missing
//! binary or a missing qemu is a failure, not a skip.
//! `AFFECTD_QEMU_RUNNER` overrides the runner (default `qemu-aarch64 -L /usr/aarch64-linux-gnu`).
//! The multi-threaded `analyze` comparison also needs `AFFECTD_QEMU_ANALYZE=1`: on the
//! Firecracker development VM (kernel 6.18) qemu-user 7.2 and 10.0 spin forever in the guest's
//! first `pthread_create` (a 5-line C program shows it), so there only the single-threaded
//! commands (`eval asr`, `eval text`) can be compared.

mod common;
use common::*;
use std::time::Instant;

fn runner() -> Vec<String> {
    match std::env::var("AFFECTD_QEMU_RUNNER") {
        Ok(r) if !r.trim().is_empty() => r.split_whitespace().map(String::from).collect(),
        _ => ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"].into_iter().map(String::from).collect(),
    }
}

fn close(a: &serde_json::Value, b: &serde_json::Value, tol: f64, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => {
            assert!((x - y).abs() <= tol, "{what}: native {x} vs aarch64 {y} (tolerance {tol})")
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// The aarch64 binary named by `AFFECTD_QEMU_BIN`; panics (the test fails) when it is unset or
/// missing. The tests are `#[ignore]`d, so they run only when asked for (`.ci/run` does).
fn qemu_bin() -> Option<std::path::PathBuf> {
    let Some(bin) = std::env::var_os("AFFECTD_QEMU_BIN") else {
        panic!("AFFECTD_QEMU_BIN is not set: build the aarch64 binary first (see .ci/run, cross/build.sh)");
    };
    let bin = std::path::PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "AFFECTD_QEMU_BIN={} does not exist: the aarch64 build step failed?",
        bin.display()
    );
    Some(bin)
}

/// Runs the aarch64 binary under qemu in the repository root; (stdout, seconds).
fn emulate(bin: &std::path::Path, args: &[&str]) -> (String, f64) {
    let r = runner();
    let t = Instant::now();
    let o = std::process::Command::new(&r[0])
        .args(&r[1..])
        .arg(bin)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?} (apt-get install qemu-user): {e}", r[0]));
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "aarch64 {args:?} under qemu: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).to_string(), secs)
}

fn native(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "native {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
#[ignore = "needs the aarch64 build: AFFECTD_QEMU_BIN=… cargo test --test qemu -- --ignored (.ci/run)"]
fn aarch64_whisper_transcribes_a_grid_clip_like_native() {
    let Some(bin) = qemu_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let clip = data_dir().join("grid-av/clips/lbax4n.mpg");
    let wav = dir.path().join("lbax4n.wav");
    ffmpeg(&["-i", s(&clip), "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", s(&wav)]);
    std::fs::write(
        dir.path().join("transcripts.tsv"),
        "path\tduration_s\treference_transcript\tnote\nlbax4n.wav\t3.000\tlay blue at x four now\tGRID\n",
    )
    .unwrap();
    let args = ["eval", "asr", "--data", s(dir.path())];
    let want = native(&args);
    let (got, secs) = emulate(&bin, &args);
    eprintln!("eval asr of a 3 s clip under qemu: {secs:.1} s");
    let keep = |t: &str| -> Vec<String> {
        // The summary line also carries timings (asr_s=, rtf=), which differ under emulation.
        t.lines()
            .filter(|l| l.starts_with("lbax4n.wav") || l.starts_with("wer="))
            .map(|l| {
                l.split(' ')
                    .filter(|w| !w.starts_with("asr_s=") && !w.starts_with("rtf="))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(keep(&got), keep(&want), "same hypothesis and WER");
    assert_eq!(keep(&want).len(), 2, "{want}");
}

#[test]
#[ignore = "needs the aarch64 build: AFFECTD_QEMU_BIN=… cargo test --test qemu -- --ignored (.ci/run)"]
fn aarch64_text_sentiment_matches_native() {
    let Some(bin) = qemu_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        "text,label\n\"Great, thanks, that fixed it.\",positive\n\"This is the third time I call and nobody helps.\",negative\n\"My order number is on the receipt.\",neutral\n",
    )
    .unwrap();
    let args = ["eval", "text", "--data", s(&csv)];
    let want = native(&args);
    let (got, secs) = emulate(&bin, &args);
    eprintln!("eval text of 3 sentences under qemu: {secs:.1} s");
    assert_eq!(got.lines().last(), want.lines().last(), "native:\n{want}\naarch64:\n{got}");
    assert!(want.lines().last().unwrap_or("").contains("n=3"), "{want}");
}

#[test]
#[ignore = "needs the aarch64 build and a host where qemu-user runs threads: AFFECTD_QEMU_ANALYZE=1 (docs/deploy.md)"]
fn aarch64_binary_under_qemu_matches_the_native_run() {
    let Some(bin) = qemu_bin() else { return };
    assert_eq!(
        std::env::var("AFFECTD_QEMU_ANALYZE").as_deref(),
        Ok("1"),
        "set AFFECTD_QEMU_ANALYZE=1 on a host where qemu-user can run threads (it hangs on the CI VM)"
    );
    let clip = data_dir().join("grid-av/clips/lbax4n.mpg");
    let args = ["analyze", s(&clip), "--interval", "1s", "--fps", "5", "-q"];

    let t = Instant::now();
    let native = run(&args);
    let native_s = t.elapsed().as_secs_f64();
    assert!(native.status.success(), "native: {}", String::from_utf8_lossy(&native.stderr));

    let r = runner();
    let t = Instant::now();
    let emulated = std::process::Command::new(&r[0])
        .args(&r[1..])
        .arg(&bin)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?} (apt-get install qemu-user): {e}", r[0]));
    let qemu_s = t.elapsed().as_secs_f64();
    assert!(emulated.status.success(), "aarch64 under qemu: {}", String::from_utf8_lossy(&emulated.stderr));
    eprintln!("native {native_s:.1} s, aarch64 under qemu {qemu_s:.1} s ({:.0}x)", qemu_s / native_s);

    let a = validated_lines(&String::from_utf8_lossy(&native.stdout));
    let b = validated_lines(&String::from_utf8_lossy(&emulated.stdout));
    assert_eq!(a.len(), 3, "3 s clip in 1 s intervals");
    assert_eq!(a.len(), b.len());
    let mut utterances = 0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let w = |f: &str| format!("interval {i} {f}");
        assert_eq!(x["interval"]["start_s"], y["interval"]["start_s"], "{}", w("start"));
        assert_eq!(x["interval"]["end_s"], y["interval"]["end_s"], "{}", w("end"));
        assert_eq!(x["inputs"]["video"]["frames"], y["inputs"]["video"]["frames"], "{}", w("frames"));
        close(&x["inputs"]["video"]["luma_mean"], &y["inputs"]["video"]["luma_mean"], 1e-4, &w("luma"));
        close(&x["inputs"]["audio"]["seconds"], &y["inputs"]["audio"]["seconds"], 1e-6, &w("audio s"));
        close(&x["inputs"]["audio"]["rms_dbfs"], &y["inputs"]["audio"]["rms_dbfs"], 0.05, &w("rms"));
        let (fx, fy) = (&x["modalities"]["face"], &y["modalities"]["face"]);
        assert_eq!(fx["present"], fy["present"], "{}", w("face present"));
        assert_eq!(fx["face_frames"], fy["face_frames"], "{}", w("face frames"));
        assert_eq!(fx["dominant"], fy["dominant"], "{}", w("dominant expression"));
        for (k, v) in fx["expression"].as_object().into_iter().flatten() {
            close(v, &fy["expression"][k], 0.02, &w(&format!("expression.{k}")));
        }
        for (k, v) in fx["cues"].as_object().into_iter().flatten() {
            if k != "blinks_per_min" {
                close(
                    v,
                    &fy["cues"][k],
                    0.02 * v.as_f64().unwrap_or(0.0).abs().max(1.0),
                    &w(&format!("cues.{k}")),
                );
            }
        }
        let (tx, ty) = (&x["modalities"]["text"], &y["modalities"]["text"]);
        assert_eq!(tx["present"], ty["present"], "{}", w("text present"));
        assert_eq!(tx["utterances"], ty["utterances"], "{}", w("utterances"));
        assert_eq!(tx["words"], ty["words"], "{}", w("words"));
        assert_eq!(tx["sentiment"]["label"], ty["sentiment"]["label"], "{}", w("sentiment label"));
        for (k, v) in tx["sentiment"]["probs"].as_object().into_iter().flatten() {
            close(v, &ty["sentiment"]["probs"][k], 0.02, &w(&format!("sentiment.{k}")));
        }
        utterances += tx["utterances"].as_u64().unwrap_or(0);
    }
    assert!(utterances >= 1, "the GRID sentence is transcribed in both runs");
}
