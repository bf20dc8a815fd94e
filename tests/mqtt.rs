//! MQTT publishing against a real Mosquitto: round trip, retained status and Last Will, a broker
//! outage, an agent killed with unacknowledged messages, TLS, mutual TLS and authentication.

mod common;
use common::broker::*;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn daemon_config(
    dir: &Path,
    rec: &Path,
    url: &str,
    device: &str,
    realtime: bool,
    extra_mqtt: &str,
) -> std::path::PathBuf {
    let (jsonl, spool) = (dir.join(format!("{device}.jsonl")), dir.join("spool"));
    let extra = format!("flush_timeout_s = 15.0\nbackoff_max_s = 2.0\n{extra_mqtt}");
    DaemonToml {
        device,
        rec,
        realtime,
        pipeline: "interval_s = 1.0\nmetrics_interval_s = 1.0",
        jsonl: &jsonl,
        mqtt: Some((url, &spool)),
        mqtt_extra: &extra,
        ..Default::default()
    }
    .write(&dir.join(format!("{device}.toml")))
}

fn seqs(msgs: &[Received]) -> Vec<u64> {
    msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

impl std::ops::Index<&str> for Received {
    type Output = serde_json::Value;
    fn index(&self, k: &str) -> &serde_json::Value {
        &self.json[k]
    }
}

fn validate(msgs: &[Received]) {
    for m in msgs {
        let line = serde_json::to_string(&m.json).unwrap();
        validated_lines(&line);
    }
}

#[test]
fn analyze_publishes_every_interval_and_a_retained_status() {
    let broker = Broker::start("allow_anonymous true");
    let sub = Subscriber::start(broker.port, "it-roundtrip", "affectd/rt-1/#");
    let o = run(&[
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--mqtt",
        &broker.url(),
        "--device-id",
        "rt-1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // analyze returns only after every PUBACK: the messages are at the broker already.
    sub.wait_for(5, "3 intervals and offline status", |g| {
        g.iter().filter(|r| r.topic.ends_with("/sentiment")).count() == 3
            && g.iter().any(|r| r.topic.ends_with("/status") && r.json["state"] == "offline")
    });
    let intervals = sub.on("/sentiment");
    assert_eq!(seqs(&intervals), vec![0, 1, 2]);
    validate(&intervals);
    validate(&sub.on("/status"));
    validate(&sub.on("/metrics"));
    assert_eq!(sub.on("/status")[0]["state"], "online");
    let metrics = sub.on("/metrics");
    assert!(
        !metrics.is_empty() && metrics.last().unwrap()["spool"]["queued"].is_u64(),
        "metrics carry spool figures"
    );
    let st = retained_status(broker.port, "rt-1");
    assert_eq!((st["state"].as_str(), st["reason"].as_str()), (Some("offline"), Some("end of input")));
    // Interval payloads on MQTT are the same JSON as on stdout.
    let lines = validated_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(serde_json::to_string(&lines[1]).unwrap(), serde_json::to_string(&intervals[1].json).unwrap());
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn kill_9_leaves_the_last_will_offline_status() {
    let broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &grid_33s(), &broker.url(), "lwt-1", true, "");
    let sub = Subscriber::start(broker.port, "it-lwt", "affectd/lwt-1/status");
    let mut child = affectd().args(["run", "--config", s(&cfg)]).stderr(Stdio::null()).spawn().unwrap();
    sub.wait_for(10, "online status", |g| g.iter().any(|r| r.json["state"] == "online"));
    assert_eq!(retained_status(broker.port, "lwt-1")["state"], "online");
    child.kill().unwrap(); // SIGKILL: no goodbye
    child.wait().unwrap();
    sub.wait_for(10, "last will", |g| g.iter().any(|r| r.json["state"] == "offline"));
    let st = retained_status(broker.port, "lwt-1");
    assert_eq!(st["state"], "offline");
    assert!(st["reason"].as_str().unwrap().contains("last will"), "{st}");
}

#[test]
fn broker_outage_loses_no_interval() {
    let mut broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("tests/data/sample/grid-call.mp4");
    let cfg = daemon_config(dir.path(), &sample, &broker.url(), "out-1", true, "");
    let sub = Subscriber::start(broker.port, "it-outage", "affectd/out-1/#");
    let mut child = affectd().args(["run", "--config", s(&cfg)]).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    broker.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    broker.resume();
    let outage = down.elapsed();
    let status = wait_exit(&mut child, 40);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("connection lost"), "the outage was noticed: {err}");
    let sent = validated_lines(&std::fs::read_to_string(dir.path().join("out-1.jsonl")).unwrap());
    // Interval lines only: the file may also hold alerts (the sample's last reader looks fearful
    // to the expression model, which the fusion head reads as unexpressed dissatisfaction).
    let n = sent.iter().filter(|l| l["schema"] == "affectd.interval/1").count() as u64;
    assert_eq!(n, 12, "12 s sample, 1 s intervals");
    sub.wait_for(15, "every interval after the outage", |g| {
        let got: std::collections::BTreeSet<u64> = g
            .iter()
            .filter(|r| r.topic.ends_with("/sentiment"))
            .map(|r| r.json["seq"].as_u64().unwrap())
            .collect();
        got.len() as u64 == n
    });
    let intervals = sub.on("/sentiment");
    validate(&intervals);
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    for s in seqs(&intervals) {
        *count.entry(s).or_default() += 1;
    }
    assert_eq!(count.keys().copied().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>(), "no gaps");
    let duplicates: u32 = count.values().map(|c| c - 1).sum();
    let max_spool =
        sub.on("/metrics").iter().filter_map(|m| m["spool"]["max_queued"].as_u64()).max().unwrap_or(0);
    assert!(max_spool >= 2, "intervals were spooled during the {outage:?} outage (max {max_spool})");
    // Publish latency: receipt time minus the interval's wall-clock end, for intervals sent while connected.
    let mut lat: Vec<f64> = intervals
        .iter()
        .map(|m| {
            let end = humantime::parse_rfc3339(m["interval"]["wall_end"].as_str().unwrap()).unwrap();
            m.at.duration_since(end).map(|d| d.as_secs_f64()).unwrap_or(0.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "OUTAGE: sent={n} delivered_unique={} duplicates={duplicates} max_spool={max_spool} outage={:.1}s latency_min={:.3}s latency_median={:.3}s latency_max={:.3}s",
        count.len(),
        outage.as_secs_f64(),
        lat[0],
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn killed_agent_delivers_its_spool_after_restart() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let clip = data_dir().join("grid-av/clips/lbbc2a.mpg");
    let url = format!("mqtt://127.0.0.1:{port}");
    let cfg = daemon_config(dir.path(), &clip, &url, "kill-1", false, "");
    // No broker yet: the run spools its 3 intervals and waits for acknowledgements.
    let mut first = affectd().args(["run", "--config", s(&cfg)]).stderr(Stdio::null()).spawn().unwrap();
    let spool = dir.path().join("spool");
    let deadline = Instant::now() + Duration::from_secs(20);
    let jsonl = dir.path().join("kill-1.jsonl");
    let lines = || std::fs::read_to_string(&jsonl).map(|t| t.lines().count()).unwrap_or(0);
    let spooled = || {
        std::fs::read_dir(&spool)
            .map(|d| d.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "msg")).count())
            .unwrap_or(0)
    };
    while spooled() < 3 || lines() < 3 {
        assert!(Instant::now() < deadline, "intervals were not spooled");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let first_session = intervals_only(&validated_lines(&std::fs::read_to_string(&jsonl).unwrap()));
    assert_eq!(first_session.len(), 3);

    // Broker comes up on that port; the agent restarts with the same spool.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let broker = Broker::start("allow_anonymous true");
    std::fs::write(&cfg, text.replace(&url, &broker.url())).unwrap();
    let sub = Subscriber::start(broker.port, "it-kill", "affectd/kill-1/sentiment");
    let o = affectd().args(["run", "--config", s(&cfg)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sub.wait_for(10, "both sessions' intervals", |g| g.len() >= 6);
    let got = sub.on("/sentiment");
    validate(&got);
    // The first session's intervals come first, then the new session continues the numbering.
    assert_eq!(seqs(&got), vec![0, 1, 2, 3, 4, 5]);
    let sessions: Vec<&str> = got.iter().map(|m| m["session_id"].as_str().unwrap()).collect();
    assert_eq!(sessions[0], first_session[0]["session_id"].as_str().unwrap());
    assert_ne!(sessions[0], sessions[5]);
    assert!(
        std::fs::read_dir(&spool).unwrap().all(|e| e.unwrap().path().extension().is_none_or(|x| x != "msg")),
        "spool drained"
    );
}

#[test]
fn tls_and_mutual_tls() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let tls_port = free_port();
    let p = pki.path().display();
    let broker = Broker::start(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {p}/ca.pem\ncertfile {p}/server.pem\nkeyfile {p}/server.key\nrequire_certificate true\n"
    ));
    wait_port(tls_port);
    let sub = Subscriber::start(broker.port, "it-tls", "affectd/tls-1/sentiment");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tls.toml");
    let mtls = format!("[sink.mqtt]\nca_file = \"{p}/ca.pem\"\nclient_cert = \"{p}/client.pem\"\nclient_key = \"{p}/client.key\"\n");
    std::fs::write(&cfg, &mtls).unwrap();
    let url = format!("mqtts://localhost:{tls_port}");
    let o = run(&[
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--config",
        s(&cfg),
        "--mqtt",
        &url,
        "--device-id",
        "tls-1",
        "--quiet",
    ]);
    assert!(o.status.success(), "mutual TLS: {}", String::from_utf8_lossy(&o.stderr));
    sub.wait_for(5, "3 intervals over TLS", |g| g.len() == 3);

    // Without a client certificate the broker refuses: a clear error, quickly.
    std::fs::write(&cfg, format!("[sink.mqtt]\nca_file = \"{p}/ca.pem\"\n")).unwrap();
    let t = Instant::now();
    let o = run(&[
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--config",
        s(&cfg),
        "--mqtt",
        &url,
        "--device-id",
        "tls-2",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("sink mqtt")
            && (e.contains("TLS") || e.contains("connection") || e.contains("not acknowledged")),
        "{e}"
    );
    // With TLS 1.3 the broker's refusal of a missing client certificate arrives after the
    // handshake, as a connection reset: it is retried like an outage until analyze's 30 s flush
    // timeout, then reported. Bounded, never a hang.
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());

    // A CA that did not sign the broker's certificate is rejected as a TLS failure.
    let other = tempfile::tempdir().unwrap();
    make_pki(other.path());
    std::fs::write(&cfg, mtls.replace(&format!("{p}/ca.pem"), &format!("{}/ca.pem", other.path().display())))
        .unwrap();
    let o = run(&[
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--config",
        s(&cfg),
        "--mqtt",
        &url,
        "--device-id",
        "tls-3",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("TLS failed") && e.contains("ca_file"), "{e}");
}

#[test]
fn wrong_password_is_rejected_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd");
    let st = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b", s(&pw), "kiosk", "s3cret-pass"])
        .status()
        .unwrap();
    assert!(st.success());
    let broker = Broker::start(&format!("allow_anonymous false\npassword_file {}", pw.display()));
    let cfg = dir.path().join("auth.toml");
    std::fs::write(&cfg, "[sink.mqtt]\nusername = \"kiosk\"\n").unwrap();
    let args = [
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--config",
        s(&cfg),
        "--mqtt",
        &broker.url(),
        "--device-id",
        "auth-1",
        "--quiet",
    ];
    let t = Instant::now();
    let o = affectd().env("AFFECTD_MQTT_PASSWORD", "wrong-guess").args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("refused the connection") && e.contains("AFFECTD_MQTT_PASSWORD"), "{e}");
    assert!(!e.contains("wrong-guess"), "the password must never be printed: {e}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "refusal is final, not retried until timeout: {:?}",
        t.elapsed()
    );
    // The right password from a file works.
    std::fs::write(dir.path().join("pw.txt"), "s3cret-pass\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[sink.mqtt]\nusername = \"kiosk\"\npassword_file = \"{}\"\n",
            dir.path().join("pw.txt").display()
        ),
    )
    .unwrap();
    let o = affectd().env_remove("AFFECTD_MQTT_PASSWORD").args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn alerts_reach_the_alert_topic_through_the_spool() {
    // Threshold 0 flags every interval with both a face and words, so the real daemon raises the
    // alert on the bundled sample; this checks the wiring (config → window → spool → topic).
    // Real time: an unpaced `run` drops frames under load (video_overflow = drop_oldest).
    let broker = Broker::start("allow_anonymous true");
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("tests/data/sample/grid-call.mp4");
    let fusion = "[fusion]\nincongruence_threshold = 0.0\nalert_after = 1\nalert_rearm_after = 1\n";
    let cfg = daemon_config(dir.path(), &sample, &broker.url(), "alert-1", true, fusion);
    let sub = Subscriber::start(broker.port, "it-alert", "affectd/alert-1/#");
    let o = run(&["run", "--config", s(&cfg)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sub.wait_for(30, "an alert and the offline status", |g| {
        g.iter().any(|r| r.topic.ends_with("/alert"))
            && g.iter().any(|r| r.topic.ends_with("/status") && r.json["state"] == "offline")
    });
    let alerts = sub.on("/alert");
    validate(&alerts);
    let intervals = sub.on("/sentiment");
    for a in &alerts {
        assert_eq!(a["kind"], "unexpressed_dissatisfaction");
        assert_eq!(a["threshold"], 0.0);
        assert!(a["transcript"].is_null(), "transcripts are not opted in");
        for seq in a["intervals"].as_array().unwrap() {
            let iv = intervals.iter().find(|i| i["seq"] == *seq).expect("the alert's interval was published");
            assert_eq!(iv["incongruence"]["flag"], true);
        }
    }
    // The JSONL file carries the same alerts between its interval lines.
    let lines = validated_lines(&std::fs::read_to_string(dir.path().join("alert-1.jsonl")).unwrap());
    assert_eq!(lines.iter().filter(|l| l["schema"] == "affectd.alert/1").count(), alerts.len());
}
