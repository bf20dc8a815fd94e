//! Command-line interface: argument parsing and the subcommands, as thin calls into the library.

use crate::app::cmdline;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::Manifest;
use crate::pipeline::{Pipeline, Summary};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `text` to stdout. A reader that stopped reading (`affectd models | head -1`) ends the
/// output quietly, exit status 0, like other Unix tools; `print!` would panic there.
fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::io("stdout", e)),
    }
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => { out(&format!("{}\n", format_args!($($arg)*))) };
}

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
    /// No progress bar and no summary (`--stats` figures are still printed).
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
            out(&report)?;
            Ok(0)
        }
        Command::Config { action: ConfigAction::Check { file } } => {
            let cfg = Config::load(&file)?;
            outln!(
                "# {}: valid. Effective configuration (defaults and environment applied):",
                file.display()
            )?;
            out(&cfg.to_toml())?;
            Ok(0)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> Result<i32> {
    let opts = crate::app::Analyze {
        recording: args.recording,
        audio: args.audio,
        channel: args.channel,
        out: args.out,
        config: args.config,
        interval: args.interval,
        fps: args.fps,
        device_id: args.device_id,
        mqtt: args.mqtt,
        spool: args.spool,
        report: args.report,
        report_thumbnails: args.report_thumbnails,
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let done = crate::app::analyze(&opts, |p| wait_with_progress(p, show_progress))?;
    // --quiet drops the summary line, not the figures --stats asks for.
    print_summary(&done.summary, !args.quiet, args.stats);
    if !args.quiet {
        if let Some((path, bytes)) = &done.report {
            eprintln!("affectd: report {} ({:.0} kB)", path.display(), *bytes as f64 / 1024.0);
        }
    }
    Ok(0)
}

fn daemon(config: &Path) -> Result<i32> {
    crate::app::daemon(config).map(|_| 0)
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

fn print_summary(s: &Summary, summary: bool, stats: bool) {
    if summary {
        print_summary_lines(s);
    }
    if stats {
        print_stats(s);
    }
}

fn print_summary_lines(s: &Summary) {
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
}

fn print_stats(s: &Summary) {
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
    eprintln!("{:<26} {:>9} {:>6} {:>9}", "stage thread", "busy", "busy%", "waiting");
    let wall = s.wall_seconds.max(1e-9);
    for (name, busy) in &s.stage_busy {
        eprintln!(
            "{:<26} {:>8.2}s {:>5.1}% {:>8.2}s",
            name,
            busy,
            100.0 * busy / wall,
            (s.wall_seconds - busy).max(0.0)
        );
    }
}

fn models(action: Option<ModelsAction>, config: Option<&Path>) -> Result<i32> {
    let dir = match config {
        Some(p) => Config::load(p)?.models.dir,
        None => Config::default().models.dir,
    };
    let manifest = Manifest::load(&dir)?;
    let checks = manifest.verify(&dir);
    outln!("{:<22} {:<40} {:>11}  sha256", "model", "file", "bytes")?;
    for v in &checks {
        outln!(
            "{:<22} {:<40} {:>11}  {}",
            v.entry.name,
            v.entry.file,
            v.actual_bytes.map(|b| b.to_string()).unwrap_or_else(|| "missing".into()),
            v.actual_sha256.as_deref().unwrap_or("-")
        )?;
    }
    if checks.is_empty() {
        outln!("(no models in {})", dir.join(crate::model::MANIFEST).display())?;
    }
    if matches!(action, Some(ModelsAction::Verify)) {
        let bad: Vec<_> = checks.iter().filter(|v| !v.ok()).collect();
        for v in &bad {
            eprintln!("error: model {}: {}", v.path.display(), v.problem());
        }
        if !bad.is_empty() {
            return Ok(1);
        }
        outln!("all {} model files match {}", checks.len(), dir.join(crate::model::MANIFEST).display())?;
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
