//! Home Assistant MQTT discovery against a real Mosquitto: the retained config topics and payloads
//! a new subscriber sees with `sink.mqtt.home_assistant = true`, that every template reads fields
//! the published messages carry, and that turning it off removes them.

mod common;
use common::broker::*;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEVICE: &str = "ha-1";

fn config(dir: &Path, on: bool) -> PathBuf {
    let p = dir.join(format!("ha-{on}.toml"));
    std::fs::write(&p, format!("device_id = \"{DEVICE}\"\n[sink.mqtt]\nhome_assistant = {on}\n")).unwrap();
    p
}

/// Retained messages under `filter` as a new subscriber sees them: (topic, payload).
fn retained(port: u16, filter: &str) -> Vec<(String, String)> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", filter, "-v", "--retained-only", "-W", "2"])
        .output()
        .expect("mosquitto_sub is installed (apt-get install mosquitto-clients)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (t, p) = l.split_once(' ').unwrap_or((l, ""));
            (t.to_string(), p.to_string())
        })
        .collect()
}

fn analyze(cfg: &Path, url: &str) {
    let o = run(&[
        "analyze",
        "tests/data/sample/grid-call.mp4",
        "--config",
        s(cfg),
        "--mqtt",
        url,
        "--device-id",
        DEVICE,
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The `value_json.a.b` paths a Home Assistant template reads.
fn template_paths(template: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for part in template.split("value_json.").skip(1) {
        let path: String =
            part.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
        out.push(path.trim_end_matches('.').split('.').map(str::to_owned).collect());
    }
    out
}

/// True when some message has `path` (a null along the way counts: templates guard against it).
fn some_message_has(msgs: &[Value], path: &[String]) -> bool {
    msgs.iter().any(|m| {
        let mut v = m;
        for k in path {
            match v.get(k) {
                Some(x) => v = x,
                None => return false,
            }
        }
        !v.is_null()
    })
}

#[test]
fn discovery_configs_are_retained_and_removed_when_disabled() {
    let broker = Broker::start("allow_anonymous true");
    let live = Subscriber::start(broker.port, "ha-live", "#");
    let dir = tempfile::tempdir().unwrap();
    analyze(&config(dir.path(), true), &broker.url());

    let got = retained(broker.port, "homeassistant/#");
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    let want = [
        "homeassistant/binary_sensor/ha-1/alert/config",
        "homeassistant/sensor/ha-1/incongruence/config",
        "homeassistant/sensor/ha-1/score/config",
        "homeassistant/sensor/ha-1/sentiment/config",
    ];
    let mut sorted = topics.clone();
    sorted.sort();
    assert_eq!(sorted, want, "retained discovery topics; broker log:\n{}", broker.log());

    // What the entities read: interval messages on …/sentiment, alerts on …/alert, status.
    let status = retained_status(broker.port, DEVICE);
    assert_eq!(status["state"], "offline", "analyze ended: the retained status says offline");
    live.wait_for(5, "3 intervals and 4 configs", |g| {
        g.iter().filter(|r| r.topic.ends_with("/sentiment")).count() == 3
            && g.iter().filter(|r| r.topic.ends_with("/config")).count() == 4
    });
    let intervals: Vec<Value> = live.on("/sentiment").into_iter().map(|r| r.json).collect();
    assert_eq!(intervals.len(), 3, "the 12 s sample at 5 s intervals");

    let mut unique = std::collections::BTreeSet::new();
    for (topic, payload) in &got {
        let v: Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: not JSON ({e}): {payload}"));
        let object = topic.split('/').nth(3).unwrap();
        assert_eq!(v["unique_id"], format!("affectd_{DEVICE}_{object}"), "{topic}");
        assert!(unique.insert(v["unique_id"].as_str().unwrap().to_string()));
        assert!(v["name"].is_string(), "{topic}");
        assert_eq!(v["qos"], 1);
        // Availability: bound to the retained status topic, and the payloads match what the
        // template renders from what the status topic carries.
        let av = &v["availability"][0];
        assert_eq!(av["topic"], format!("affectd/{DEVICE}/status"), "{topic}");
        assert_eq!(
            (av["payload_available"].as_str(), av["payload_not_available"].as_str()),
            (Some("online"), Some("offline"))
        );
        let avt = av["value_template"].as_str().unwrap();
        assert_eq!(template_paths(avt), [vec!["state".to_string()]], "{avt}");
        assert!(avt.contains("'offline' if value_json.state == 'offline' else 'online'"), "{avt}");
        // One device block for all four.
        let d = &v["device"];
        assert_eq!(d["identifiers"], serde_json::json!([format!("affectd_{DEVICE}")]));
        assert_eq!(d["sw_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(d["model"], "affectd");
        assert_eq!(d["name"], format!("affectd {DEVICE}"));
        // State: the JSON messages, through a template reading fields they really carry.
        let state = v["state_topic"].as_str().unwrap();
        let tpl = v["value_template"].as_str().unwrap();
        assert!(!template_paths(tpl).is_empty(), "{topic}: {tpl}");
        if object == "alert" {
            assert_eq!(state, format!("affectd/{DEVICE}/alert"));
            assert_eq!(v["device_class"], "problem");
            assert_eq!((v["payload_on"].as_str(), v["payload_off"].as_str()), (Some("ON"), Some("OFF")));
            assert_eq!(v["off_delay"], 10, "5 s intervals, re-armed after 2");
            assert_eq!(template_paths(tpl), [vec!["kind".to_string()]]);
        } else {
            assert_eq!(state, format!("affectd/{DEVICE}/sentiment"));
            for path in template_paths(tpl) {
                assert!(some_message_has(&intervals, &path), "{topic}: no interval message has {path:?}");
            }
        }
        if object == "sentiment" {
            assert_eq!(v["options"], serde_json::json!(["negative", "neutral", "positive"]));
            let labels: Vec<&str> =
                intervals.iter().filter_map(|m| m["sentiment"]["label"].as_str()).collect();
            assert!(
                !labels.is_empty()
                    && labels.iter().all(|l| v["options"].as_array().unwrap().contains(&(*l).into()))
            );
        }
    }
    assert!(
        !live.on("/config").is_empty() && live.on("/config").iter().all(|r| !r.json.is_null()),
        "a live subscriber got the configs too"
    );

    // Turned off: the next start removes them (empty retained payloads).
    analyze(&config(dir.path(), false), &broker.url());
    live.wait_for(5, "4 empty config payloads", |g| {
        g.iter().filter(|r| r.topic.ends_with("/config") && r.json.is_null()).count() == 4
    });
    let left = retained(broker.port, "homeassistant/#");
    assert!(left.is_empty(), "discovery configs left after home_assistant = false: {left:?}");
}
