//! Sinks: where messages leave the pipeline. Every sink sees every [`Output`] and picks what it
//! publishes; `flush` is called at shutdown and must leave nothing completed undelivered.

pub mod jsonl;

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
}

/// Builds the sinks a configuration enables.
pub fn from_config(cfg: &Config) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if cfg.sink.stdout.enabled {
        sinks.push(Box::new(jsonl::JsonlSink::stdout()));
    }
    if cfg.sink.jsonl.enabled {
        sinks.push(Box::new(jsonl::JsonlSink::file(&cfg.sink.jsonl.path, cfg.sink.jsonl.fsync, true)?));
    }
    Ok(sinks)
}
