//! The two ways to run a session, as library calls: [`analyze`] a recording (what `affectd
//! analyze` does) and [`daemon`] (what `affectd run` does). Both build the same graph with
//! [`Topology::from_config`]; the command line ([`crate::cli`]) only parses arguments into these
//! options and prints what comes back.

use crate::channel::Overflow;
use crate::config::{AudioChannel, AudioSourceConfig, Config, VideoSourceConfig};
use crate::error::{Error, Result};
use crate::pipeline::{new_session_id, AudioFeed, Endpoints, Pipeline, Summary, Topology, VideoFeed};
use crate::{sink, source};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What to analyse and how (the options of `affectd analyze`).
#[derive(Debug, Clone, Default)]
pub struct Analyze {
    /// The recording (any container ffmpeg reads, a .y4m video, or a .wav).
    pub recording: PathBuf,
    /// Audio from this file instead of the recording's own track.
    pub audio: Option<PathBuf>,
    /// The customer's channel of a stereo recording (default: the config's, else the mix).
    pub channel: Option<AudioChannel>,
    /// JSON lines go here (default: standard output).
    pub out: Option<PathBuf>,
    /// Start from this config (defaults and environment otherwise).
    pub config: Option<PathBuf>,
    /// Interval length in seconds, overriding the config.
    pub interval: Option<f64>,
    /// Frames per second to analyse, overriding the config.
    pub fps: Option<f64>,
    /// Device id, overriding the config.
    pub device_id: Option<String>,
    /// Also publish to this MQTT broker and wait for every acknowledgement.
    pub mqtt: Option<String>,
    /// Spool folder for `mqtt` (default: a private temporary folder, removed once all is delivered).
    pub spool: Option<PathBuf>,
    /// Also write a self-contained HTML report here.
    pub report: Option<PathBuf>,
    /// Embed a keyframe at each alert in the report.
    pub report_thumbnails: bool,
}

/// What [`analyze`] did.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The session's figures.
    pub summary: Summary,
    /// The HTML report written, and its size in bytes.
    pub report: Option<(PathBuf, u64)>,
}

/// Where an invalid command-line value is reported from.
pub fn cmdline() -> PathBuf {
    PathBuf::from("<command line>")
}

/// The effective config of an `analyze` run: the file or the defaults (with the environment),
/// then the options; a replay never drops frames.
fn analyze_config(opts: &Analyze) -> Result<Config> {
    let mut cfg = match &opts.config {
        Some(p) => Config::load(p)?,
        None => {
            let mut c = Config::default();
            c.apply_env(&cmdline())?;
            c
        }
    };
    if let Some(i) = opts.interval {
        cfg.pipeline.interval_s = i;
    }
    if let Some(f) = opts.fps {
        cfg.pipeline.analysis_fps = f;
    }
    if let Some(d) = &opts.device_id {
        cfg.device_id = d.clone();
    }
    // A replay must not lose frames: the queue blocks instead of dropping.
    cfg.pipeline.video_overflow = Overflow::Block;
    Ok(cfg)
}

/// A private (0700) temporary spool folder with an unpredictable name, created here so that an
/// existing folder or a planted symlink is never used.
fn private_spool() -> Result<tempfile::TempDir> {
    let d = tempfile::Builder::new().prefix("affectd-spool-").tempdir().map_err(|e| {
        Error::sink(
            "mqtt",
            format!("cannot create a temporary spool folder in {}: {e}", std::env::temp_dir().display()),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(d.path(), e))?;
    }
    Ok(d)
}

/// Analyses a recording: builds the graph, starts it, hands the running pipeline to `watch`
/// (which waits for it, e.g. with a progress bar) and writes the report if asked.
pub fn analyze(opts: &Analyze, watch: impl FnOnce(Pipeline) -> Result<Summary>) -> Result<Analysis> {
    let mut cfg = analyze_config(opts)?;
    let mut temp_spool = None;
    if let Some(url) = &opts.mqtt {
        cfg.sink.mqtt.enabled = true;
        cfg.sink.mqtt.url = url.clone();
        cfg.sink.mqtt.flush_timeout_s = cfg.sink.mqtt.flush_timeout_s.max(30.0);
        cfg.sink.mqtt.spool_dir = match &opts.spool {
            Some(d) => d.clone(),
            None => {
                let d = private_spool()?;
                let path = d.path().to_path_buf();
                temp_spool = Some(d);
                path
            }
        };
    }
    cfg.validate(&cmdline())?;

    let info = source::inspect(&opts.recording)?;
    let audio_path = match &opts.audio {
        Some(p) => Some(p.clone()),
        None if info.has_audio => Some(opts.recording.clone()),
        None => None,
    };
    if !info.has_video && audio_path.is_none() {
        return Err(Error::input(&opts.recording, "has neither a video nor an audio stream"));
    }
    let video = if info.has_video {
        Some(VideoFeed {
            source: source::open_video(&opts.recording, cfg.pipeline.analysis_fps)?,
            realtime: false,
        })
    } else {
        None
    };
    let channel = opts.channel.unwrap_or(match &cfg.source.audio {
        AudioSourceConfig::File { channel, .. } => *channel,
        _ => AudioChannel::Mix,
    });
    let audio = match &audio_path {
        Some(p) => Some(AudioFeed { source: source::open_audio_channel(p, channel)?, realtime: false }),
        None => None,
    };
    let session_id = new_session_id();
    let mut sinks: Vec<Box<dyn sink::Sink>> = match &opts.out {
        Some(p) => vec![Box::new(sink::jsonl::JsonlSink::file(p, false, false)?)],
        None => vec![Box::new(sink::jsonl::JsonlSink::stdout())],
    };
    let collector = opts.report.as_ref().map(|_| crate::report::Collector::new());
    if let Some(c) = &collector {
        sinks.push(Box::new(c.clone()));
    }
    let mut first_seq = 0;
    if cfg.sink.mqtt.enabled {
        let mut m = sink::mqtt::MqttSink::start(&cfg.sink.mqtt, &cfg.device_id, &session_id, true)?;
        if temp_spool.is_some() {
            m = m.with_undelivered_hint(
                "they are kept in {dir}: run the same command with `--spool {dir}` to deliver them first",
            );
        }
        m.announce(sink::ha_discovery::messages(&cfg));
        first_seq = m.next_seq();
        sinks.push(Box::new(m));
    }
    let stop = Arc::new(AtomicBool::new(false));
    register_signals(&stop)?;
    let io = Endpoints { video, audio, sinks, first_seq, stop, health: source::Health::default() };
    let pipeline = Pipeline::start(Topology::from_config(&cfg, session_id, io)?)?;
    let summary = watch(pipeline);
    if let Some(d) = temp_spool {
        if summary.is_err() {
            // Undelivered messages stay (the error names the folder and how to send them).
            let _ = d.keep();
        }
        // Otherwise everything was acknowledged (flush fails if not): the folder goes.
    }
    let summary = summary?;
    let mut report = None;
    if let (Some(out), Some(c)) = (&opts.report, &collector) {
        if opts.report_thumbnails && !info.has_video {
            log::warn!("--report-thumbnails: {} has no video; no keyframes", opts.recording.display());
        }
        let thumbs = (opts.report_thumbnails && info.has_video).then_some(opts.recording.as_path());
        let threshold = Some(f64::from(cfg.fusion.incongruence_threshold));
        let source = opts.recording.display().to_string();
        let bytes = crate::report::write_report(&c.sessions(), &source, threshold, thumbs, out)?;
        report = Some((out.clone(), bytes as u64));
    }
    Ok(Analysis { summary, report })
}

/// Runs the daemon a config file describes until its sources end or a signal stops it.
pub fn daemon(config: &Path) -> Result<Summary> {
    let cfg = Config::load(config)?;
    if matches!(cfg.source.video, VideoSourceConfig::None)
        && matches!(cfg.source.audio, AudioSourceConfig::None)
    {
        return Err(Error::config(config, "key `source`: no source configured (allowed: source.video and/or source.audio with kind = \"file\", \"webcam\", \"pipe\" or \"mic\")"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    register_signals(&stop)?;
    let health = source::Health::default();
    let video = VideoFeed::from_config(&cfg, &stop, &health)?;
    let audio = AudioFeed::from_config(&cfg, &stop, &health)?;
    let session_id = new_session_id();
    let sink::Sinks { sinks, first_seq } = sink::from_config(&cfg, &session_id, false)?;
    if sinks.is_empty() {
        return Err(Error::config(
            config,
            "key `sink`: every sink is disabled, results would be lost (enable sink.stdout, sink.jsonl or sink.mqtt)",
        ));
    }
    log::info!("affectd {} starting as device `{}`", env!("CARGO_PKG_VERSION"), cfg.device_id);
    let io = Endpoints { video, audio, sinks, first_seq, stop: stop.clone(), health };
    let pipeline = Pipeline::start(Topology::from_config(&cfg, session_id, io)?)?;
    log::info!("running: models loaded, sources started");
    let summary = pipeline.wait()?;
    log::info!(
        "stopped ({}): {} intervals published, {} frames analysed, {} dropped",
        if stop.load(Ordering::SeqCst) { "signal" } else { "end of input" },
        summary.intervals,
        summary.frames,
        summary.frames_dropped
    );
    Ok(summary)
}

/// SIGINT/SIGTERM set `stop` (an orderly end); a second signal while shutting down exits at once
/// (code 130).
fn register_signals(stop: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| Error::stage("signals", format!("cannot install handler: {e}")))?;
    }
    Ok(())
}
