//! Sinks: where messages leave the pipeline. Every sink sees every [`Output`] and picks what it
//! publishes; `flush` is called at shutdown and must leave nothing completed undelivered.

pub mod ha_discovery;
pub mod jsonl;
pub mod mqtt;
pub mod spool;

use crate::config::Config;
use crate::error::Result;
use crate::message::Output;

/// A destination for interval, status and metrics messages.
pub trait Sink: Send {
    /// Short name for logs and errors (`stdout`, `jsonl`, `mqtt`).
    fn name(&self) -> &str;
    /// Publishes one message (or queues it durably for publication).
    fn publish(&mut self, msg: &Output) -> Result<()>;
    /// Makes everything published so far durable or delivered; called at shutdown.
    fn flush(&mut self) -> Result<()>;
    /// Whether a failed `publish` ends the session (true) or only degrades it (false: the
    /// failure is published as status `degraded`, counted, and the session goes on — e.g. the
    /// daemon's log file on a full disk while MQTT still delivers).
    fn fatal_on_error(&self) -> bool {
        true
    }
}

/// The sinks of a session and the interval number it starts at.
pub struct Sinks {
    /// Every enabled sink.
    pub sinks: Vec<Box<dyn Sink>>,
    /// First interval `seq`: continues the device's numbering when an MQTT spool remembers it, else 0.
    pub first_seq: u64,
}

/// Builds the sinks a configuration enables for session `session_id`. With `require_delivery`,
/// the MQTT sink fails at flush unless the broker acknowledged everything.
pub fn from_config(cfg: &Config, session_id: &str, require_delivery: bool) -> Result<Sinks> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut first_seq = 0;
    if cfg.sink.mqtt.enabled {
        let m = mqtt::MqttSink::start(&cfg.sink.mqtt, &cfg.device_id, session_id, require_delivery)?;
        m.announce(ha_discovery::messages(cfg));
        first_seq = m.next_seq();
        sinks.push(Box::new(m));
    }
    if cfg.sink.stdout.enabled {
        sinks.push(Box::new(jsonl::JsonlSink::stdout()));
    }
    if cfg.sink.jsonl.enabled {
        let j = &cfg.sink.jsonl;
        let sink = jsonl::JsonlSink::file(&j.path, j.fsync, true)?.rotating(j.max_bytes, j.keep).tolerant();
        sinks.push(Box::new(sink));
    }
    Ok(Sinks { sinks, first_seq })
}
