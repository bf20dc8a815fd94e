//! Command-line interface: argument parsing and the subcommands, as thin calls into the library.

use crate::config::{AudioSourceConfig, Config, VideoSourceConfig};
use crate::error::{Error, Result};
use crate::model::Manifest;
use crate::pipeline::{new_session_id, AudioFeed, Pipeline, Summary, Topology, VideoFeed};
use crate::{channel::Overflow, sink, source};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// affectd: on-device customer sentiment from face, voice and words.
#[derive(Debug, Parser)]
#[command(name = "affectd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a recorded call as fast as possible and write one JSON line per interval.
    Analyze(AnalyzeArgs),
    /// Run the daemon from a config file until SIGINT/SIGTERM (or the end of file sources).
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// List the model files with size and sha256; `verify` checks them against the manifest.
    Models {
        /// `verify`: exit non-zero unless every file matches the manifest.
        action: Option<ModelsAction>,
        /// Config whose `models.dir` to use (default: ./models).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Accuracy checks on labelled data.
    Eval {
        /// Which evaluation.
        #[command(subcommand)]
        what: EvalCommand,
        /// Config whose models to use (default: built-in defaults, ./models).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Turn a JSONL file of messages (`analyze --out`, the daemon's JSONL sink) into an HTML report.
    Report(ReportArgs),
    /// Configuration tools.
    Config {
        /// What to do with the config.
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// `affectd models` actions.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModelsAction {
    /// Check every model file against its manifest entry.
    Verify,
}

/// `affectd eval` commands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Word error rate of the speech stage on a folder of WAVs with transcripts.tsv.
    Asr {
        /// Folder with WAVs and transcripts.tsv (path, duration_s, reference_transcript, note).
        #[arg(long)]
        data: PathBuf,
    },
    /// Text sentiment accuracy on a CSV with columns text,label.
    Text {
        /// CSV file with header `text,label` (label: negative, neutral, positive).
        #[arg(long)]
        data: PathBuf,
    },
    /// Fused sentiment and incongruence on a pairs file (faces,text,wav,label,incongruent).
    Fusion {
        /// CSV with header `faces,text,wav,label,incongruent` (docs/fusion.md).
        #[arg(long)]
        pairs: PathBuf,
        /// Also print the baselines: the head fed one modality only, early and late fusion.
        #[arg(long)]
        per_modality: bool,
        /// Write each row's stage outputs as JSON lines here (training input; needs no fusion model).
        #[arg(long)]
        dump_features: Option<PathBuf>,
        /// Pooled encoder features of the `wav` recordings from `eval voice --dump-features`
        /// (skips whisper for them; the voice head still runs).
        #[arg(long)]
        voice_features: Option<PathBuf>,
    },
    /// Write a deterministic pseudo-paired fusion set from the shared data (docs/fusion.md).
    MakePairs {
        /// The shared data folder (default: $AFFECTD_DATA, else ../shared/data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Which split of the data sets to draw from.
        #[arg(long, value_enum)]
        split: crate::eval::pairs::Split,
        /// Number of pairs.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
    },
    /// Fused sentiment and false flags of the full `analyze` path on labelled recordings.
    Recordings {
        /// CSV with `path` (relative to the CSV's folder) and `label`/`sentiment`/`emotion`
        /// (optional `incongruent`), e.g. `$AFFECTD_DATA/grid-av/labels.csv`.
        #[arg(long)]
        labels: PathBuf,
        /// Interval length passed to `analyze` (`5s`, `1s`, …).
        #[arg(long, value_parser = parse_duration)]
        interval: Option<f64>,
    },
    /// Voice emotion accuracy on a folder of audio files with labels.csv (path, emotion[, actor]).
    Voice {
        /// Folder with labels.csv and the audio files it names (FLAC, WAV, ...).
        #[arg(long)]
        data: PathBuf,
        /// Score only these actors (`actor` column), e.g. `21-24` or `1,2,5`.
        #[arg(long)]
        actors: Option<String>,
        /// Write each file's pooled encoder features as JSON lines here (tools/voice/train.py input).
        #[arg(long)]
        dump_features: Option<PathBuf>,
    },
    /// Facial expression accuracy on a folder of class sub-folders of face images.
    Expression {
        /// Folder with one sub-folder per class (angry, disgust, fear, happy, neutral, sad, surprise).
        #[arg(long)]
        data: PathBuf,
        /// FER+ vote file (`row,usage,neutral,…,NF`, as in `ferplus/labels.csv`): score against the
        /// FER+ strict-majority label of each image (file stem = FER2013 row) instead of its folder.
        #[arg(long)]
        ferplus: Option<PathBuf>,
    },
}

/// `affectd config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate a config file and print the effective configuration.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

/// Arguments of `affectd analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// The recording: any container ffmpeg reads (mp4, mkv, webm, mpg), a .y4m video, or a .wav.
    pub recording: PathBuf,
    /// Take the audio from this file instead of the recording's own audio track.
    #[arg(long)]
    pub audio: Option<PathBuf>,
    /// The customer's channel of a stereo recording (`left`, `right`; default `mix`, or the
    /// config's `source.audio.channel`): only that channel is decoded and analysed.
    #[arg(long, value_enum)]
    pub channel: Option<crate::config::AudioChannel>,
    /// Interval length (`5s`, `2.5s`, `500ms`, `1m`).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<f64>,
    /// Write the JSON lines here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Start from this config (defaults otherwise); flags override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Frames per second to analyse.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Device id written into the messages.
    #[arg(long)]
    pub device_id: Option<String>,
    /// Also publish every interval to this MQTT broker (`mqtt://host:port`, or `mqtts://…` with
    /// `--config` giving the TLS files) and wait for every PUBACK before exiting.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Spool folder for `--mqtt` (default: a temporary folder, removed once everything is delivered).
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Print per-channel figures (depth, latency, drops) at the end.
    #[arg(long)]
    pub stats: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write a self-contained HTML report of the call here (docs/report.md).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Embed a keyframe of the recording at each alert in the report (off by default: faces are
    /// personal data).
    #[arg(long, requires = "report")]
    pub report_thumbnails: bool,
}

/// Arguments of `affectd report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The JSONL file of interval (and alert) messages.
    pub input: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Incongruence threshold to draw (default: the one the alerts carry, else the built-in 0.5).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Embed a keyframe at each alert, cut from this recording (the one the messages came from).
    #[arg(long)]
    pub thumbnails_from: Option<PathBuf>,
}

/// Parses `5s`, `2.5s`, `500ms`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<f64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (allowed: e.g. 5s, 2.5s, 500ms, 1m)"))?;
    let secs = v * scale;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(secs)
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Analyze(args) => analyze(args),
        Command::Run { config } => daemon(&config),
        Command::Report(args) => report(args),
        Command::Models { action, config } => models(action, config.as_deref()),
        Command::Eval { what, config } => {
            let cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            let report = match what {
                EvalCommand::Expression { data, ferplus } => {
                    crate::eval::expression::run(&data, ferplus.as_deref(), &cfg)?
                }
                EvalCommand::Recordings { labels, interval } => {
                    crate::eval::recordings::run(&labels, interval, config.as_deref())?
                }
                EvalCommand::Asr { data } => crate::eval::asr::run(&data, &cfg)?,
                EvalCommand::Text { data } => crate::eval::text::run(&data, &cfg)?,
                EvalCommand::Voice { data, actors, dump_features } => {
                    crate::eval::voice::run(&data, actors.as_deref(), dump_features.as_deref(), &cfg)?
                }
                EvalCommand::Fusion { pairs, per_modality, dump_features, voice_features } => {
                    crate::eval::fusion::run(
                        &pairs,
                        &cfg,
                        per_modality,
                        dump_features.as_deref(),
                        voice_features.as_deref(),
                    )?
                }
                EvalCommand::MakePairs { data, split, n, seed, out } => {
                    let data = data
                        .or_else(|| std::env::var_os("AFFECTD_DATA").map(PathBuf::from))
                        .unwrap_or_else(|| PathBuf::from("../shared/data"));
                    let pairs = crate::eval::pairs::generate(&data, split, n, seed)?;
                    crate::eval::pairs::write_csv(&pairs, &out)?;
                    let inc = pairs.iter().filter(|p| p.incongruent).count();
                    let mut counts = [0usize; 3];
                    for p in &pairs {
                        counts[p.label] += 1;
                    }
                    format!(
                        "wrote {} pairs to {} (negative {}, neutral {}, positive {}; incongruent {})\n",
                        pairs.len(),
                        out.display(),
                        counts[0],
                        counts[1],
                        counts[2],
                        inc
                    )
                }
            };
            print!("{report}");
            Ok(0)
        }
        Command::Config { action: ConfigAction::Check { file } } => {
            let cfg = Config::load(&file)?;
            println!(
                "# {}: valid. Effective configuration (defaults and environment applied):",
                file.display()
            );
            print!("{}", cfg.to_toml());
            Ok(0)
        }
    }
}

/// The stage graph a config asks for, with the model stages loaded (before any thread starts).
fn topology(
    cfg: &Config,
    session_id: String,
    first_seq: u64,
    video: Option<VideoFeed>,
    audio: Option<AudioFeed>,
    sinks: Vec<Box<dyn sink::Sink>>,
    stop: Arc<AtomicBool>,
) -> Result<Topology> {
    let vision = vision_stage(cfg, video.is_some())?;
    let speech = speech_stages(cfg, audio.is_some())?;
    let labels = vision.as_ref().map(|v| v.labels()).filter(|l| !l.is_empty());
    let has_text = speech.as_ref().is_some_and(|s| s.text.is_some());
    Ok(Topology {
        config: cfg.pipeline.clone(),
        device_id: cfg.device_id.clone(),
        session_id,
        first_seq,
        fusion: fusion_stage(cfg, labels.as_deref(), has_text)?,
        vision,
        speech,
        video,
        audio,
        sinks,
        stop,
        health: source::Health::default(),
    })
}

/// The fusion head, when enabled and some model stage (faces or words) feeds it.
fn fusion_stage(
    cfg: &Config,
    face_labels: Option<&[String]>,
    has_text: bool,
) -> Result<Option<crate::fusion::stage::FusionStage>> {
    use crate::fusion::{head, stage};
    if !cfg.fusion.enabled || (face_labels.is_none() && !has_text) {
        return Ok(None);
    }
    let (path, entry) = crate::model::locate(&cfg.models.dir, head::HEAD, cfg.models.verify)?;
    let version = format!("{}@{}", entry.file, &entry.sha256[..12.min(entry.sha256.len())]);
    let h = head::FusionHead::load(&path, &entry, face_labels)?;
    Ok(Some(stage::FusionStage::new(h, version, &cfg.fusion)))
}

/// The speech stages a config asks for (models loaded here, before any thread starts).
fn speech_stages(cfg: &Config, has_audio: bool) -> Result<Option<crate::pipeline::SpeechStages>> {
    use crate::audio::{asr, vad};
    if !has_audio || !cfg.speech.enabled {
        return Ok(None);
    }
    let sp = &cfg.speech;
    let (path, _) = crate::model::locate(&cfg.models.dir, "asr", cfg.models.verify)?;
    let asr = asr::Asr::load(
        &path,
        asr::AsrParams {
            threads: sp.asr_threads,
            no_speech_max: sp.no_speech_max,
            encoder_features: sp.voice,
        },
    )?;
    let voice = if sp.voice {
        Some(crate::audio::voice::VoiceHead::load_from(&cfg.models.dir, cfg.models.verify)?)
    } else {
        None
    };
    let vad = vad::Vad::new(vad::VadParams {
        min_speech_s: sp.min_speech_s,
        min_silence_s: sp.min_silence_s,
        max_utterance_s: sp.max_utterance_s,
        ..Default::default()
    });
    let text = if cfg.text.enabled { Some(crate::text::TextModel::load(&cfg.models)?) } else { None };
    Ok(Some(crate::pipeline::SpeechStages {
        vad,
        asr,
        text,
        voice,
        publish_transcripts: cfg.privacy.publish_transcripts,
    }))
}

/// The vision stage a config asks for (models loaded and checked here, before any thread starts).
fn vision_stage(cfg: &Config, has_video: bool) -> Result<Option<crate::vision::VisionStage>> {
    use crate::vision::{VisionModels, VisionStage};
    Ok(match (has_video, cfg.vision.enabled) {
        (false, _) => None,
        (true, false) => Some(VisionStage::new()),
        (true, true) => Some(VisionStage::with_models(VisionModels::load(&cfg.models, &cfg.vision)?)),
    })
}

fn cmdline() -> PathBuf {
    PathBuf::from("<command line>")
}

fn analyze(args: AnalyzeArgs) -> Result<i32> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => {
            let mut c = Config::default();
            c.apply_env(&cmdline())?;
            c
        }
    };
    if let Some(i) = args.interval {
        cfg.pipeline.interval_s = i;
    }
    if let Some(f) = args.fps {
        cfg.pipeline.analysis_fps = f;
    }
    if let Some(d) = &args.device_id {
        cfg.device_id = d.clone();
    }
    // A replay must not lose frames: the queue blocks instead of dropping.
    cfg.pipeline.video_overflow = Overflow::Block;
    let mut temp_spool = None;
    if let Some(url) = &args.mqtt {
        cfg.sink.mqtt.enabled = true;
        cfg.sink.mqtt.url = url.clone();
        cfg.sink.mqtt.flush_timeout_s = cfg.sink.mqtt.flush_timeout_s.max(30.0);
        cfg.sink.mqtt.spool_dir = match &args.spool {
            Some(d) => d.clone(),
            None => {
                // Private (0700) with an unpredictable name, created here so that an existing
                // folder or a planted symlink is never used.
                let d = tempfile::Builder::new().prefix("affectd-spool-").tempdir().map_err(|e| {
                    Error::sink(
                        "mqtt",
                        format!(
                            "cannot create a temporary spool folder in {}: {e}",
                            std::env::temp_dir().display()
                        ),
                    )
                })?;
                let path = d.path().to_path_buf();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| Error::io(&path, e))?;
                }
                temp_spool = Some(d);
                path
            }
        };
    }
    cfg.validate(&cmdline())?;

    let info = source::inspect(&args.recording)?;
    let audio_path = match &args.audio {
        Some(p) => Some(p.clone()),
        None if info.has_audio => Some(args.recording.clone()),
        None => None,
    };
    if !info.has_video && audio_path.is_none() {
        return Err(Error::input(&args.recording, "has neither a video nor an audio stream"));
    }
    let video = if info.has_video {
        Some(VideoFeed {
            source: source::open_video(&args.recording, cfg.pipeline.analysis_fps)?,
            realtime: false,
        })
    } else {
        None
    };
    let channel = args.channel.unwrap_or(match &cfg.source.audio {
        AudioSourceConfig::File { channel, .. } => *channel,
        _ => crate::config::AudioChannel::Mix,
    });
    let audio = match &audio_path {
        Some(p) => Some(AudioFeed { source: source::open_audio_channel(p, channel)?, realtime: false }),
        None => None,
    };
    let session_id = new_session_id();
    let mut sinks: Vec<Box<dyn sink::Sink>> = match &args.out {
        Some(p) => vec![Box::new(sink::jsonl::JsonlSink::file(p, false, false)?)],
        None => vec![Box::new(sink::jsonl::JsonlSink::stdout())],
    };
    let collector = args.report.as_ref().map(|_| crate::report::Collector::new());
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
    let topo = topology(&cfg, session_id, first_seq, video, audio, sinks, stop)?;
    let pipeline = Pipeline::start(topo)?;
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let summary = wait_with_progress(pipeline, show_progress);
    if let Some(d) = temp_spool {
        if summary.is_err() {
            // Undelivered messages stay (the error names the folder and how to send them).
            let _ = d.keep();
        }
        // Otherwise everything was acknowledged (flush fails if not): the folder goes.
    }
    let summary = summary?;
    if !args.quiet {
        print_summary(&summary, args.stats);
    }
    if let (Some(out), Some(c)) = (&args.report, &collector) {
        if args.report_thumbnails && !info.has_video {
            log::warn!("--report-thumbnails: {} has no video; no keyframes", args.recording.display());
        }
        let thumbs = (args.report_thumbnails && info.has_video).then_some(args.recording.as_path());
        let threshold = Some(f64::from(cfg.fusion.incongruence_threshold));
        let source = args.recording.display().to_string();
        let bytes = crate::report::write_report(&c.sessions(), &source, threshold, thumbs, out)?;
        if !args.quiet {
            eprintln!("affectd: report {} ({:.0} kB)", out.display(), bytes as f64 / 1024.0);
        }
    }
    Ok(0)
}

fn report(args: ReportArgs) -> Result<i32> {
    if let Some(t) = args.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::config(cmdline(), format!("--threshold {t}: allowed: 0 to 1")));
        }
    }
    let sessions = crate::report::read_jsonl(&args.input)?;
    let from_alerts = sessions.iter().find_map(|s| s.alerts.first()).map(|a| a.threshold);
    let default = f64::from(Config::default().fusion.incongruence_threshold);
    let threshold = args.threshold.or(from_alerts).unwrap_or(default);
    let source = args.input.display().to_string();
    let bytes = crate::report::write_report(
        &sessions,
        &source,
        Some(threshold),
        args.thumbnails_from.as_deref(),
        &args.out,
    )?;
    eprintln!(
        "affectd: report {} ({:.0} kB, {} session(s), {} intervals)",
        args.out.display(),
        bytes as f64 / 1024.0,
        sessions.len(),
        sessions.iter().map(|s| s.intervals.len()).sum::<usize>()
    );
    Ok(0)
}

fn wait_with_progress(pipeline: Pipeline, show: bool) -> Result<Summary> {
    if !show {
        return pipeline.wait();
    }
    let bar = match pipeline.duration() {
        Some(d) => {
            let b = indicatif::ProgressBar::new((d * 1000.0) as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        }
        None => indicatif::ProgressBar::new_spinner(),
    };
    while !pipeline.is_finished() {
        let p = pipeline.progress();
        bar.set_position((p * 1000.0) as u64);
        bar.set_message(format!("{p:.1} s of media"));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
    pipeline.wait()
}

fn print_summary(s: &Summary, stats: bool) {
    let speed = if s.wall_seconds > 0.0 { s.media_seconds / s.wall_seconds } else { 0.0 };
    eprintln!(
        "affectd: {} intervals, {} frames analysed ({} dropped), {:.1} s audio, {} utterances, {:.1} s media in {:.2} s ({:.1}x real time), session {}",
        s.intervals, s.frames, s.frames_dropped, s.audio_seconds, s.utterances, s.media_seconds, s.wall_seconds, speed, s.session_id
    );
    if s.late_observations > 0 {
        eprintln!(
            "affectd: warning: {} observations arrived after their interval was published",
            s.late_observations
        );
    }
    let f = &s.faults;
    if f.frames_failed + f.utterances_failed + f.sink_failures > 0 {
        eprintln!(
            "affectd: warning: skipped {} frames and {} utterances that could not be analysed; {} messages not written",
            f.frames_failed, f.utterances_failed, f.sink_failures
        );
    }
    if stats {
        eprintln!(
            "{:<26} {:>5} {:>8} {:>8} {:>7} {:>10} {:>10}",
            "channel", "cap", "sent", "recv", "dropped", "lat_mean", "lat_max"
        );
        for c in &s.channels {
            eprintln!(
                "{:<26} {:>5} {:>8} {:>8} {:>7} {:>8.3}ms {:>8.3}ms",
                c.name, c.capacity, c.sent, c.received, c.dropped, c.latency_mean_ms, c.latency_max_ms
            );
        }
    }
}

fn register_signals(stop: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // A second signal while shutting down exits at once (code 130).
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| Error::stage("signals", format!("cannot install handler: {e}")))?;
    }
    Ok(())
}

/// Opens the video source a config names (`stop` ends live sources, `health` hears of lost devices).
fn open_video_source(
    cfg: &Config,
    stop: &Arc<AtomicBool>,
    health: &source::Health,
) -> Result<Option<VideoFeed>> {
    Ok(match &cfg.source.video {
        VideoSourceConfig::None => None,
        VideoSourceConfig::File { path, realtime } => Some(VideoFeed {
            source: source::open_video(path, cfg.pipeline.analysis_fps)?,
            realtime: *realtime,
        }),
        VideoSourceConfig::Webcam { device, width, height, fps, format, reconnect_max_s } => {
            let spec = source::webcam::WebcamSpec {
                device: device.clone(),
                width: *width,
                height: *height,
                fps: *fps,
                format: *format,
                reconnect_max_s: *reconnect_max_s,
            };
            let cam = source::webcam::Webcam::open(spec, stop.clone(), health.clone())?;
            Some(VideoFeed { source: Box::new(cam), realtime: false })
        }
        VideoSourceConfig::Pipe { command, width, height, fps, pixel_format } => {
            let spec = source::pipe::PipeSpec {
                command: command.clone(),
                width: *width,
                height: *height,
                fps: *fps,
                pixel_format: *pixel_format,
            };
            Some(VideoFeed {
                source: Box::new(source::pipe::PipeVideo::spawn(spec, stop.clone())?),
                realtime: false,
            })
        }
    })
}

/// Opens the audio source a config names.
fn open_audio_source(
    cfg: &Config,
    stop: &Arc<AtomicBool>,
    health: &source::Health,
) -> Result<Option<AudioFeed>> {
    Ok(match &cfg.source.audio {
        AudioSourceConfig::None => None,
        AudioSourceConfig::File { path, realtime, channel } => {
            Some(AudioFeed { source: source::open_audio_channel(path, *channel)?, realtime: *realtime })
        }
        AudioSourceConfig::Mic { device, sample_rate, restart_max_s } => {
            let spec = source::mic::MicSpec {
                device: device.clone(),
                sample_rate: *sample_rate,
                restart_max_s: *restart_max_s,
            };
            Some(AudioFeed {
                source: Box::new(source::mic::Mic::open(spec, stop.clone(), health.clone())?),
                realtime: false,
            })
        }
    })
}

fn daemon(config: &Path) -> Result<i32> {
    let cfg = Config::load(config)?;
    if matches!(cfg.source.video, VideoSourceConfig::None)
        && matches!(cfg.source.audio, AudioSourceConfig::None)
    {
        return Err(Error::config(config, "key `source`: no source configured (allowed: source.video and/or source.audio with kind = \"file\", \"webcam\", \"pipe\" or \"mic\")"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    register_signals(&stop)?;
    let health = source::Health::default();
    let video = open_video_source(&cfg, &stop, &health)?;
    let audio = open_audio_source(&cfg, &stop, &health)?;
    let session_id = new_session_id();
    let sink::Sinks { sinks, first_seq } = sink::from_config(&cfg, &session_id, false)?;
    if sinks.is_empty() {
        return Err(Error::config(
            config,
            "key `sink`: every sink is disabled, results would be lost (enable sink.stdout, sink.jsonl or sink.mqtt)",
        ));
    }
    log::info!("affectd {} starting as device `{}`", env!("CARGO_PKG_VERSION"), cfg.device_id);
    let mut topo = topology(&cfg, session_id, first_seq, video, audio, sinks, stop.clone())?;
    topo.health = health;
    let pipeline = Pipeline::start(topo)?;
    log::info!("running: models loaded, sources started");
    let summary = pipeline.wait()?;
    log::info!(
        "stopped ({}): {} intervals published, {} frames analysed, {} dropped",
        if stop.load(Ordering::SeqCst) { "signal" } else { "end of input" },
        summary.intervals,
        summary.frames,
        summary.frames_dropped
    );
    Ok(0)
}

fn models(action: Option<ModelsAction>, config: Option<&Path>) -> Result<i32> {
    let dir = match config {
        Some(p) => Config::load(p)?.models.dir,
        None => Config::default().models.dir,
    };
    let manifest = Manifest::load(&dir)?;
    let checks = manifest.verify(&dir);
    println!("{:<22} {:<40} {:>11}  sha256", "model", "file", "bytes");
    for v in &checks {
        println!(
            "{:<22} {:<40} {:>11}  {}",
            v.entry.name,
            v.entry.file,
            v.actual_bytes.map(|b| b.to_string()).unwrap_or_else(|| "missing".into()),
            v.actual_sha256.as_deref().unwrap_or("-")
        );
    }
    if checks.is_empty() {
        println!("(no models in {})", dir.join(crate::model::MANIFEST).display());
    }
    if matches!(action, Some(ModelsAction::Verify)) {
        let bad: Vec<_> = checks.iter().filter(|v| !v.ok()).collect();
        for v in &bad {
            eprintln!("error: model {}: {}", v.path.display(), v.problem());
        }
        if !bad.is_empty() {
            return Ok(1);
        }
        println!("all {} model files match {}", checks.len(), dir.join(crate::model::MANIFEST).display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(5.0));
        assert_eq!(parse_duration("2.5s"), Ok(2.5));
        assert_eq!(parse_duration("500ms"), Ok(0.5));
        assert_eq!(parse_duration("1m"), Ok(60.0));
        assert_eq!(parse_duration("7"), Ok(7.0));
        assert!(parse_duration("five").unwrap_err().contains("allowed"));
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
