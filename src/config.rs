//! Configuration: the TOML schema (serde, unknown keys rejected), defaults, environment
//! overrides and validation. `configs/default.toml` writes every default down.

use crate::channel::Overflow;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// Where frames and audio come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The video source.
    pub video: VideoSourceConfig,
    /// The audio source.
    pub audio: AudioSourceConfig,
}

/// A video source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VideoSourceConfig {
    /// No video.
    None,
    /// A recording: `.y4m` read natively, anything else decoded by ffmpeg.
    File {
        /// The recording.
        path: PathBuf,
        /// Pace delivery to the wall clock, as a camera would (for the daemon); `false` = as fast as possible.
        #[serde(default)]
        realtime: bool,
    },
    /// A V4L2 webcam (nokhwa); the camera's closest offer to the request is used.
    Webcam {
        /// `""` = first camera; an index (`0`), `/dev/videoN`, or part of the camera's name.
        #[serde(default)]
        device: String,
        /// Requested width in pixels.
        #[serde(default = "default_webcam_width")]
        width: u32,
        /// Requested height in pixels.
        #[serde(default = "default_webcam_height")]
        height: u32,
        /// Requested frames per second.
        #[serde(default = "default_webcam_fps")]
        fps: u32,
        /// Requested pixel format: `auto`, `mjpeg`, `yuyv` or `nv12` (falls back to what the camera offers).
        #[serde(default = "default_webcam_format")]
        format: crate::source::webcam::WebcamFormat,
        /// Upper bound of the reconnect back-off in seconds when the camera disappears.
        #[serde(default = "default_reconnect_max_s")]
        reconnect_max_s: f64,
    },
    /// A command writing raw frames to stdout (rpicam-vid, gst-launch-1.0 … ! fdsink, ffmpeg).
    Pipe {
        /// Program and arguments, no shell (use `["sh", "-c", "…"]` for a pipeline).
        command: Vec<String>,
        /// Frame width in pixels, as the command writes it.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Frames per second the command writes (media time = frame index / fps).
        fps: f64,
        /// Layout of each frame: `rgb24`, `gray`, `yuv420p`, `nv12` or `yuyv`.
        pixel_format: crate::source::pixfmt::PixelFormat,
    },
}

fn default_webcam_width() -> u32 {
    640
}
fn default_webcam_height() -> u32 {
    480
}
fn default_webcam_fps() -> u32 {
    30
}
fn default_webcam_format() -> crate::source::webcam::WebcamFormat {
    crate::source::webcam::WebcamFormat::Auto
}
fn default_reconnect_max_s() -> f64 {
    30.0
}

/// An audio source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AudioSourceConfig {
    /// No audio.
    None,
    /// A recording: `.wav` read natively, anything else (including a video's audio track) via ffmpeg.
    File {
        /// The recording.
        path: PathBuf,
        /// Pace delivery to the wall clock.
        #[serde(default)]
        realtime: bool,
        /// Which channel of a stereo call recording is the customer: `left`, `right` or `mix`
        /// (all channels averaged, the default). Only that channel is decoded and analysed.
        #[serde(default)]
        channel: AudioChannel,
    },
    /// A microphone (cpal; ALSA on Linux), any native rate/format, resampled to 16 kHz mono.
    Mic {
        /// `""` = the default input device; else its name (as `arecord -L` lists it) or part of it.
        #[serde(default)]
        device: String,
        /// Sample rate to ask the device for; 0 = its default.
        #[serde(default)]
        sample_rate: u32,
        /// Upper bound of the restart back-off in seconds after a stream error.
        #[serde(default = "default_reconnect_max_s")]
        restart_max_s: f64,
    },
}

/// The channel of a recording that is analysed (the customer's, on a stereo call recording).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AudioChannel {
    /// Every channel averaged to mono.
    #[default]
    Mix,
    /// The first channel only (the others are never decoded past the demuxer).
    Left,
    /// The second channel only; a mono recording has none, which is an error.
    Right,
}

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

/// Where model files live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder holding the model files and `manifest.toml` (relative paths are relative to the working directory).
    pub dir: PathBuf,
    /// Check every model's sha256 against the manifest when loading it.
    pub verify: bool,
}

/// The vision stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    /// Run face detection, landmarks and expression on analysed frames.
    pub enabled: bool,
    /// Minimum BlazeFace score for a detection (0 to 1).
    pub min_detection_score: f32,
    /// Minimum FaceMesh face-presence probability to accept (and keep tracking) a face (0 to 1).
    pub min_face_presence: f32,
    /// Manifest name of the expression model (`expression` = fer's mini-XCEPTION with flip averaging, `expression_baseline` = it alone).
    pub expression_model: String,
    /// Whose face is analysed: `"largest"`, `"most_central"` or `{ region = [x0, y0, x1, y1] }`
    /// (fractions of the frame; faces centred outside are never scored). See src/vision/customer.rs.
    pub customer: crate::vision::customer::CustomerPolicy,
    /// A customer unseen for longer than this (media seconds) has left: the next face is a new customer.
    pub customer_gap_s: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            enabled: true,
            min_detection_score: 0.5,
            min_face_presence: 0.5,
            expression_model: "expression".into(),
            customer: Default::default(),
            customer_gap_s: 2.0,
        }
    }
}

/// Voice activity detection and Whisper transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// Detect speech and transcribe it.
    pub enabled: bool,
    /// Threads for whisper.cpp (1 leaves the other cores to vision; ggml threads spin-wait).
    pub asr_threads: usize,
    /// Segments whose no-speech probability is above this are dropped (Whisper invents text on silence).
    pub no_speech_max: f32,
    /// Shortest speech run that counts, seconds.
    pub min_speech_s: f64,
    /// Silence that ends an utterance, seconds.
    pub min_silence_s: f64,
    /// Longer utterances are cut (Whisper's window is 30 s).
    pub max_utterance_s: f64,
    /// Score how each utterance was said (voice emotion on the Whisper encoder output; needs the
    /// `voice_emotion` model). Only runs when speech is enabled.
    pub voice: bool,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        let v = crate::audio::vad::VadParams::default();
        SpeechConfig {
            enabled: true,
            asr_threads: 1,
            no_speech_max: 0.6,
            min_speech_s: v.min_speech_s,
            min_silence_s: v.min_silence_s,
            max_utterance_s: v.max_utterance_s,
            voice: true,
        }
    }
}

/// The text stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextConfig {
    /// Encode each utterance and estimate its sentiment.
    pub enabled: bool,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig { enabled: true }
    }
}

/// Interval fusion: the attention head over face and words, and the alert it drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FusionConfig {
    /// Run the fusion head on every interval (fills `sentiment`, `incongruence`, `fusion`).
    pub enabled: bool,
    /// Incongruence probability at or above which an interval is flagged (0 to 1).
    pub incongruence_threshold: f32,
    /// Publish an alert after this many consecutive flagged intervals (debounce; 1 or more).
    pub alert_after: u32,
    /// After an alert, this many consecutive unflagged intervals re-arm it (1 or more).
    pub alert_rearm_after: u32,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig { enabled: true, incongruence_threshold: 0.5, alert_after: 2, alert_rearm_after: 2 }
    }
}

/// What may leave the device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Include (PII-redacted) transcripts in published messages. Off by default.
    pub publish_transcripts: bool,
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

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig { video: VideoSourceConfig::None, audio: AudioSourceConfig::None }
    }
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

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig { dir: PathBuf::from("models"), verify: true }
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
        if let VideoSourceConfig::File { path, .. } = &self.source.video {
            if path.as_os_str().is_empty() {
                return bad("source.video.path", &"\"\"", "allowed: the path of a recording");
            }
        }
        if let AudioSourceConfig::File { path, .. } = &self.source.audio {
            if path.as_os_str().is_empty() {
                return bad("source.audio.path", &"\"\"", "allowed: the path of a recording");
            }
        }
        match &self.source.video {
            VideoSourceConfig::Webcam { width, height, fps, reconnect_max_s, .. } => {
                if !(16..=7680).contains(width) {
                    return bad("source.video.width", width, "allowed: 16 to 7680 pixels");
                }
                if !(16..=4320).contains(height) {
                    return bad("source.video.height", height, "allowed: 16 to 4320 pixels");
                }
                if !(1..=240).contains(fps) {
                    return bad("source.video.fps", fps, "allowed: 1 to 240");
                }
                if !(0.5..=3600.0).contains(reconnect_max_s) {
                    return bad(
                        "source.video.reconnect_max_s",
                        reconnect_max_s,
                        "allowed: 0.5 to 3600 seconds",
                    );
                }
            }
            VideoSourceConfig::Pipe { command, width, height, fps, pixel_format } => {
                if command.first().is_none_or(|p| p.is_empty()) {
                    return bad(
                        "source.video.command",
                        &format!("{command:?}"),
                        "allowed: a program and its arguments, e.g. [\"rpicam-vid\", \"-o\", \"-\"]",
                    );
                }
                if !(16..=7680).contains(width) {
                    return bad("source.video.width", width, "allowed: 16 to 7680 pixels");
                }
                if !(16..=4320).contains(height) {
                    return bad("source.video.height", height, "allowed: 16 to 4320 pixels");
                }
                if !(fps.is_finite() && *fps > 0.0 && *fps <= 240.0) {
                    return bad("source.video.fps", fps, "allowed: above 0, at most 240");
                }
                if pixel_format.frame_bytes(*width, *height).is_none() {
                    return bad(
                        "source.video.pixel_format",
                        pixel_format,
                        &format!("{width}x{height} does not fit it: 4:2:0 formats need even width and height, yuyv an even width"),
                    );
                }
            }
            VideoSourceConfig::None | VideoSourceConfig::File { .. } => {}
        }
        if let AudioSourceConfig::Mic { sample_rate, restart_max_s, .. } = &self.source.audio {
            if *sample_rate != 0 && !(8000..=384_000).contains(sample_rate) {
                return bad(
                    "source.audio.sample_rate",
                    sample_rate,
                    "allowed: 0 (device default) or 8000 to 384000 Hz",
                );
            }
            if !(0.5..=3600.0).contains(restart_max_s) {
                return bad("source.audio.restart_max_s", restart_max_s, "allowed: 0.5 to 3600 seconds");
            }
        }
        let v = &self.vision;
        if !(0.0..=1.0).contains(&v.min_detection_score) {
            return bad("vision.min_detection_score", &v.min_detection_score, "allowed: 0 to 1");
        }
        if !(0.0..=1.0).contains(&v.min_face_presence) {
            return bad("vision.min_face_presence", &v.min_face_presence, "allowed: 0 to 1");
        }
        if let Err(why) = v.customer.check() {
            return bad("vision.customer", &v.customer, &why);
        }
        if !(v.customer_gap_s.is_finite() && (0.0..=600.0).contains(&v.customer_gap_s)) {
            return bad("vision.customer_gap_s", &v.customer_gap_s, "allowed: 0 to 600 seconds");
        }
        let sp = &self.speech;
        if !(1..=16).contains(&sp.asr_threads) {
            return bad("speech.asr_threads", &sp.asr_threads, "allowed: 1 to 16");
        }
        if !(0.0..=1.0).contains(&sp.no_speech_max) {
            return bad("speech.no_speech_max", &sp.no_speech_max, "allowed: 0 to 1");
        }
        if !(sp.max_utterance_s > 1.0 && sp.max_utterance_s <= 30.0) {
            return bad(
                "speech.max_utterance_s",
                &sp.max_utterance_s,
                "allowed: more than 1, at most 30 seconds",
            );
        }
        if !(sp.min_speech_s > 0.0 && sp.min_speech_s < sp.max_utterance_s) {
            return bad("speech.min_speech_s", &sp.min_speech_s, "allowed: above 0, below max_utterance_s");
        }
        if !(sp.min_silence_s > 0.0 && sp.min_silence_s <= 10.0) {
            return bad("speech.min_silence_s", &sp.min_silence_s, "allowed: above 0, at most 10 seconds");
        }
        let fu = &self.fusion;
        if !(0.0..=1.0).contains(&fu.incongruence_threshold) {
            return bad("fusion.incongruence_threshold", &fu.incongruence_threshold, "allowed: 0 to 1");
        }
        if !(1..=1000).contains(&fu.alert_after) {
            return bad("fusion.alert_after", &fu.alert_after, "allowed: 1 to 1000 intervals");
        }
        if !(1..=1000).contains(&fu.alert_rearm_after) {
            return bad("fusion.alert_rearm_after", &fu.alert_rearm_after, "allowed: 1 to 1000 intervals");
        }
        let m = &self.sink.mqtt;
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
        let j = &self.sink.jsonl;
        if !(4096..=1 << 40).contains(&j.max_bytes) {
            return bad("sink.jsonl.max_bytes", &j.max_bytes, "allowed: 4096 to 1099511627776 bytes");
        }
        if j.keep > 100 {
            return bad("sink.jsonl.keep", &j.keep, "allowed: 0 to 100 rotated files");
        }
        if self.sink.jsonl.enabled && self.sink.jsonl.path.as_os_str().is_empty() {
            return bad("sink.jsonl.path", &"\"\"", "allowed: a file path when sink.jsonl.enabled = true");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        let c = Config::parse(s, Path::new("test.toml"))?;
        c.validate(Path::new("test.toml"))?;
        Ok(c)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_file_key_and_allowed_keys() {
        let e = parse("[pipeline]\ninterval = 5\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: "), "{e}");
        assert!(e.contains("line 2, key `pipeline.interval`"), "{e}");
        assert!(e.contains("interval_s") && e.contains("analysis_fps"), "should list allowed keys: {e}");
    }

    #[test]
    fn unknown_source_kind_lists_allowed_kinds() {
        let e = parse("[source.video]\nkind = \"camera\"\n").unwrap_err().to_string();
        assert!(e.contains("key `source.video.kind`"), "{e}");
        assert!(e.contains("camera") && e.contains("none") && e.contains("file"), "{e}");
        assert!(e.contains("webcam") && e.contains("pipe"), "{e}");
        let e = parse("[source.audio]\nkind = \"camera\"\n").unwrap_err().to_string();
        assert!(e.contains("key `source.audio.kind`") && e.contains("mic"), "{e}");
    }

    #[test]
    fn live_sources_parse_with_defaults_and_are_checked() {
        let c = parse("[source.video]\nkind = \"webcam\"\n[source.audio]\nkind = \"mic\"\n").unwrap();
        assert_eq!(
            c.source.video,
            VideoSourceConfig::Webcam {
                device: String::new(),
                width: 640,
                height: 480,
                fps: 30,
                format: crate::source::webcam::WebcamFormat::Auto,
                reconnect_max_s: 30.0
            }
        );
        assert_eq!(
            c.source.audio,
            AudioSourceConfig::Mic { device: String::new(), sample_rate: 0, restart_max_s: 30.0 }
        );
        let pipe =
            "[source.video]\nkind = \"pipe\"\ncommand = [\"cam\"]\nwidth = 640\nheight = 480\nfps = 15.0\n";
        let e = parse(&format!("{pipe}pixel_format = \"bgr48\"\n")).unwrap_err().to_string();
        assert!(
            e.contains("source.video.pixel_format") && e.contains("yuv420p") && e.contains("rgb24"),
            "{e}"
        );
        let e = parse(pipe).unwrap_err().to_string();
        assert!(e.contains("pixel_format"), "missing field is named: {e}");
        let e = parse(
            &pipe
                .replace("width = 640", "width = 641")
                .replace("fps = 15.0\n", "fps = 15.0\npixel_format = \"nv12\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("source.video.pixel_format") && e.contains("641x480") && e.contains("even"),
            "{e}"
        );
        let e = parse(
            &pipe
                .replace("[\"cam\"]", "[]")
                .replace("fps = 15.0\n", "fps = 15.0\npixel_format = \"rgb24\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source.video.command") && e.contains("a program"), "{e}");
        let e = parse("[source.video]\nkind = \"webcam\"\nformat = \"h264\"\n").unwrap_err().to_string();
        assert!(e.contains("source.video.format") && e.contains("mjpeg") && e.contains("auto"), "{e}");
        let e = parse("[source.audio]\nkind = \"mic\"\nsample_rate = 100\n").unwrap_err().to_string();
        assert!(e.contains("source.audio.sample_rate") && e.contains("8000"), "{e}");
        let e = parse("[source.audio]\nkind = \"mic\"\nchannels = 2\n").unwrap_err().to_string();
        assert!(e.contains("channels") && e.contains("sample_rate"), "unknown key lists allowed ones: {e}");
    }

    #[test]
    fn fusion_values_are_checked() {
        let e = parse("[fusion]\nincongruence_threshold = 1.5\n").unwrap_err().to_string();
        assert!(e.contains("key `fusion.incongruence_threshold` = 1.5: allowed: 0 to 1"), "{e}");
        let e = parse("[fusion]\nalert_after = 0\n").unwrap_err().to_string();
        assert!(e.contains("key `fusion.alert_after` = 0"), "{e}");
        let e = parse("[fusion]\nalert_every = 3\n").unwrap_err().to_string();
        assert!(e.contains("alert_every"), "{e}");
        assert!(!parse("[fusion]\nenabled = false\n").unwrap().fusion.enabled);
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        let e = parse("[pipeline]\ninterval_s = 0.0\n").unwrap_err().to_string();
        assert!(e.contains("pipeline.interval_s") && e.contains("0.1 to 3600"), "{e}");
        let e = parse("device_id = \"kiosk/7\"\n").unwrap_err().to_string();
        assert!(e.contains("device_id") && e.contains("kiosk/7"), "{e}");
        let e = parse("[pipeline]\nvideo_overflow = \"sometimes\"\n").unwrap_err().to_string();
        assert!(e.contains("block") && e.contains("drop_oldest"), "{e}");
    }

    #[test]
    fn customer_choice_is_parsed_and_checked() {
        use crate::vision::customer::CustomerPolicy;
        assert_eq!(parse("").unwrap().vision.customer, CustomerPolicy::Largest);
        let c = parse("[vision]\ncustomer = \"most_central\"\n").unwrap();
        assert_eq!(c.vision.customer, CustomerPolicy::MostCentral);
        let c = parse("[vision]\ncustomer = { region = [0.5, 0.0, 1.0, 1.0] }\n").unwrap();
        assert_eq!(c.vision.customer, CustomerPolicy::Region([0.5, 0.0, 1.0, 1.0]));
        assert_eq!(parse(&c.to_toml()).unwrap(), c, "a region round-trips through config check");
        let e = parse("[vision]\ncustomer = \"biggest\"\n").unwrap_err().to_string();
        assert!(
            e.contains("key `vision.customer`") && e.contains("largest") && e.contains("most_central"),
            "{e}"
        );
        assert!(e.contains("region"), "{e}");
        let e = parse("[vision]\ncustomer = { region = [0.6, 0.0, 0.4, 1.0] }\n").unwrap_err().to_string();
        assert!(
            e.contains("key `vision.customer` = { region = [0.6, 0, 0.4, 1] }: allowed:")
                && e.contains("0 <= x0 < x1 <= 1"),
            "{e}"
        );
        let e = parse("[vision]\ncustomer_gap_s = -1.0\n").unwrap_err().to_string();
        assert!(e.contains("key `vision.customer_gap_s` = -1: allowed: 0 to 600 seconds"), "{e}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let e = parse("[pipeline]\nanalysis_fps = \"ten\"\n").unwrap_err().to_string();
        assert!(e.contains("key `pipeline.analysis_fps`"), "{e}");
        assert!(e.contains("float") || e.contains("string"), "{e}");
    }

    #[test]
    fn effective_config_round_trips() {
        let mut c = Config::default();
        c.source.video = VideoSourceConfig::File { path: "a.mp4".into(), realtime: true };
        let back = parse(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerUrl::parse("mqtt://localhost"),
            Ok(BrokerUrl { tls: false, host: "localhost".into(), port: 1883 })
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://b.example:9000/"),
            Ok(BrokerUrl { tls: true, host: "b.example".into(), port: 9000 })
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://[::1]:1884"),
            Ok(BrokerUrl { tls: false, host: "::1".into(), port: 1884 })
        );
        assert!(BrokerUrl::parse("http://x").unwrap_err().contains("allowed: mqtt://"));
        assert!(BrokerUrl::parse("mqtt://x:0").unwrap_err().contains("bad port"));
        assert!(BrokerUrl::parse("mqtt://u:p@x").is_err());
    }

    #[test]
    fn mqtt_settings_are_checked() {
        let e = parse("[sink.mqtt]\nenabled = true\nurl = \"mqtts://h\"\n").unwrap_err().to_string();
        assert!(e.contains("sink.mqtt.ca_file") && e.contains("required with mqtts"), "{e}");
        let e = parse("[sink.mqtt]\nenabled = true\nurl = \"tcp://h\"\n").unwrap_err().to_string();
        assert!(e.contains("sink.mqtt.url") && e.contains("allowed"), "{e}");
        let e = parse("[sink.mqtt]\nenabled = true\ntopic_prefix = \"a/#\"\n").unwrap_err().to_string();
        assert!(e.contains("sink.mqtt.topic_prefix"), "{e}");
    }

    #[test]
    fn durations_too_large_for_a_clock_are_rejected_by_name() {
        // Each of these once passed `config check` and then panicked `affectd run` (Duration overflow).
        for (toml, key) in [
            ("[pipeline]\nmetrics_interval_s = 1e20\n", "pipeline.metrics_interval_s"),
            ("[sink.mqtt]\nbackoff_max_s = 1e20\n", "sink.mqtt.backoff_max_s"),
            ("[sink.mqtt]\nflush_timeout_s = 1e20\n", "sink.mqtt.flush_timeout_s"),
            ("[sink.mqtt]\nflush_timeout_s = nan\n", "sink.mqtt.flush_timeout_s"),
            ("[sink.mqtt]\nspool_max_bytes = 1125899906842624\n", "sink.mqtt.spool_max_bytes"),
        ] {
            let e = parse(toml).unwrap_err().to_string();
            assert!(e.contains(&format!("key `{key}`")) && e.contains("allowed:"), "{toml}: {e}");
        }
        assert_eq!(crate::source::secs_duration(1e20), std::time::Duration::from_secs(365 * 86_400));
        assert_eq!(crate::source::secs_duration(f64::NAN), std::time::Duration::ZERO);
    }

    #[test]
    fn missing_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/affectd.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/affectd.toml") && e.contains("cannot read"), "{e}");
    }
}
