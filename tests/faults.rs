//! Fault injection with real processes, files and a real Mosquitto (issue 18): a stage that
//! panics, one frame that fails, a full disk under the log file, a torn spool record, a broker that
//! is not there for `analyze --mqtt`, an ffmpeg child killed mid-stream, and credentials in a pipe
//! source's command. Each must end in a clear status with nothing completed lost. All run on the
//! bundled sample (no shared data needed).

mod common;
use common::broker::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn sample() -> PathBuf {
    repo().join("tests/data/sample/grid-call.mp4")
}

/// A daemon config: the bundled sample as fast as it decodes, 1 s intervals, MQTT to `url`,
/// the JSONL log at `jsonl`.
fn config(dir: &Path, device: &str, url: &str, jsonl: &Path, extra: &str) -> PathBuf {
    let (rec, spool) = (sample(), dir.join("spool"));
    let extra = format!("flush_timeout_s = 20.0\n{extra}");
    DaemonToml {
        device,
        rec: &rec,
        pipeline: "interval_s = 1.0\nmetrics_interval_s = 0.5\nvideo_overflow = \"block\"",
        jsonl,
        mqtt: Some((url, &spool)),
        mqtt_extra: &extra,
        ..Default::default()
    }
    .write(&dir.join(format!("{device}.toml")))
}

fn seqs(msgs: &[Received]) -> Vec<u64> {
    msgs.iter().map(|m| m.json["seq"].as_u64().unwrap()).collect()
}

#[test]
fn a_stage_that_panics_ends_the_session_in_order_and_says_so() {
    let broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("log.jsonl");
    let cfg = config(dir.path(), "panic-1", &broker.url(), &jsonl, "");
    let sub = Subscriber::start(broker.port, "it-panic", "affectd/panic-1/#");
    let o = affectd()
        .args(["run", "--config", s(&cfg)])
        .env("AFFECTD_FAULT", "vision:40:panic")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a panic is a failure exit (systemd restarts it): {err}");
    assert!(err.contains("stage vision panicked: fault injection"), "{err}");
    sub.wait_for(10, "offline status", |g| {
        g.iter().any(|r| r.topic.ends_with("/status") && r.json["state"] == "offline")
    });
    let statuses: Vec<(String, String)> = sub
        .on("/status")
        .iter()
        .map(|r| (r.json["state"].as_str().unwrap().into(), r.json["reason"].as_str().unwrap().into()))
        .collect();
    assert!(
        statuses.iter().any(|(st, why)| st == "degraded" && why.contains("stage vision: panicked")),
        "{statuses:?}"
    );
    let metrics = sub.on("/metrics");
    assert!(metrics.iter().any(|m| m.json["faults"]["stage_panics"] == 1), "counted in metrics");
    // Nothing completed is lost: every interval written to the log reached the broker, in order.
    let logged = intervals_only(&validated_lines(&std::fs::read_to_string(&jsonl).unwrap()));
    assert!(logged.len() >= 2, "the intervals before the panic are published: {}", logged.len());
    let sent: Vec<u64> = logged.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(sent, (0..sent.len() as u64).collect::<Vec<_>>());
    assert_eq!(seqs(&sub.on("/sentiment")), sent);
}

#[test]
fn one_frame_that_fails_is_skipped_and_counted_not_fatal() {
    let rec = sample();
    let args = ["analyze", s(&rec), "--interval", "4"];
    let clean = run(&args);
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    let o = affectd().args(args).env("AFFECTD_FAULT", "vision:5:error").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "one bad frame does not end the session: {err}");
    assert!(err.contains("skipped 1 frames"), "{err}");
    let a = intervals_only(&validated_lines(&String::from_utf8_lossy(&clean.stdout)));
    let b = intervals_only(&validated_lines(&String::from_utf8_lossy(&o.stdout)));
    assert_eq!(a.len(), b.len(), "same intervals");
    let frames = |v: &[serde_json::Value]| -> Vec<u64> {
        v.iter().map(|l| l["inputs"]["video"]["frames"].as_u64().unwrap()).collect()
    };
    let (fa, fb) = (frames(&a), frames(&b));
    assert_eq!(fa[0], fb[0] + 1, "the first interval lost exactly the failed frame: {fa:?} {fb:?}");
    assert_eq!(fa[1..], fb[1..]);
}

#[test]
fn a_full_disk_under_the_log_file_degrades_the_daemon_instead_of_ending_it() {
    let broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    // /dev/full: every write fails with ENOSPC, as on a full file system.
    let cfg = config(dir.path(), "full-1", &broker.url(), Path::new("/dev/full"), "");
    let sub = Subscriber::start(broker.port, "it-full", "affectd/full-1/#");
    let o = affectd().args(["run", "--config", s(&cfg)]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("No space left on device") && err.contains("the session goes on"), "{err}");
    sub.wait_for(15, "12 intervals and offline", |g| {
        g.iter().filter(|r| r.topic.ends_with("/sentiment")).count() == 12
            && g.iter().any(|r| r.topic.ends_with("/status") && r.json["state"] == "offline")
    });
    assert_eq!(seqs(&sub.on("/sentiment")), (0..12).collect::<Vec<_>>(), "MQTT still delivers everything");
    let degraded: Vec<String> = sub
        .on("/status")
        .iter()
        .filter(|r| r.json["state"] == "degraded")
        .map(|r| r.json["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(degraded.iter().any(|r| r.contains("sink jsonl") && r.contains("No space left")), "{degraded:?}");
    let failures = sub.on("/metrics").iter().filter_map(|m| m.json["faults"]["sink_failures"].as_u64()).max();
    assert!(failures.unwrap_or(0) >= 12, "every unwritten message is counted: {failures:?}");
}

#[test]
fn a_torn_spool_record_is_quarantined_and_the_rest_delivered() {
    let broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // An earlier run left two records; a power cut (no fsync) left a third one empty.
    {
        let mut sp = affectd::sink::spool::Spool::open(&spool, 1 << 20, true).unwrap();
        for seq in [100, 101] {
            let payload = format!("{{\"seq\":{seq}}}");
            sp.push("affectd/torn-1/sentiment", payload.as_bytes()).unwrap();
        }
    }
    std::fs::write(spool.join(format!("{:020}.msg", 2)), b"").unwrap();
    let sub = Subscriber::start(broker.port, "it-torn", "affectd/torn-1/#");
    let o = affectd()
        .args([
            "analyze",
            s(&sample()),
            "--mqtt",
            &broker.url(),
            "--spool",
            s(&spool),
            "--device-id",
            "torn-1",
        ])
        .args(["--quiet"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("not deliverable") && err.contains("quarantine"), "{err}");
    sub.wait_for(10, "2 old + 3 new intervals", |g| {
        g.iter().filter(|r| r.topic.ends_with("/sentiment")).count() == 5
    });
    let got = seqs(&sub.on("/sentiment"));
    assert_eq!(&got[..2], &[100, 101], "the earlier run's messages go first: {got:?}");
    assert!(spool.join("quarantine").join(format!("{:020}.msg", 2)).exists());
    assert!(std::fs::read_dir(&spool).unwrap().all(|e| !e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".msg")));
}

#[test]
fn analyze_keeps_undelivered_messages_private_and_says_how_to_send_them() {
    let port = free_port(); // nothing listens there
    let o = affectd()
        .args([
            "analyze",
            s(&sample()),
            "--mqtt",
            &format!("mqtt://127.0.0.1:{port}"),
            "--device-id",
            "nobroker-1",
        ])
        .args(["--quiet"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let dir = err
        .split("--spool ")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("the error says how to send them: {err}"));
    assert!(!err.contains("sent at the next start"), "{err}");
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let suffix = name.strip_prefix("affectd-spool-").unwrap_or_else(|| panic!("{name}"));
    assert!(
        suffix.len() >= 6 && !suffix.chars().all(|c| c.is_ascii_digit()),
        "unpredictable name, not a pid: {name}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "private folder");
    let records: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msg"))
        .collect();
    assert_eq!(records.len(), 3, "three intervals kept");
    assert!(records.iter().all(|p| std::fs::metadata(p).unwrap().permissions().mode() & 0o077 == 0));
    // The command the error gives delivers them first, then the new run's.
    let broker = Broker::start("allow_anonymous true");
    let sub = Subscriber::start(broker.port, "it-nobroker", "affectd/nobroker-1/sentiment");
    let o = run(&[
        "analyze",
        s(&sample()),
        "--mqtt",
        &broker.url(),
        "--spool",
        s(&dir),
        "--device-id",
        "nobroker-1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sub.wait_for(10, "6 intervals", |g| g.len() == 6);
    assert_eq!(seqs(&sub.on("/sentiment")), (0..6).collect::<Vec<_>>(), "numbering continues");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ffmpeg_child_killed_mid_stream_is_a_clear_error_and_completed_intervals_stay() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join(format!("killme-{}.mp4", std::process::id()));
    // The sample looped 5 times (60 s, stream copy): ffmpeg must still be decoding when the first
    // interval arrives, which on a loaded machine can be after 12 s of video were decoded (the
    // first interval waits for speech recognition).
    ffmpeg(&["-stream_loop", "4", "-i", s(&sample()), "-c", "copy", s(&rec)]);
    let mut child = affectd()
        .args(["analyze", s(&rec), "--interval", "1", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(|l| l.ok()) {
            let _ = tx.send(());
            lines.push(l);
        }
        lines
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("a first interval");
    // Kill the video decoder (ffmpeg's command line names the copy; affectd's own does too, so
    // match the program name).
    let pids = std::process::Command::new("pgrep")
        .args(["-f", &format!("^ffmpeg .*{}", rec.display())])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&pids.stdout).to_string();
    assert!(!pids.trim().is_empty(), "ffmpeg is still decoding");
    for pid in pids.split_whitespace() {
        let _ = std::process::Command::new("kill").args(["-KILL", pid]).status();
    }
    let status = wait_exit(&mut child, 120);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&rec.display().to_string()) && err.contains("ffmpeg failed to decode it"), "{err}");
    assert!(err.contains("signal: 9"), "{err}");
    let intervals = intervals_only(&validated_lines(&lines.join("\n")));
    assert!(!intervals.is_empty(), "completed intervals were published");
    let sent: Vec<u64> = intervals.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(sent, (0..sent.len() as u64).collect::<Vec<_>>());
}

#[test]
fn credentials_in_a_pipe_source_never_reach_the_log_or_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipe.toml");
    let out = dir.path().join("pipe.jsonl");
    std::fs::write(
        &cfg,
        format!(
            r#"device_id = "pipe-1"
[source.video]
kind = "pipe"
command = ["sh", "-c", "echo \"open $0 failed: 401\" >&2; env | grep -c -e AFFECTD_ -e PASSWORD >&2; exit 1", "rtsp://admin:hunter22@10.0.0.5/stream1"]
width = 64
height = 48
fps = 5
pixel_format = "gray"
[sink.stdout]
enabled = false
[sink.jsonl]
enabled = true
path = "{out}"
"#,
            out = out.display()
        ),
    )
    .unwrap();
    let o = affectd()
        .args(["run", "--config", s(&cfg)])
        .env("RUST_LOG", "debug")
        .env("AFFECTD_MQTT_PASSWORD", "mqtt-pw-do-not-leak")
        .env("CAMERA_PASSWORD", "hunter22")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("rtsp://***@10.0.0.5/stream1"), "the command is named, masked: {err}");
    assert!(err.contains("failed: 401"), "the child's stderr is kept: {err}");
    assert!(!err.contains("hunter22") && !err.contains("mqtt-pw"), "{err}");
    assert!(
        err.contains("stderr: open rtsp://***@10.0.0.5/stream1 failed: 401; 0"),
        "no credential variable reached the child: {err}"
    );
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly_not_with_a_panic() {
    // `affectd models | head -0`: the reader closes the pipe before affectd writes (it first
    // hashes ~70 MB of models, so the close always comes first).
    let mut child = affectd()
        .arg("models")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before affectd writes anything
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "models: {:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "models: {stderr}");
}

#[test]
fn quiet_keeps_the_stage_figures_that_stats_asks_for() {
    let out = affectd().args(["analyze", sample().to_str().unwrap(), "--quiet", "--stats"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stage thread") && stderr.contains("vision"), "{stderr}");
    assert!(!stderr.contains("intervals,"), "--quiet still drops the summary line: {stderr}");
}
