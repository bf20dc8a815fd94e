//! MQTT sink (rumqttc, MQTT 3.1.1): interval messages go through the on-disk [`Spool`] and are
//! published with QoS 1 by a worker thread that owns the connection, deletes each message on its
//! PUBACK, reconnects with exponential back-off and jitter, and replays the spool in order after
//! every reconnect and every restart (at-least-once delivery). Status is retained and doubles as
//! the Last Will; metrics are QoS 0 and only sent while connected. Topics: docs/mqtt.md.

use super::spool::{Spool, SpoolStats};
use super::Sink;
use crate::config::{BrokerUrl, MqttSinkConfig, ENV_MQTT_PASSWORD};
use crate::error::{Error, Result};
use crate::message::{rfc3339, Output, StatusMessage, STATUS_SCHEMA};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

#[path = "mqtt_worker.rs"]
mod worker;
use worker::*;

/// At most this many QoS 1 messages wait for their PUBACK at once.
const MAX_INFLIGHT: usize = 32;

/// The topics of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    /// `<prefix>/<device>/sentiment`: interval messages, QoS 1.
    pub sentiment: String,
    /// `<prefix>/<device>/alert`: unexpressed-dissatisfaction alerts, QoS 1.
    pub alert: String,
    /// `<prefix>/<device>/status`: retained online/degraded/offline, also the Last Will.
    pub status: String,
    /// `<prefix>/<device>/metrics`: periodic figures, QoS 0.
    pub metrics: String,
}

impl Topics {
    /// Topics for `device_id` under `prefix`.
    pub fn new(prefix: &str, device_id: &str) -> Topics {
        let t = |leaf: &str| format!("{prefix}/{device_id}/{leaf}");
        Topics { sentiment: t("sentiment"), alert: t("alert"), status: t("status"), metrics: t("metrics") }
    }
}

enum Cmd {
    Wake,
    Retained(Vec<super::ha_discovery::Retained>),
    Status(Vec<u8>),
    Metrics(Vec<u8>),
    Close(Instant),
}

#[derive(Debug, Default)]
struct Shared {
    fatal: Option<String>,
    connected: bool,
    connects: u64,
}

/// Warns when a secrets file can be read by other users (mode `o+r`); returns whether it can.
pub fn warn_if_world_readable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let readable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    if readable {
        log::warn!(
            "{} is readable by every user on this machine; it holds a secret: `chmod 600` it (or 640 with a group for affectd)",
            path.display()
        );
    }
    readable
}

/// Publishes to an MQTT broker through a durable spool.
pub struct MqttSink {
    spool: Arc<Mutex<Spool>>,
    cmd: Sender<Cmd>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    topics: Topics,
    flush_timeout: Duration,
    require_delivery: bool,
    last_status: String,
    undelivered_hint: String,
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::sink("mqtt", format!("cannot read {what} {}: {e}", path.display())))
}

/// Builds the rumqttc options (TLS, credentials, Last Will) from the config.
fn options(cfg: &MqttSinkConfig, device_id: &str, session_id: &str, topics: &Topics) -> Result<MqttOptions> {
    let url =
        BrokerUrl::parse(&cfg.url).map_err(|e| Error::sink("mqtt", format!("url {:?}: {e}", cfg.url)))?;
    let client_id =
        if cfg.client_id.is_empty() { format!("affectd-{device_id}") } else { cfg.client_id.clone() };
    let mut o = MqttOptions::new(client_id, url.host.clone(), url.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(MAX_INFLIGHT as u16);
    let will = StatusMessage {
        schema: STATUS_SCHEMA.into(),
        device_id: device_id.into(),
        session_id: session_id.into(),
        state: "offline".into(),
        reason: "connection lost (last will)".into(),
        wall: rfc3339(SystemTime::now()),
    };
    let payload = serde_json::to_vec(&will).map_err(|e| Error::sink("mqtt", e.to_string()))?;
    o.set_last_will(LastWill::new(&topics.status, payload, QoS::AtLeastOnce, true));
    if !cfg.username.is_empty() {
        let password = match std::env::var(ENV_MQTT_PASSWORD) {
            Ok(p) => p,
            Err(_) if !cfg.password_file.as_os_str().is_empty() => {
                warn_if_world_readable(&cfg.password_file);
                let raw = read_file("password file", &cfg.password_file)?;
                String::from_utf8_lossy(&raw).lines().next().unwrap_or("").to_string()
            }
            Err(_) => String::new(),
        };
        crate::secrets::register(&password);
        o.set_credentials(cfg.username.clone(), password);
    }
    if url.tls {
        let ca = read_file("CA file", &cfg.ca_file)?;
        let client_auth = if cfg.client_cert.as_os_str().is_empty() {
            None
        } else {
            Some((read_file("client certificate", &cfg.client_cert)?, {
                warn_if_world_readable(&cfg.client_key);
                read_file("client key", &cfg.client_key)?
            }))
        };
        o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

impl MqttSink {
    /// Opens the spool and starts the connection worker. `require_delivery` makes
    /// [`Sink::flush`] fail unless every message was acknowledged (for `affectd analyze --mqtt`).
    pub fn start(
        cfg: &MqttSinkConfig,
        device_id: &str,
        session_id: &str,
        require_delivery: bool,
    ) -> Result<MqttSink> {
        let topics = Topics::new(&cfg.topic_prefix, device_id);
        let opts = options(cfg, device_id, session_id, &topics)?;
        let spool = Arc::new(Mutex::new(Spool::open(&cfg.spool_dir, cfg.spool_max_bytes, cfg.spool_fsync)?));
        let pending = spool.lock().map(|s| s.stats().queued).unwrap_or(0);
        if pending > 0 {
            log::info!(
                "mqtt: {pending} messages from an earlier run wait in {} and will be sent first",
                cfg.spool_dir.display()
            );
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let w = Worker {
            opts,
            spool: spool.clone(),
            cmd: rx,
            shared: shared.clone(),
            status_topic: topics.status.clone(),
            metrics_topic: topics.metrics.clone(),
            backoff_max: crate::source::secs_duration(cfg.backoff_max_s),
            status: None,
            retained: Vec::new(),
            closing: None,
        };
        let worker = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || w.run())
            .map_err(|e| Error::sink("mqtt", format!("cannot spawn thread: {e}")))?;
        Ok(MqttSink {
            spool,
            cmd: tx,
            worker: Some(worker),
            shared,
            topics,
            flush_timeout: crate::source::secs_duration(cfg.flush_timeout_s),
            require_delivery,
            last_status: String::new(),
            undelivered_hint: "they stay in the spool {dir} and are sent at the next start".into(),
        })
    }

    /// Replaces what the undelivered-messages error says happens to them (`{dir}` = the spool
    /// folder), e.g. for a run whose spool is not the configured one.
    pub fn with_undelivered_hint(mut self, hint: &str) -> Self {
        self.undelivered_hint = hint.to_string();
        self
    }

    /// Retained messages (Home Assistant discovery) to publish now and after every (re)connect,
    /// before the status; QoS 1, waited for at shutdown like the status.
    pub fn announce(&self, messages: Vec<super::ha_discovery::Retained>) {
        let _ = self.cmd.send(Cmd::Retained(messages));
    }

    /// The device's topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Spool counters.
    pub fn spool_stats(&self) -> SpoolStats {
        self.spool.lock().map(|s| s.stats()).unwrap_or_default()
    }

    /// The device's next interval sequence number as recorded in the spool.
    pub fn next_seq(&self) -> u64 {
        self.spool.lock().map(|s| s.next_seq()).unwrap_or(0)
    }

    fn fatal(&self) -> Option<String> {
        self.shared.lock().ok().and_then(|s| s.fatal.clone())
    }

    fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(v).map_err(|e| Error::sink("mqtt", e.to_string()))
    }
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn publish(&mut self, msg: &Output) -> Result<()> {
        if let Some(f) = self.fatal() {
            return Err(Error::sink("mqtt", f));
        }
        match msg {
            Output::Interval(r) => {
                let payload = Self::json(r)?;
                let mut spool = self.spool.lock().map_err(|_| Error::sink("mqtt", "spool lock poisoned"))?;
                spool.push(&self.topics.sentiment, &payload)?;
                spool.set_next_seq(r.seq + 1)?;
                let evicted = spool.stats().evicted;
                drop(spool);
                let _ = self.cmd.send(Cmd::Wake);
                if evicted > 0 && self.last_status != "degraded" {
                    // Say so on the status topic: the history now has a hole.
                    let s = StatusMessage {
                        schema: STATUS_SCHEMA.into(),
                        device_id: r.device_id.clone(),
                        session_id: r.session_id.clone(),
                        state: "degraded".into(),
                        reason: format!("spool full: {evicted} unacknowledged messages evicted"),
                        wall: rfc3339(SystemTime::now()),
                    };
                    self.last_status = "degraded".into();
                    let _ = self.cmd.send(Cmd::Status(Self::json(&s)?));
                }
            }
            Output::Alert(a) => {
                let payload = Self::json(a)?;
                let mut spool = self.spool.lock().map_err(|_| Error::sink("mqtt", "spool lock poisoned"))?;
                spool.push(&self.topics.alert, &payload)?;
                drop(spool);
                let _ = self.cmd.send(Cmd::Wake);
            }
            Output::Status(s) => {
                self.last_status = s.state.clone();
                let _ = self.cmd.send(Cmd::Status(Self::json(s)?));
            }
            Output::Metrics(m) => {
                let mut m = m.clone();
                m.spool = Some(self.spool_stats());
                let _ = self.cmd.send(Cmd::Metrics(Self::json(&m)?));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let _ = self.cmd.send(Cmd::Close(deadline));
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        if let Some(f) = self.fatal() {
            return Err(Error::sink("mqtt", f));
        }
        let stats = self.spool_stats();
        if stats.queued > 0 {
            let dir = self.spool.lock().map(|s| s.dir().display().to_string()).unwrap_or_default();
            let msg = format!(
                "{} messages not acknowledged by the broker within {:.0} s; {}",
                stats.queued,
                self.flush_timeout.as_secs_f64(),
                self.undelivered_hint.replace("{dir}", &dir),
            );
            if self.require_delivery {
                return Err(Error::sink("mqtt", msg));
            }
            log::warn!("mqtt: {msg}");
        }
        Ok(())
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            let _ = self.cmd.send(Cmd::Close(Instant::now()));
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_layout() {
        let t = Topics::new("affectd", "kiosk-7");
        assert_eq!(t.sentiment, "affectd/kiosk-7/sentiment");
        assert_eq!(t.status, "affectd/kiosk-7/status");
        assert_eq!(t.metrics, "affectd/kiosk-7/metrics");
        assert_eq!(t.alert, "affectd/kiosk-7/alert");
    }

    #[test]
    fn a_reset_tls_handshake_is_retried_a_bad_certificate_is_not() {
        use std::io::{Error as IoError, ErrorKind};
        let reset =
            ConnectionError::Tls(rumqttc::TlsError::Io(IoError::new(ErrorKind::ConnectionReset, "reset")));
        assert!(matches!(classify(reset), Outcome::Lost(_)));
        let eof = ConnectionError::Tls(rumqttc::TlsError::Io(IoError::new(ErrorKind::UnexpectedEof, "eof")));
        assert!(matches!(classify(eof), Outcome::Lost(_)));
        let cert = ConnectionError::Tls(rumqttc::TlsError::Io(IoError::new(
            ErrorKind::InvalidData,
            "invalid peer certificate",
        )));
        assert!(matches!(classify(cert), Outcome::Fatal(m) if m.contains("ca_file")));
    }

    #[test]
    fn a_world_readable_password_file_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(warn_if_world_readable(&p));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!warn_if_world_readable(&p));
    }

    #[test]
    fn jitter_is_in_unit_interval() {
        let mut s = 12345u64;
        for _ in 0..1000 {
            let j = jitter(&mut s);
            assert!((0.0..1.0).contains(&j));
        }
    }
}
