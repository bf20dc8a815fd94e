//! Home Assistant MQTT discovery (`sink.mqtt.home_assistant = true`): retained config messages
//! that make the device appear in Home Assistant by itself, following its documented discovery
//! schema (<https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery>):
//!
//! | topic | entity |
//! |---|---|
//! | `<ha>/sensor/<device>/sentiment/config` | fused sentiment label (enum: negative, neutral, positive) |
//! | `<ha>/sensor/<device>/score/config` | fused sentiment score in [-1, 1] |
//! | `<ha>/sensor/<device>/incongruence/config` | incongruence probability, % |
//! | `<ha>/binary_sensor/<device>/alert/config` | unexpressed-dissatisfaction alert (device class `problem`) |
//!
//! Every entity reads the JSON messages affectd already publishes (`state_topic` +
//! `value_template`), belongs to one `device` block, has a `unique_id`, and is available while the
//! retained status topic says the agent is not `offline` (as Frigate does with `frigate/available`,
//! `online`/`offline`). With `home_assistant = false` the same topics get empty retained
//! payloads at start, which removes entities published earlier. Topics: docs/mqtt.md.

use super::mqtt::Topics;
use crate::config::Config;
use serde_json::{json, Value};

/// One retained message to publish on every connect.
#[derive(Debug, Clone, PartialEq)]
pub struct Retained {
    /// The topic.
    pub topic: String,
    /// The payload; empty removes what the topic retained.
    pub payload: Vec<u8>,
}

/// `payload_available` of every entity: what the availability template renders while the agent runs.
pub const AVAILABLE: &str = "online";
/// `payload_not_available`: what it renders once the status topic says `offline` (a clean stop or
/// the Last Will).
pub const NOT_AVAILABLE: &str = "offline";

/// The entities: (component, object id, config without the shared keys).
fn entities(cfg: &Config, topics: &Topics) -> Vec<(&'static str, &'static str, Value)> {
    // The alert topic only carries alerts (there is no "alert over" message), so the binary
    // sensor turns itself off after the re-arm time: `fusion.alert_rearm_after` intervals.
    let off_delay =
        (cfg.pipeline.interval_s * f64::from(cfg.fusion.alert_rearm_after)).ceil().max(1.0) as u64;
    vec![
        (
            "sensor",
            "sentiment",
            json!({
                "name": "Sentiment",
                "state_topic": topics.sentiment,
                "value_template": "{{ value_json.sentiment.label if value_json.sentiment else None }}",
                "device_class": "enum",
                "options": ["negative", "neutral", "positive"],
                "icon": "mdi:emoticon-outline",
            }),
        ),
        (
            "sensor",
            "score",
            json!({
                "name": "Sentiment score",
                "state_topic": topics.sentiment,
                "value_template": "{{ value_json.sentiment.score if value_json.sentiment else None }}",
                "state_class": "measurement",
                "suggested_display_precision": 2,
                "icon": "mdi:chart-bell-curve",
            }),
        ),
        (
            "sensor",
            "incongruence",
            json!({
                "name": "Incongruence probability",
                "state_topic": topics.sentiment,
                "value_template": "{{ (value_json.incongruence.probability * 100) | round(1) if value_json.incongruence else None }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "icon": "mdi:account-alert-outline",
            }),
        ),
        (
            "binary_sensor",
            "alert",
            json!({
                "name": "Unexpressed dissatisfaction",
                "state_topic": topics.alert,
                "value_template": "{{ 'ON' if value_json.kind == 'unexpressed_dissatisfaction' else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "off_delay": off_delay,
                "device_class": "problem",
                "json_attributes_topic": topics.alert,
            }),
        ),
    ]
}

/// The discovery messages of this device: configs when `sink.mqtt.home_assistant` is on, empty
/// payloads (removal) on the same topics when it is off.
pub fn messages(cfg: &Config) -> Vec<Retained> {
    let m = &cfg.sink.mqtt;
    let device = &cfg.device_id;
    let topics = Topics::new(&m.topic_prefix, device);
    let version = env!("CARGO_PKG_VERSION");
    let node = format!("affectd_{device}");
    entities(cfg, &topics)
        .into_iter()
        .map(|(component, object, mut body)| {
            let topic = format!("{}/{component}/{device}/{object}/config", m.home_assistant_prefix);
            if !m.home_assistant {
                return Retained { topic, payload: Vec::new() };
            }
            let extra = json!({
                "unique_id": format!("{node}_{object}"),
                "qos": 1,
                "availability": [{
                    "topic": topics.status,
                    // The status topic carries affectd.status/1 JSON: `online`, `degraded`
                    // (running, with a problem) or `offline` (stopped, or the Last Will).
                    "value_template": format!("{{{{ '{NOT_AVAILABLE}' if value_json.state == 'offline' else '{AVAILABLE}' }}}}"),
                    "payload_available": AVAILABLE,
                    "payload_not_available": NOT_AVAILABLE,
                }],
                "device": {
                    "identifiers": [node],
                    "name": format!("affectd {device}"),
                    "model": "affectd",
                    "manufacturer": "affectd",
                    "sw_version": version,
                },
                "origin": {"name": "affectd", "sw_version": version},
            });
            if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
                b.extend(e);
            }
            Retained { topic, payload: serde_json::to_vec(&body).unwrap_or_default() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_when_enabled_and_removals_when_disabled() {
        let mut cfg = Config { device_id: "kiosk-7".into(), ..Default::default() };
        cfg.sink.mqtt.home_assistant = true;
        let on = messages(&cfg);
        let topics: Vec<&str> = on.iter().map(|r| r.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/kiosk-7/sentiment/config",
                "homeassistant/sensor/kiosk-7/score/config",
                "homeassistant/sensor/kiosk-7/incongruence/config",
                "homeassistant/binary_sensor/kiosk-7/alert/config",
            ]
        );
        let v: Value = serde_json::from_slice(&on[3].payload).unwrap();
        assert_eq!(v["unique_id"], "affectd_kiosk-7_alert");
        assert_eq!(v["state_topic"], "affectd/kiosk-7/alert");
        assert_eq!(v["availability"][0]["topic"], "affectd/kiosk-7/status");
        // 5 s intervals, re-armed after 2: the alert reads on for 10 s.
        assert_eq!(v["off_delay"], 10);
        cfg.sink.mqtt.home_assistant = false;
        let off = messages(&cfg);
        assert_eq!(off.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>(), topics);
        assert!(off.iter().all(|r| r.payload.is_empty()));
    }
}
