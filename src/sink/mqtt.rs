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

enum Outcome {
    Closed,
    Lost(String),
    Fatal(String),
}

struct Worker {
    opts: MqttOptions,
    spool: Arc<Mutex<Spool>>,
    cmd: Receiver<Cmd>,
    shared: Arc<Mutex<Shared>>,
    status_topic: String,
    metrics_topic: String,
    backoff_max: Duration,
    status: Option<Vec<u8>>,
    retained: Vec<super::ha_discovery::Retained>,
    closing: Option<Instant>,
}

/// A small xorshift for back-off jitter (no need for cryptographic randomness).
fn jitter(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

impl Worker {
    fn set_shared(&self, f: impl FnOnce(&mut Shared)) {
        if let Ok(mut s) = self.shared.lock() {
            f(&mut s);
        }
    }

    fn run(mut self) {
        let mut backoff = Duration::from_millis(500);
        let mut rng =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0x9e37, |d| d.as_nanos() as u64)
                | 1;
        loop {
            let connects_before = self.shared.lock().map(|s| s.connects).unwrap_or(0);
            match self.connection() {
                Outcome::Closed => return,
                Outcome::Fatal(msg) => {
                    log::error!("mqtt: {msg}");
                    self.set_shared(|s| s.fatal = Some(msg));
                    return;
                }
                Outcome::Lost(why) => {
                    self.set_shared(|s| s.connected = false);
                    log::warn!(
                        "mqtt: connection lost or refused ({why}); retrying in about {:.1} s",
                        backoff.as_secs_f64()
                    );
                }
            }
            if self.shared.lock().map(|s| s.connects).unwrap_or(0) > connects_before {
                backoff = Duration::from_millis(500);
            }
            let wait = backoff.mul_f64(0.5 + jitter(&mut rng));
            backoff = (backoff * 2).min(self.backoff_max);
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if self.closing.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                match self.cmd.recv_timeout(
                    until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)),
                ) {
                    Ok(Cmd::Status(s)) => self.status = Some(s),
                    Ok(Cmd::Retained(r)) => self.retained = r,
                    Ok(Cmd::Close(d)) => self.closing = Some(d),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.closing = Some(self.closing.unwrap_or_else(Instant::now))
                    }
                }
            }
            if self.closing.is_some_and(|d| Instant::now() >= d) {
                return;
            }
        }
    }

    /// Publishes the retained (discovery) messages, QoS 1.
    fn publish_retained(&self, client: &Client, requested: &mut VecDeque<Option<u64>>) {
        for r in &self.retained {
            if client.try_publish(&r.topic, QoS::AtLeastOnce, true, r.payload.clone()).is_ok() {
                requested.push_back(None);
            }
        }
    }

    /// One connection, from CONNECT until it is lost or closed.
    fn connection(&mut self) -> Outcome {
        let (client, mut conn) = Client::new(self.opts.clone(), 256);
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let pump = std::thread::Builder::new().name("mqtt-io".into()).spawn(move || {
            for ev in conn.iter() {
                let end = ev.is_err();
                if ev_tx.send(ev).is_err() || end {
                    break;
                }
            }
        });
        let pump = match pump {
            Ok(p) => p,
            Err(e) => return Outcome::Fatal(format!("cannot spawn thread: {e}")),
        };
        let outcome = self.drive(&client, &ev_rx);
        drop(client);
        // The pump ends once its connection fails or the client is gone.
        let _ = pump.join();
        outcome
    }

    fn drive(
        &mut self,
        client: &Client,
        events: &Receiver<std::result::Result<Event, ConnectionError>>,
    ) -> Outcome {
        let mut connected = false;
        let mut requested: VecDeque<Option<u64>> = VecDeque::new();
        let mut inflight: HashMap<u16, Option<u64>> = HashMap::new();
        let mut cursor: Option<u64> = None;
        let mut disconnecting = false;
        loop {
            // Commands from the pipeline.
            loop {
                let cmd = match self.cmd.try_recv() {
                    Ok(c) => c,
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        self.closing.get_or_insert_with(Instant::now);
                        break;
                    }
                };
                match cmd {
                    Cmd::Wake => {}
                    Cmd::Retained(r) => {
                        self.retained = r;
                        if connected {
                            self.publish_retained(client, &mut requested);
                        }
                    }
                    Cmd::Status(s) => {
                        if connected
                            && client
                                .try_publish(&self.status_topic, QoS::AtLeastOnce, true, s.clone())
                                .is_ok()
                        {
                            requested.push_back(None);
                        }
                        self.status = Some(s);
                    }
                    Cmd::Metrics(m) => {
                        if connected
                            && client.try_publish(&self.metrics_topic, QoS::AtMostOnce, false, m).is_ok()
                        {
                            requested.push_back(None);
                        }
                    }
                    Cmd::Close(d) => self.closing = Some(d),
                }
            }
            // Spooled messages, oldest first, a bounded number in flight.
            if connected && !disconnecting {
                while requested.len() + inflight.len() < MAX_INFLIGHT {
                    let rec = {
                        let Ok(mut spool) = self.spool.lock() else {
                            return Outcome::Fatal("spool lock poisoned".into());
                        };
                        match spool.next_after(cursor) {
                            Some(id) => (id, spool.read(id)),
                            None => break,
                        }
                    };
                    let rec = match rec {
                        (_, Ok(Some(r))) => r,
                        // Torn or corrupt: quarantined and counted by the spool; go on with the next.
                        (id, Ok(None)) => {
                            cursor = Some(id);
                            continue;
                        }
                        (id, Err(e)) => {
                            // Unreadable (I/O): skip it this connection; it stays for the next.
                            log::error!("mqtt: {e}");
                            cursor = Some(id);
                            continue;
                        }
                    };
                    if client.try_publish(&rec.topic, QoS::AtLeastOnce, false, rec.payload).is_err() {
                        break;
                    }
                    requested.push_back(Some(rec.id));
                    cursor = Some(rec.id);
                }
            }
            // Closing: once everything is acknowledged (or time is up), say goodbye.
            if let Some(deadline) = self.closing {
                let drained = self.spool.lock().map(|s| s.is_empty()).unwrap_or(true)
                    && inflight.is_empty()
                    && requested.is_empty();
                if Instant::now() >= deadline
                    || (connected && drained && !disconnecting)
                    || (!connected && Instant::now() >= deadline)
                {
                    if connected && !disconnecting {
                        disconnecting = true;
                        let _ = client.try_disconnect();
                    } else if !connected || Instant::now() >= deadline + Duration::from_secs(1) {
                        return Outcome::Closed;
                    }
                }
            }
            match events.recv_timeout(Duration::from_millis(20)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    connected = true;
                    self.set_shared(|s| {
                        s.connected = true;
                        s.connects += 1;
                    });
                    log::info!("mqtt: connected");
                    self.publish_retained(client, &mut requested);
                    if let Some(s) = &self.status {
                        if client.try_publish(&self.status_topic, QoS::AtLeastOnce, true, s.clone()).is_ok() {
                            requested.push_back(None);
                        }
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(entry) = requested.pop_front() {
                        if pkid != 0 {
                            inflight.insert(pkid, entry);
                        }
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(Some(id)) = inflight.remove(&ack.pkid) {
                        if let Ok(mut s) = self.spool.lock() {
                            if let Err(e) = s.ack(id) {
                                return Outcome::Fatal(e.to_string());
                            }
                        }
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) if disconnecting => {}
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    if disconnecting {
                        return Outcome::Closed;
                    }
                    return classify(e);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return if disconnecting {
                        Outcome::Closed
                    } else {
                        Outcome::Lost("event loop ended".into())
                    };
                }
            }
        }
    }
}

/// I/O errors in a TLS handshake that say the connection went away (worth retrying), as opposed
/// to certificate problems (rustls reports those as `InvalidData`).
fn tls_io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | NotConnected
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    )
}

/// Refused credentials and certificate failures are configuration problems: retrying cannot help.
fn classify(e: ConnectionError) -> Outcome {
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                Outcome::Fatal("the broker refused the connection: bad user name or password (check sink.mqtt.username and AFFECTD_MQTT_PASSWORD / sink.mqtt.password_file)".into())
            }
            ConnectReturnCode::NotAuthorized => Outcome::Fatal(
                "the broker refused the connection: not authorized (wrong user name or password, or this client is not allowed; check sink.mqtt.username and AFFECTD_MQTT_PASSWORD / sink.mqtt.password_file)".into(),
            ),
            ConnectReturnCode::BadClientId => Outcome::Fatal("the broker refused the client id (set sink.mqtt.client_id)".into()),
            other => Outcome::Lost(format!("broker refused the connection: {other:?}")),
        },
        // A reset, refusal or timeout during the handshake is the network, not the set-up: retry.
        ConnectionError::Tls(rumqttc::TlsError::Io(e)) if tls_io_is_transient(&e) => {
            Outcome::Lost(format!("TLS handshake interrupted: {e}"))
        }
        ConnectionError::Tls(t) => Outcome::Fatal(format!("TLS failed: {t} (check sink.mqtt.ca_file, client_cert, client_key and the broker's certificate name)")),
        other => Outcome::Lost(other.to_string()),
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
