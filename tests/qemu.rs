//! The cross-compiled aarch64 binary, run under qemu-user, gives the same intervals as the native
//! build on a real 3 s GRID clip (face, expression, audio level, speech and text sentiment).
//!
//! Enabled by `AFFECTD_QEMU_BIN=path/to/aarch64/affectd` (`.ci/run` sets it after
//! `cross/build.sh`); once set, a missing binary or qemu is a failure, not a skip.
//! `AFFECTD_QEMU_RUNNER` overrides the runner (default `qemu-aarch64 -L /usr/aarch64-linux-gnu`).

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

#[test]
fn aarch64_binary_under_qemu_matches_the_native_run() {
    let Some(bin) = std::env::var_os("AFFECTD_QEMU_BIN") else {
        eprintln!("AFFECTD_QEMU_BIN is not set: the aarch64 comparison is not requested (see .ci/run)");
        return;
    };
    let bin = std::path::PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "AFFECTD_QEMU_BIN={} does not exist: the aarch64 build step failed?",
        bin.display()
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
