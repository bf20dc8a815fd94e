//! Nothing identifying leaves the device by default: full sessions on the bundled sample with
//! transcripts off (the default), every byte published to a real Mosquitto and every file
//! written (JSONL, spool records) scanned for the spoken words, image data and vectors.
//!
//! The spoken words come from a transcripts-on run of the same sample; the scanner is shown to
//! find them there (and to find planted image bytes and a long float vector), so a clean scan
//! means something.

mod common;
use common::broker::*;
use common::*;
use std::path::{Path, PathBuf};

const SAMPLE: &str = "tests/data/sample/grid-call.mp4";

/// Lower-case alphanumeric tokens of `text`.
fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// What was said, as the scanner looks for it.
struct Spoken {
    /// Spoken words of 3+ letters that are not also message vocabulary (schema keys and enums,
    /// model file names): any of them in a message can only come from the speech.
    words: Vec<String>,
    /// Consecutive pairs of spoken tokens (`lay red`, `f2 now`): a leaked transcript shows them.
    pairs: Vec<String>,
}

/// Runs the sample with transcripts published; returns what was said and that run's output.
fn spoken(dir: &Path) -> (Spoken, Vec<u8>) {
    let cfg = dir.join("transcripts-on.toml");
    std::fs::write(&cfg, "[privacy]\npublish_transcripts = true\n").unwrap();
    let o = run(&["analyze", SAMPLE, "--config", s(&cfg), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = validated_lines(&String::from_utf8_lossy(&o.stdout));
    let said: Vec<String> = lines
        .iter()
        .filter_map(|l| l["modalities"]["text"]["transcript"].as_str())
        .flat_map(tokens)
        .collect();
    assert!(said.len() >= 10, "the sample's speech was transcribed: {said:?}");
    let mut vocabulary = tokens(&std::fs::read_to_string(repo().join("docs/message-schema.json")).unwrap());
    for l in &lines {
        for v in l["models"].as_object().unwrap().values() {
            vocabulary.extend(tokens(v.as_str().unwrap()));
        }
    }
    let mut words: Vec<String> = said
        .iter()
        .filter(|w| w.len() >= 3 && w.chars().all(|c| c.is_alphabetic()) && !vocabulary.contains(w))
        .cloned()
        .collect();
    words.sort();
    words.dedup();
    assert!(words.len() >= 5, "enough distinctive spoken words to look for: {words:?}");
    // A pair of two one- or two-character tokens (`s 0`, from "bin blue at s 0 now") also occurs
    // in ordinary message text (`"speech_s":0.9` tokenises to `speech s 0 9`): look for pairs
    // with a word of 3+ characters in them.
    let pairs = said.windows(2).filter(|p| p.iter().any(|t| t.len() >= 3)).map(|p| p.join(" ")).collect();
    (Spoken { words, pairs }, o.stdout)
}

/// Everything identifying in `bytes` (`what` names them in the findings).
fn scan(what: &str, bytes: &[u8], spoken: &Spoken) -> Vec<String> {
    let mut found = Vec::new();
    for (name, magic) in [
        ("JPEG", &b"\xFF\xD8\xFF"[..]),
        ("PNG", b"\x89PNG"),
        ("GIF", b"GIF8"),
        ("RIFF (WAV/WebP)", b"RIFF"),
        ("MP4/QuickTime", b"ftypiso"),
        ("MP4/QuickTime", b"ftypmp4"),
        ("MP4/QuickTime", b"ftypM4A"),
        ("MP4/QuickTime", b"ftypqt"),
        ("Ogg/Opus", b"OggS"),
        ("FLAC", b"fLaC"),
        ("data URI", b"data:"),
    ] {
        if bytes.windows(magic.len()).any(|w| w == magic) {
            found.push(format!("{what}: {name} bytes"));
        }
    }
    // Base64 (encoded image or audio) runs: 64+ characters of its alphabet in a row.
    let mut run = 0;
    for &b in bytes {
        run = if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') { run + 1 } else { 0 };
        if run == 64 {
            found.push(format!("{what}: a base64-like run of 64+ characters"));
        }
    }
    // Arrays of more than 12 numbers (embeddings, landmarks, audio samples, pixels).
    let text = String::from_utf8_lossy(bytes);
    for (i, _) in text.match_indices('[') {
        let body = &text[i + 1..];
        let Some(end) = body.find(']') else { continue };
        let body = &body[..end];
        let numeric = body.chars().all(|c| c.is_ascii_digit() || " \n\t,.-+eE".contains(c));
        let n = body.split(',').filter(|x| !x.trim().is_empty()).count();
        if numeric && n > 12 {
            found.push(format!("{what}: an array of {n} numbers"));
        }
    }
    let toks = tokens(&text);
    for w in &spoken.words {
        if toks.contains(w) {
            found.push(format!("{what}: spoken word `{w}`"));
        }
    }
    let joined = format!(" {} ", toks.join(" "));
    for p in &spoken.pairs {
        if joined.contains(&format!(" {p} ")) {
            found.push(format!("{what}: spoken words `{p}`"));
        }
    }
    found
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Scans every file under `dir` except `skip`.
fn scan_files(dir: &Path, skip: &[&Path], spoken: &Spoken) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut n = 0;
    for p in files(dir) {
        if skip.contains(&p.as_path()) {
            continue;
        }
        n += 1;
        found.extend(scan(&p.display().to_string(), &std::fs::read(&p).unwrap(), spoken));
    }
    (found, n)
}

#[test]
fn nothing_identifying_is_published_or_written_with_transcripts_off() {
    let dir = tempfile::tempdir().unwrap();
    let (spoken, with_transcripts) = spoken(dir.path());
    let on_cfg = dir.path().join("transcripts-on.toml");

    // The scanner finds what it looks for: the transcripts-on output, planted image bytes and
    // a 13-float vector.
    let control = scan("transcripts-on output", &with_transcripts, &spoken);
    assert!(control.iter().any(|f| f.contains("spoken word")), "{control:?}");
    assert!(control.iter().any(|f| f.contains("spoken words `")), "{control:?}");
    let planted = [
        &b"{\"face\":\"\xFF\xD8\xFF\xE0\",\"v\":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3]}"[..],
        format!("\"img\":\"{}\"", "QUJD".repeat(20)).as_bytes(),
    ]
    .concat();
    let planted = scan("planted", &planted, &spoken);
    assert!(
        planted.iter().any(|f| f.contains("JPEG"))
            && planted.iter().any(|f| f.contains("13 numbers"))
            && planted.iter().any(|f| f.contains("base64")),
        "{planted:?}"
    );

    // 1. `analyze` publishing to a real broker, with its JSONL file and spool on disk.
    let broker = Broker::start("allow_anonymous true");
    let sub = Subscriber::start(broker.port, "it-privacy", "#");
    let out = dir.path().join("analyze.jsonl");
    let spool = dir.path().join("analyze-spool");
    let o = run(&[
        "analyze",
        SAMPLE,
        "--mqtt",
        &broker.url(),
        "--device-id",
        "privacy-1",
        "--out",
        s(&out),
        "--spool",
        s(&spool),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sub.wait_for(10, "3 intervals and the offline status", |g| {
        g.iter().filter(|r| r.topic.ends_with("/sentiment")).count() == 3
            && g.iter().any(|r| r.topic.ends_with("/status") && r.json["state"] == "offline")
    });
    let got = sub.got.lock().unwrap().clone();
    assert!(got.iter().any(|r| r.topic.ends_with("/metrics")), "metrics were published too");
    let mut found = Vec::new();
    for r in &got {
        found.extend(scan(&format!("MQTT {}", r.topic), &r.payload, &spoken));
        found.extend(scan(&format!("MQTT topic {}", r.topic), r.topic.as_bytes(), &spoken));
    }
    found.extend(scan("analyze stdout", &o.stdout, &spoken));
    let lines = validated_lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(intervals_only(&lines).len(), 3);
    for l in &lines {
        let t = &l["modalities"]["text"];
        assert!(t["utterances"].as_u64().unwrap() > 0 || t["present"] == false);
        assert!(t["transcript"].is_null() && t["segments"].is_null(), "{t}");
    }

    // 2. The daemon with its broker unreachable: every interval stays in the spool on disk.
    let dead = format!("mqtt://127.0.0.1:{}", free_port());
    let sample = repo().join(SAMPLE);
    let (jsonl, spool) = (dir.path().join("daemon.jsonl"), dir.path().join("daemon-spool"));
    let cfg = DaemonToml {
        device: "privacy-2",
        rec: &sample,
        jsonl: &jsonl,
        mqtt: Some((&dead, &spool)),
        mqtt_extra: "spool_fsync = false\nflush_timeout_s = 0.5\nbackoff_max_s = 1.0",
        ..Default::default()
    }
    .write(&dir.path().join("daemon.toml"));
    let mut child = affectd()
        .args(["run", "--config", s(&cfg)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_exit(&mut child, 120);
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    found.extend(scan("daemon stdout", &stdout, &spoken));
    let records = files(&dir.path().join("daemon-spool"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "msg"))
        .count();
    assert!(records >= 3, "the daemon's intervals were spooled ({records} records)");
    assert_eq!(
        intervals_only(&validated_lines(&std::fs::read_to_string(dir.path().join("daemon.jsonl")).unwrap()))
            .len(),
        3
    );

    // Every file both sessions wrote (JSONL, spool records, next_seq), but not the
    // transcripts-on run's config.
    let (on_disk, n) = scan_files(dir.path(), &[on_cfg.as_path()], &spoken);
    assert!(n >= 6, "{n} files scanned");
    found.extend(on_disk);
    assert!(
        found.is_empty(),
        "identifying data left the device ({} MQTT messages, {n} files; looked for {:?}): {found:#?}",
        got.len(),
        spoken.words
    );
}
