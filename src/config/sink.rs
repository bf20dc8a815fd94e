//! `[sink.*]`: where messages go (stdout, a JSON-lines file, MQTT).

use super::*;

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Interval messages as JSON lines on standard output.
    pub stdout: StdoutSinkConfig,
    /// Interval messages appended as JSON lines to a file.
    pub jsonl: JsonlSinkConfig,
    /// MQTT publishing with an on-disk spool (see docs/mqtt.md).
    pub mqtt: MqttSinkConfig,
}

/// The MQTT sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSinkConfig {
    /// Publish to an MQTT broker.
    pub enabled: bool,
    /// Broker URL: `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (TLS, default 8883).
    pub url: String,
    /// MQTT client id; empty = `affectd-<device_id>`.
    pub client_id: String,
    /// Keep-alive interval in seconds (5 to 3600).
    pub keep_alive_s: u64,
    /// User name; empty = no authentication.
    pub username: String,
    /// File holding the password (first line). The environment variable AFFECTD_MQTT_PASSWORD wins.
    pub password_file: PathBuf,
    /// CA certificate (PEM) that signed the broker's certificate; required for `mqtts://`.
    pub ca_file: PathBuf,
    /// Client certificate (PEM) for mutual TLS; needs `client_key` too.
    pub client_cert: PathBuf,
    /// Client private key (PEM) for mutual TLS.
    pub client_key: PathBuf,
    /// First topic level: topics are `<topic_prefix>/<device_id>/{sentiment,alert,status,metrics}`.
    pub topic_prefix: String,
    /// Folder of the spool of unacknowledged messages (survives restarts).
    pub spool_dir: PathBuf,
    /// Size cap of the spool in bytes; beyond it the oldest messages are evicted and counted.
    pub spool_max_bytes: u64,
    /// fsync every spooled message and removal (survives power cuts; costs flash writes).
    pub spool_fsync: bool,
    /// At shutdown, wait at most this many seconds for acknowledgements (the rest stays spooled).
    pub flush_timeout_s: f64,
    /// Upper bound of the reconnect back-off in seconds (it starts at 0.5 s, doubles, with jitter).
    pub backoff_max_s: f64,
    /// Publish Home Assistant MQTT discovery configs (retained) for this device; when false, any
    /// this device published earlier are removed (empty retained messages) at start.
    pub home_assistant: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's `discovery_prefix`).
    pub home_assistant_prefix: String,
}

impl Default for MqttSinkConfig {
    fn default() -> Self {
        MqttSinkConfig {
            enabled: false,
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: String::new(),
            keep_alive_s: 30,
            username: String::new(),
            password_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
            topic_prefix: "affectd".into(),
            spool_dir: PathBuf::from("spool"),
            spool_max_bytes: 64 * 1024 * 1024,
            spool_fsync: true,
            flush_timeout_s: 10.0,
            backoff_max_s: 30.0,
            home_assistant: false,
            home_assistant_prefix: "homeassistant".into(),
        }
    }
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 in brackets).
    pub fn parse(url: &str) -> std::result::Result<BrokerUrl, String> {
        let allowed = "allowed: mqtt://host[:port] or mqtts://host[:port]";
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!("unsupported scheme ({allowed})"));
        };
        let rest = rest.trim_end_matches('/');
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| format!("unclosed `[` ({allowed})"))?;
            (h.to_string(), p.strip_prefix(':').map(str::to_string))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.to_string())),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!("bad host `{host}` ({allowed}; no path, no user info)"));
        }
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("bad port `{p}` (1 to 65535)"))?,
        };
        Ok(BrokerUrl { tls, host, port })
    }
}

/// The stdout sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutSinkConfig {
    /// Write interval messages to standard output.
    pub enabled: bool,
}

/// The JSON-lines file sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonlSinkConfig {
    /// Append interval messages to `path`.
    pub enabled: bool,
    /// The file (created if missing, appended to otherwise).
    pub path: PathBuf,
    /// fsync after every message, so a power cut loses nothing already reported.
    pub fsync: bool,
    /// Size cap of the file in bytes: beyond it the file is rotated (`path.1`, `path.2`, …).
    pub max_bytes: u64,
    /// Rotated files kept (the oldest beyond this is deleted); 0 = truncate instead.
    pub keep: u32,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            stdout: StdoutSinkConfig { enabled: true },
            jsonl: JsonlSinkConfig::default(),
            mqtt: MqttSinkConfig::default(),
        }
    }
}

impl Default for StdoutSinkConfig {
    fn default() -> Self {
        StdoutSinkConfig { enabled: true }
    }
}

impl Default for JsonlSinkConfig {
    fn default() -> Self {
        JsonlSinkConfig {
            enabled: false,
            path: PathBuf::from("affectd-intervals.jsonl"),
            fsync: true,
            max_bytes: 256 << 20,
            keep: 3,
        }
    }
}

impl SinkConfig {
    /// Checks every value of this section; the error names the key and what is allowed.
    pub(crate) fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| bad(origin, key, value, allowed);
        let m = &self.mqtt;
        if m.enabled {
            let url = match BrokerUrl::parse(&m.url) {
                Ok(u) => u,
                Err(why) => return bad("sink.mqtt.url", &format!("{:?}", m.url), &why),
            };
            if url.tls && m.ca_file.as_os_str().is_empty() {
                return bad(
                    "sink.mqtt.ca_file",
                    &"\"\"",
                    "required with mqtts://: the PEM file of the CA that signed the broker's certificate",
                );
            }
            if m.client_cert.as_os_str().is_empty() != m.client_key.as_os_str().is_empty() {
                return bad(
                    "sink.mqtt.client_cert",
                    &m.client_cert.display(),
                    "client_cert and client_key go together (mutual TLS)",
                );
            }
            if !url.tls && !m.client_cert.as_os_str().is_empty() {
                return bad(
                    "sink.mqtt.client_cert",
                    &m.client_cert.display(),
                    "client certificates need an mqtts:// url",
                );
            }
            let p = &m.topic_prefix;
            if p.is_empty() || p.starts_with('/') || p.ends_with('/') || p.contains(['+', '#']) {
                return bad(
                    "sink.mqtt.topic_prefix",
                    &format!("{p:?}"),
                    "allowed: a non-empty topic without + or # and without leading/trailing /",
                );
            }
            let p = &m.home_assistant_prefix;
            if p.is_empty() || p.starts_with('/') || p.ends_with('/') || p.contains(['+', '#']) {
                return bad(
                    "sink.mqtt.home_assistant_prefix",
                    &format!("{p:?}"),
                    "allowed: a non-empty topic without + or # and without leading/trailing / (Home Assistant's default: homeassistant)",
                );
            }
        }
        // Numeric keys are checked whether or not the sink is enabled (`config check` shows all).
        if !(5..=3600).contains(&m.keep_alive_s) {
            return bad("sink.mqtt.keep_alive_s", &m.keep_alive_s, "allowed: 5 to 3600 seconds");
        }
        if !(64 * 1024..=1 << 40).contains(&m.spool_max_bytes) {
            return bad(
                "sink.mqtt.spool_max_bytes",
                &m.spool_max_bytes,
                "allowed: 65536 to 1099511627776 bytes",
            );
        }
        if !(0.0..=3600.0).contains(&m.flush_timeout_s) {
            return bad("sink.mqtt.flush_timeout_s", &m.flush_timeout_s, "allowed: 0 to 3600 seconds");
        }
        if !(0.5..=3600.0).contains(&m.backoff_max_s) {
            return bad("sink.mqtt.backoff_max_s", &m.backoff_max_s, "allowed: 0.5 to 3600 seconds");
        }
        let j = &self.jsonl;
        if !(4096..=1 << 40).contains(&j.max_bytes) {
            return bad("sink.jsonl.max_bytes", &j.max_bytes, "allowed: 4096 to 1099511627776 bytes");
        }
        if j.keep > 100 {
            return bad("sink.jsonl.keep", &j.keep, "allowed: 0 to 100 rotated files");
        }
        if self.jsonl.enabled && self.jsonl.path.as_os_str().is_empty() {
            return bad("sink.jsonl.path", &"\"\"", "allowed: a file path when sink.jsonl.enabled = true");
        }
        Ok(())
    }
}
