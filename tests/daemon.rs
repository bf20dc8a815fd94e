//! `affectd run`: the daemon replays a recording in real time, and SIGTERM/SIGINT shut it down
//! cleanly (exit 0) without losing any completed interval.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path, rec: &std::path::Path, out: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("daemon.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device_id = "kiosk-test"
[pipeline]
interval_s = 1.0
analysis_fps = 10.0
metrics_interval_s = 0.5
[source.video]
kind = "file"
path = "{rec}"
realtime = true
[source.audio]
kind = "file"
path = "{rec}"
realtime = true
[sink.stdout]
enabled = false
[sink.jsonl]
enabled = true
path = "{out}"
fsync = true
"#,
            rec = rec.display(),
            out = out.display()
        ),
    )
    .unwrap();
    cfg
}

fn stop_after(signal: &str, after: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("intervals.jsonl");
    let cfg = config(dir.path(), &grid_33s(), &out);
    let mut child = affectd().args(["run", "--config", s(&cfg)]).stderr(Stdio::piped()).spawn().unwrap();
    // Media time starts when the sources start, after the models are loaded (seconds on a loaded
    // 2-core machine): count `after` from the daemon's "running" line, not from the spawn.
    let (tx, rx) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)).map_while(|l| l.ok()) {
            if line.contains("running: models loaded") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the daemon says it is running");
    std::thread::sleep(after);
    assert!(child.try_wait().unwrap().is_none(), "daemon exited before the signal");
    let sent = Instant::now();
    let k = std::process::Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(k.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "daemon did not stop within 20 s of {signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let shutdown = sent.elapsed();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "clean exit on {signal}: {stderr}");
    assert!(stderr.contains("stopped (signal)"), "{stderr}");
    // A bound, not a speed target: drain must not wait for the media to end. Generous because
    // this runs on shared 2-core machines (5.3 s was seen under load average 7).
    assert!(shutdown < Duration::from_secs(12), "shutdown took {shutdown:?}");

    let lines = intervals_only(&validated_lines(&std::fs::read_to_string(&out).unwrap()));
    let spans = check_intervals(&lines, 1.0);
    assert!(lines.iter().all(|l| l["device_id"] == "kiosk-test"));
    // Real-time replay for `after` seconds: every interval that had ended by then is there
    // (allowing 1.5 s for the first frame to reach the window), and nothing beyond what was played.
    let played = after.as_secs_f64();
    let end = spans.last().unwrap().1;
    assert!(end >= played - 1.5, "only {end} s of {played} s played were reported: {spans:?}");
    assert!(end <= played + shutdown.as_secs_f64() + 0.5, "reported past what was played: {spans:?}");
    // The interval cut short by the signal is published as partial (and only it), the rest are full.
    for (l, (a, b)) in lines.iter().zip(&spans) {
        let short = b - a < 1.0 - 1e-6;
        assert_eq!(
            l["interval"]["partial"], short,
            "interval {a}-{b}: partial must say whether it is cut short"
        );
    }
    assert!(spans[..spans.len() - 1].iter().all(|(a, b)| (b - a - 1.0).abs() < 1e-6), "{spans:?}");
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn sigterm_drains_and_keeps_every_completed_interval() {
    stop_after("-TERM", Duration::from_millis(4500));
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn sigint_behaves_like_sigterm() {
    stop_after("-INT", Duration::from_millis(2500));
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn file_source_ending_ends_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("intervals.jsonl");
    let clip = data_dir().join("grid-av/clips/lbax4n.mpg");
    let cfg = config(dir.path(), &clip, &out);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("realtime = true", "realtime = false");
    std::fs::write(&cfg, text).unwrap();
    let o = affectd().args(["run", "--config", s(&cfg)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopped (end of input)"));
    let lines = validated_lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_intervals(&lines, 1.0).len(), 3);
}

#[test]
fn run_without_sources_or_sinks_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let o = run(&["run", "--config", s(&cfg)]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("empty.toml") && e.contains("key `source`"), "{e}");
}
