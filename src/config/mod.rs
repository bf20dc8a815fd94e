//! Configuration: the TOML schema (serde, unknown keys rejected), defaults, environment
//! overrides and validation. `configs/default.toml` writes every default down.

use crate::channel::Overflow;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod sink;
mod source;
mod stages;
#[cfg(test)]
mod tests;

pub use sink::*;
pub use source::*;
pub use stages::*;

/// Environment variable that overrides `device_id`.
pub const ENV_DEVICE_ID: &str = "AFFECTD_DEVICE_ID";
/// Environment variable holding the MQTT password (wins over `sink.mqtt.password_file`).
pub const ENV_MQTT_PASSWORD: &str = "AFFECTD_MQTT_PASSWORD";

/// The whole configuration of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identifies this device in every message and MQTT topic (letters, digits, `-`, `_`).
    pub device_id: String,
    /// Timing and queueing of the stage graph.
    pub pipeline: PipelineConfig,
    /// Where frames and audio come from.
    pub source: SourceConfig,
    /// Where messages go.
    pub sink: SinkConfig,
    /// Where model files live.
    pub models: ModelsConfig,
    /// Face detection, landmarks and expression.
    pub vision: VisionConfig,
    /// Voice activity detection and transcription.
    pub speech: SpeechConfig,
    /// Sentence encoder and text sentiment.
    pub text: TextConfig,
    /// What may leave the device.
    pub privacy: PrivacyConfig,
    /// Interval fusion and the unexpressed-dissatisfaction alert.
    pub fusion: FusionConfig,
}

/// Timing and queueing of the stage graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Length of one reporting interval in media seconds.
    pub interval_s: f64,
    /// Frames per second sampled for analysis, independent of the source's frame rate.
    pub analysis_fps: f64,
    /// Capacity of the source→vision frame queue, in frames.
    pub video_queue: usize,
    /// Capacity of the audio queues, in 100 ms chunks.
    pub audio_queue: usize,
    /// What a full frame queue does: `drop_oldest` (live: newest wins) or `block` (replay: lose nothing).
    pub video_overflow: Overflow,
    /// Seconds between metrics messages (wall clock).
    pub metrics_interval_s: f64,
    /// With a live source: how many media seconds one branch may lag the others before their
    /// intervals are published without it (counted as `faults.intervals_forced`). Replays wait.
    pub max_lag_s: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device_id: "affectd".into(),
            pipeline: PipelineConfig::default(),
            source: SourceConfig::default(),
            sink: SinkConfig::default(),
            models: ModelsConfig::default(),
            vision: VisionConfig::default(),
            speech: SpeechConfig::default(),
            text: TextConfig::default(),
            privacy: PrivacyConfig::default(),
            fusion: FusionConfig::default(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            interval_s: 5.0,
            analysis_fps: 10.0,
            video_queue: 4,
            audio_queue: 256,
            video_overflow: Overflow::DropOldest,
            metrics_interval_s: 10.0,
            max_lag_s: 30.0,
        }
    }
}

impl Config {
    /// Reads, parses, applies environment overrides to, and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path, format!("cannot read config file: {e}")))?;
        let mut cfg = Config::parse(&text, path)?;
        cfg.apply_env(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::config(origin, describe_toml_error(text, &e)))
    }

    /// Applies environment overrides (`AFFECTD_DEVICE_ID`).
    pub fn apply_env(&mut self, origin: &Path) -> Result<()> {
        if let Ok(id) = std::env::var(ENV_DEVICE_ID) {
            if id.is_empty() {
                return Err(Error::config(origin, format!("{ENV_DEVICE_ID} is set but empty")));
            }
            self.device_id = id;
        }
        Ok(())
    }

    /// Checks every value against what is allowed; the error names the key.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| {
            Err(Error::config(origin, format!("key `{key}` = {value}: {allowed}")))
        };
        if self.device_id.is_empty()
            || self.device_id.len() > 64
            || !self.device_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "device_id",
                &format!("{:?}", self.device_id),
                "allowed: 1-64 characters from A-Z a-z 0-9 - _ (it becomes part of MQTT topics)",
            );
        }
        let p = &self.pipeline;
        if !(p.interval_s.is_finite() && p.interval_s >= 0.1 && p.interval_s <= 3600.0) {
            return bad("pipeline.interval_s", &p.interval_s, "allowed: 0.1 to 3600 seconds");
        }
        if !(p.analysis_fps.is_finite() && p.analysis_fps > 0.0 && p.analysis_fps <= 120.0) {
            return bad("pipeline.analysis_fps", &p.analysis_fps, "allowed: greater than 0, at most 120");
        }
        if !(1..=1000).contains(&p.video_queue) {
            return bad("pipeline.video_queue", &p.video_queue, "allowed: 1 to 1000 frames");
        }
        if !(1..=100_000).contains(&p.audio_queue) {
            return bad("pipeline.audio_queue", &p.audio_queue, "allowed: 1 to 100000 chunks");
        }
        if !(p.metrics_interval_s.is_finite() && (0.5..=86_400.0).contains(&p.metrics_interval_s)) {
            return bad(
                "pipeline.metrics_interval_s",
                &p.metrics_interval_s,
                "allowed: 0.5 to 86400 seconds",
            );
        }
        if !(p.max_lag_s.is_finite() && (p.interval_s..=3600.0).contains(&p.max_lag_s)) {
            return bad("pipeline.max_lag_s", &p.max_lag_s, "allowed: interval_s to 3600 seconds");
        }
        self.source.validate(origin)?;
        self.vision.validate(origin)?;
        self.speech.validate(origin)?;
        self.fusion.validate(origin)?;
        self.sink.validate(origin)?;
        Ok(())
    }

    /// The effective configuration as TOML (what `affectd config check` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    // toml's message already says what is allowed (`unknown field `x`, expected one of ...`,
    // `unknown variant ...`, `invalid type ...`); add the line and the full dotted key.
    let msg = e.message().trim();
    let Some(span) = e.span() else { return msg.to_string() };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let header = line.trim();
    if header.starts_with('[') && header.ends_with(']') {
        // A tagged table (`source.video`, `source.audio`) is read as a whole, so the error spans
        // the table: find the key the message is about inside it.
        let name = header.trim_matches(|c| c == '[' || c == ']').trim();
        return match key_in_table(text, line_no, msg) {
            Some((k, at)) => format!("line {at}, key `{name}.{k}`: {msg}"),
            None => format!("line {line_no}, table `{name}`: {msg}"),
        };
    }
    let key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    let dotted = match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => String::new(),
    };
    if dotted.is_empty() {
        format!("line {line_no}: {msg}")
    } else {
        format!("line {line_no}, key `{dotted}`: {msg}")
    }
}

/// For an error spanning the table whose header is on `header_line`: the key the message names
/// (`unknown field`/`missing field`) or whose value it quotes (`unknown variant`), with its line.
fn key_in_table(text: &str, header_line: usize, msg: &str) -> Option<(String, usize)> {
    let token = msg.split('`').nth(1)?;
    let body = text
        .lines()
        .enumerate()
        .skip(header_line)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .filter_map(|(i, l)| {
            let l = l.split('#').next().unwrap_or("");
            let (k, v) = l.split_once('=')?;
            Some((i + 1, k.trim().trim_matches('"').to_string(), v.trim().trim_matches('"').to_string()))
        });
    if msg.starts_with("missing field") {
        return Some((token.to_string(), header_line));
    }
    let by_key = msg.starts_with("unknown field");
    body.into_iter().find(|(_, k, v)| if by_key { k == token } else { v == token }).map(|(i, k, _)| (k, i))
}

/// The error for key `key` holding `value`, with what is `allowed`.
fn bad(origin: &Path, key: &str, value: &dyn std::fmt::Display, allowed: &str) -> Result<()> {
    Err(Error::config(origin, format!("key `{key}` = {value}: {allowed}")))
}
