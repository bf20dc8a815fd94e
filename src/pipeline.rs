//! The stage graph — read this first.
//!
//! ```text
//!  video source ─Frame─► vision ──────────────────────────┐             (one thread per box,
//!   (file/webcam/pipe)   (detect|track, mesh, expression)  │              bounded measured channels)
//!                                                          ├─Envelope─► interval window ─Output─► sinks
//!  audio source ─AudioChunk─► audio ─┬────────────────────┤            (fusion/window.rs:       (jsonl, stdout,
//!   (file/mic)              (level, VAD)                   │             tokens → attention head   mqtt + spool)
//!                                    └─► asr ─► text ──────┘             → sentiment, incongruence,
//!                                     (Whisper) (MiniLM + head)            debounced alert)
//! ```
//!
//! * Sources stamp media time and sequence numbers; the frame queue may drop the oldest frame
//!   under load (`pipeline.video_overflow`), every other queue blocks, so audio, observations and
//!   reports are never dropped.
//! * Each branch ends its stream with [`Event::End`]; the window publishes an interval once every
//!   branch's watermark has passed its end, and the rest when all have ended.
//! * Shutdown: setting the stop flag (SIGINT/SIGTERM) makes the sources end their streams; every
//!   stage drains its input and closes its output, the sinks flush, and [`Pipeline::wait`] returns.

use crate::audio::LevelStage;
use crate::channel::{self, ChannelSnapshot, ChannelStats, MeteredReceiver, MeteredSender, Overflow};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::fusion::window::{IntervalWindow, ProducerKind, SessionInfo};
use crate::message::{
    rfc3339, AudioChunk, Envelope, Event, Frame, MetricsReport, Observation, Output, StatusMessage,
    AUDIO_RATE, METRICS_SCHEMA, STATUS_SCHEMA,
};
use crate::sink::Sink;
use crate::source::{AudioSource, FrameSampler, VideoSource};
use crate::vision::VisionStage;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Audio is cut into chunks of this many samples (100 ms) before the audio stage.
pub const AUDIO_CHUNK: usize = (AUDIO_RATE / 10) as usize;

/// The speech branch: voice activity detection, transcription and (optionally) text sentiment.
pub struct SpeechStages {
    /// Voice activity detector, fed by the audio stage.
    pub vad: crate::audio::vad::Vad,
    /// Whisper, in its own thread.
    pub asr: crate::audio::asr::Asr,
    /// Sentence encoder + sentiment head, in its own thread; `None` = transcripts only.
    pub text: Option<crate::text::TextModel>,
    /// Voice-emotion head on the ASR encoder output, run in the ASR thread (the `asr` must have
    /// `encoder_features` on); `None` = no voice stage.
    pub voice: Option<crate::audio::voice::VoiceHead>,
    /// Publish redacted transcripts in interval messages.
    pub publish_transcripts: bool,
}

impl SpeechStages {
    /// Model name → version of the speech and text models.
    pub fn versions(&self) -> std::collections::BTreeMap<String, String> {
        let mut v = self.text.as_ref().map(|t| t.versions()).unwrap_or_default();
        v.insert("asr".into(), self.asr.version());
        if let Some(h) = &self.voice {
            let file = h.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            v.insert("voice".into(), file);
        }
        v
    }
}

/// What flows from the audio stage to the ASR thread.
enum SpeechMsg {
    Segment(crate::audio::vad::SpeechSegment),
    Watermark(f64),
    End(f64),
}

/// What flows from the ASR thread to the text thread.
enum UtteranceMsg {
    Utterance(crate::audio::asr::Transcript, Option<crate::message::VoiceObs>),
    Watermark(f64),
    End(f64),
}

/// A video source and how to pace it.
pub struct VideoInput {
    /// The source.
    pub source: Box<dyn VideoSource>,
    /// Deliver frames at wall-clock speed (live-like) instead of as fast as possible.
    pub realtime: bool,
}

/// An audio source and how to pace it.
pub struct AudioInput {
    /// The source.
    pub source: Box<dyn AudioSource>,
    /// Deliver audio at wall-clock speed instead of as fast as possible.
    pub realtime: bool,
}

/// Everything the graph is built from.
pub struct Topology {
    /// Queue sizes, interval length, frame rate.
    pub config: PipelineConfig,
    /// Device id for the messages.
    pub device_id: String,
    /// Session id for the messages (a UUID per run; see [`new_session_id`]).
    pub session_id: String,
    /// `seq` of the first interval.
    pub first_seq: u64,
    /// Video branch, if any.
    pub video: Option<VideoInput>,
    /// The vision stage for the video branch (with or without models); `None` = frame statistics only.
    pub vision: Option<VisionStage>,
    /// Audio branch, if any.
    pub audio: Option<AudioInput>,
    /// Speech stages on the audio branch; `None` = audio level only.
    pub speech: Option<SpeechStages>,
    /// The fusion head applied to every interval; `None` = no fused sentiment.
    pub fusion: Option<crate::fusion::stage::FusionStage>,
    /// Where messages go.
    pub sinks: Vec<Box<dyn Sink>>,
    /// Set to end the session gracefully (signal handler, caller).
    pub stop: Arc<AtomicBool>,
    /// Health of the live sources; a change is published as a `degraded`/`online` status message.
    pub health: crate::source::Health,
}

#[derive(Debug, Default)]
struct Counters {
    intervals: AtomicU64,
    frames: AtomicU64,
    audio_samples: AtomicU64,
    utterances: AtomicU64,
    late: AtomicU64,
    forced: AtomicU64,
    progress_bits: AtomicU64,
    frames_failed: AtomicU64,
    utterances_failed: AtomicU64,
    stage_panics: AtomicU64,
    sink_failures: AtomicU64,
}

impl Counters {
    fn faults(&self, mic: Option<&crate::source::mic::MicStats>) -> crate::message::FaultCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::message::FaultCounts {
            frames_failed: r(&self.frames_failed),
            utterances_failed: r(&self.utterances_failed),
            stage_panics: r(&self.stage_panics),
            late_observations: r(&self.late),
            intervals_forced: r(&self.forced),
            mic_overruns: mic.map_or(0, |m| m.overruns()),
            mic_gap_s: mic.map_or(0.0, |m| m.gap_seconds()),
            sink_failures: r(&self.sink_failures),
        }
    }
}

/// What every stage thread shares to report a fault: the stop flag (an orderly end), the health
/// published as status, and the counters published in metrics.
#[derive(Clone)]
struct Supervisor {
    stop: Arc<AtomicBool>,
    health: crate::source::Health,
    counters: Arc<Counters>,
}

/// Logs a per-item failure at most once a second per stage (the counter has them all), and
/// marks the stage degraded until it succeeds again.
struct ItemErrors {
    stage: &'static str,
    last_log: Option<Instant>,
    failing: bool,
}

impl ItemErrors {
    fn new(stage: &'static str) -> Self {
        ItemErrors { stage, last_log: None, failing: false }
    }

    fn failed(&mut self, sup: &Supervisor, counter: &AtomicU64, what: &str, e: &Error) {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            log::warn!("stage {}: {what} skipped ({n} so far): {e}", self.stage);
            self.last_log = Some(Instant::now());
        }
        sup.health.degrade(&format!("stage {}", self.stage), &format!("{what} skipped ({n} so far): {e}"));
        self.failing = true;
    }

    fn ok(&mut self, sup: &Supervisor) {
        if self.failing {
            sup.health.recover(&format!("stage {}", self.stage));
            self.failing = false;
        }
    }
}

/// A fresh session id (UUID v4).
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A running pipeline.
pub struct Pipeline {
    threads: Vec<(String, JoinHandle<Result<()>>)>,
    channels: Vec<Arc<ChannelStats>>,
    counters: Arc<Counters>,
    started: Instant,
    duration: Option<f64>,
    session_id: String,
    mic: Option<Arc<crate::source::mic::MicStats>>,
}

/// What a finished session did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The session's id.
    pub session_id: String,
    /// Interval messages published.
    pub intervals: u64,
    /// Frames analysed.
    pub frames: u64,
    /// Frames dropped under load.
    pub frames_dropped: u64,
    /// Seconds of audio analysed.
    pub audio_seconds: f64,
    /// Utterances transcribed.
    pub utterances: u64,
    /// Media time covered.
    pub media_seconds: f64,
    /// Wall-clock seconds the session took.
    pub wall_seconds: f64,
    /// Observations that arrived after their interval was published (should be 0).
    pub late_observations: u64,
    /// Everything skipped, dropped or recovered from.
    pub faults: crate::message::FaultCounts,
    /// Final channel figures.
    pub channels: Vec<ChannelSnapshot>,
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Starts a stage thread under supervision: an error or a panic sets the stop flag (the session
/// ends in order: sources stop, the rest drains, completed intervals are published); a panic is
/// also counted, published as `degraded` with the stage and reason, and `on_panic` closes the
/// stage's output stream (sends its end marker), so no consumer waits for it forever.
fn spawn<F, G>(name: &str, sup: &Supervisor, on_panic: G, f: F) -> Result<(String, JoinHandle<Result<()>>)>
where
    F: FnOnce() -> Result<()> + Send + 'static,
    G: FnOnce() + Send + 'static,
{
    let (sup, stage) = (sup.clone(), name.to_string());
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(payload) => {
                    let msg = crate::secrets::redact(&panic_message(&*payload)).into_owned();
                    sup.counters.stage_panics.fetch_add(1, Ordering::Relaxed);
                    log::error!("stage {stage} panicked: {msg}; ending the session in order");
                    sup.health.degrade(&format!("stage {stage}"), &format!("panicked: {msg}"));
                    on_panic();
                    Err(Error::stage(&stage, format!("panicked: {msg}")))
                }
            };
            if r.is_err() {
                sup.stop.store(true, Ordering::SeqCst);
            }
            r
        })
        .map_err(|e| Error::stage(name, format!("cannot spawn thread: {e}")))?;
    Ok((name.to_string(), handle))
}

/// A fault to inject (tests only).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Panic,
    Error,
}

/// The fault-injection hook for the fault tests: `AFFECTD_FAULT=<stage>:<n>:<panic|error>` makes
/// `stage` (vision, asr or text) panic, or fail on, its n-th item. Read once per stage at start;
/// never set in production.
struct FaultHook(Option<(u64, Fault)>);

impl FaultHook {
    fn for_stage(stage: &str) -> Self {
        let spec = std::env::var("AFFECTD_FAULT").unwrap_or_default();
        let mut it = spec.split(':');
        let parsed = match (it.next(), it.next().and_then(|n| n.parse().ok()), it.next()) {
            (Some(s), Some(n), Some("panic")) if s == stage => Some((n, Fault::Panic)),
            (Some(s), Some(n), Some("error")) if s == stage => Some((n, Fault::Error)),
            _ => None,
        };
        FaultHook(parsed)
    }

    /// Panics at item `n` when asked to; returns an injected error for item `n` when asked to.
    fn check(&self, stage: &str, n: u64) -> Result<()> {
        match self.0 {
            Some((k, Fault::Panic)) if k == n => panic!("fault injection: {stage} panics at item {n}"),
            Some((k, Fault::Error)) if k == n => {
                Err(Error::stage(stage, format!("fault injection: item {n} fails")))
            }
            _ => Ok(()),
        }
    }
}

/// Sleeps until media time `t` is due on the wall clock; false if stopped meanwhile.
fn pace(started: Instant, t: f64, stop: &AtomicBool) -> bool {
    let due = started + crate::source::secs_duration(t);
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

fn rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Pipeline {
    /// Builds the graph and starts every thread.
    pub fn start(topo: Topology) -> Result<Pipeline> {
        let Topology {
            config: cfg,
            device_id,
            session_id,
            first_seq,
            video,
            vision,
            audio,
            speech,
            fusion,
            sinks,
            stop,
            health,
        } = topo;
        if video.is_none() && audio.is_none() {
            return Err(Error::stage("pipeline", "no source: configure a video and/or an audio source"));
        }
        let started = Instant::now();
        let session = SessionInfo {
            device_id: device_id.clone(),
            session_id,
            first_seq,
            wall_start: SystemTime::now(),
            models: {
                let mut m = vision.as_ref().map(|v| v.versions()).unwrap_or_default();
                m.extend(speech.as_ref().map(|s| s.versions()).unwrap_or_default());
                m
            },
            face_labels: vision.as_ref().map(|v| v.labels()).filter(|l| !l.is_empty()),
            publish_transcripts: speech.as_ref().is_some_and(|s| s.publish_transcripts),
            voice: speech.as_ref().is_some_and(|s| s.voice.is_some()),
        };
        let duration = [
            video.as_ref().and_then(|v| v.source.duration()),
            audio.as_ref().and_then(|a| a.source.duration()),
        ]
        .into_iter()
        .flatten()
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d))));
        let counters = Arc::new(Counters::default());
        let sup = Supervisor { stop: stop.clone(), health: health.clone(), counters: counters.clone() };
        let mic = audio.as_ref().and_then(|a| a.source.mic_counters());
        let mic2 = mic.clone();
        let live_video = video.as_ref().is_some_and(|v| v.source.is_live());
        let clock = health.clone();
        let mut threads = Vec::new();
        let mut channels = Vec::new();
        let mut producers = Vec::new();

        let (obs_tx, obs_rx, s) = channel::bounded::<Envelope>("branches->window", 1024, Overflow::Block);
        channels.push(s);

        if let Some(v) = video {
            let producer = producers.len();
            producers.push(ProducerKind::Video);
            let (tx, rx, s) =
                channel::bounded::<Frame>("video-source->vision", cfg.video_queue, cfg.video_overflow);
            channels.push(s);
            let (stop2, fps) = (stop.clone(), cfg.analysis_fps);
            threads.push(spawn(
                "video-source",
                &sup,
                || {},
                move || video_source(v, fps, tx, started, &stop2),
            )?);
            let (obs, s2, guard) = (obs_tx.clone(), sup.clone(), end_guard(&obs_tx, producer));
            let stage = vision.unwrap_or_default();
            let hb = live_video.then(|| clock.clone());
            threads
                .push(spawn("vision", &sup, guard, move || vision_stage(stage, rx, obs, producer, &s2, hb))?);
        }
        if let Some(a) = audio {
            let producer = producers.len();
            producers.push(ProducerKind::Audio);
            let (tx, rx, s) =
                channel::bounded::<AudioChunk>("audio-source->audio", cfg.audio_queue, Overflow::Block);
            channels.push(s);
            let stop2 = stop.clone();
            threads.push(spawn("audio-source", &sup, || {}, move || audio_source(a, tx, started, &stop2))?);
            let mut vad = None;
            if let Some(sp) = speech {
                let sp_producer = producers.len();
                producers.push(ProducerKind::Speech);
                let (seg_tx, seg_rx, s) = channel::bounded::<SpeechMsg>("audio->asr", 64, Overflow::Block);
                channels.push(s);
                let (utt_tx, utt_rx, s) = channel::bounded::<UtteranceMsg>("asr->text", 64, Overflow::Block);
                channels.push(s);
                vad = Some((sp.vad, seg_tx));
                let (asr, voice, s2) = (sp.asr, sp.voice, sup.clone());
                let utt_end = utt_tx.clone();
                let asr_guard = move || {
                    let _ = utt_end.send(UtteranceMsg::End(0.0));
                };
                threads
                    .push(spawn("asr", &sup, asr_guard, move || asr_stage(asr, voice, seg_rx, utt_tx, &s2))?);
                let (obs, s2, text) = (obs_tx.clone(), sup.clone(), sp.text);
                let guard = end_guard(&obs_tx, sp_producer);
                threads.push(spawn("text", &sup, guard, move || {
                    text_stage(text, utt_rx, obs, sp_producer, &s2)
                })?);
            }
            let (obs, c, guard) = (obs_tx.clone(), counters.clone(), end_guard(&obs_tx, producer));
            threads.push(spawn("audio", &sup, guard, move || audio_stage(rx, obs, producer, &c, vad))?);
        }
        drop(obs_tx);

        let (out_tx, out_rx, s) = channel::bounded::<Output>("window->sinks", 256, Overflow::Block);
        channels.push(s);
        let mut window = IntervalWindow::new(cfg.interval_s, cfg.analysis_fps, &producers, session.clone());
        if let Some(f) = fusion {
            window = window.with_fusion(f);
        }
        // Only live sessions publish past a stalled branch; a replay waits for every branch.
        let max_lag = if live_video || mic.is_some() { cfg.max_lag_s } else { f64::INFINITY };
        let c = counters.clone();
        threads.push(spawn(
            "window",
            &sup,
            || {},
            move || window_stage(window, obs_rx, out_tx, &c, max_lag),
        )?);

        let metrics_every = crate::source::secs_duration(cfg.metrics_interval_s);
        let (all, stop2, sess, c) = (channels.clone(), stop.clone(), session.clone(), counters.clone());
        threads.push(spawn(
            "sinks",
            &sup,
            || {},
            move || {
                let figures = SinkFigures { channels: all, counters: c, mic };
                sink_stage(sinks, out_rx, &sess, started, metrics_every, &figures, &stop2, &health)
            },
        )?);

        Ok(Pipeline {
            threads,
            channels,
            counters,
            started,
            duration,
            session_id: session.session_id,
            mic: mic2,
        })
    }

    /// Media time reached so far by every branch (for progress display).
    pub fn progress(&self) -> f64 {
        f64::from_bits(self.counters.progress_bits.load(Ordering::Relaxed))
    }

    /// Duration of the input, when the sources know it.
    pub fn duration(&self) -> Option<f64> {
        self.duration
    }

    /// True once every thread has finished.
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|(_, h)| h.is_finished())
    }

    /// Current figures of every channel.
    pub fn channel_snapshots(&self) -> Vec<ChannelSnapshot> {
        self.channels.iter().map(|c| c.snapshot()).collect()
    }

    /// Waits for every thread; returns the first error any of them hit, after all have finished
    /// (so sinks have flushed what was completed even when a source failed).
    pub fn wait(self) -> Result<Summary> {
        let mut first_err = None;
        for (name, h) in self.threads {
            let r = h.join().unwrap_or_else(|_| Err(Error::stage(&name, "thread panicked")));
            if let Err(e) = r {
                // The first error is returned to the caller; later ones are only logged.
                match first_err {
                    None => first_err = Some(e),
                    Some(_) => log::error!("{e}"),
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let channels: Vec<ChannelSnapshot> = self.channels.iter().map(|c| c.snapshot()).collect();
        let dropped = channels.iter().map(|c| c.dropped).sum();
        let c = &self.counters;
        Ok(Summary {
            session_id: self.session_id,
            intervals: c.intervals.load(Ordering::Relaxed),
            frames: c.frames.load(Ordering::Relaxed),
            frames_dropped: dropped,
            audio_seconds: c.audio_samples.load(Ordering::Relaxed) as f64 / AUDIO_RATE as f64,
            utterances: c.utterances.load(Ordering::Relaxed),
            media_seconds: f64::from_bits(c.progress_bits.load(Ordering::Relaxed)),
            wall_seconds: self.started.elapsed().as_secs_f64(),
            late_observations: c.late.load(Ordering::Relaxed),
            faults: c.faults(self.mic.as_deref()),
            channels,
        })
    }
}

fn video_source(
    mut v: VideoInput,
    fps: f64,
    tx: MeteredSender<Frame>,
    started: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    log::info!("video source: {}", v.source.describe());
    let mut sampler = FrameSampler::new(fps);
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        let Some(raw) = v.source.next_frame()? else { break };
        if !sampler.keep(raw.t) {
            continue;
        }
        if v.realtime && !pace(started, raw.t, stop) {
            break;
        }
        let frame = Frame {
            seq,
            t: raw.t,
            width: raw.width,
            height: raw.height,
            duration: raw.duration,
            rgb: raw.rgb,
        };
        seq += 1;
        if tx.send(frame).is_err() {
            break;
        }
    }
    Ok(())
}

fn audio_source(
    mut a: AudioInput,
    tx: MeteredSender<AudioChunk>,
    started: Instant,
    stop: &AtomicBool,
) -> Result<()> {
    log::info!("audio source: {}", a.source.describe());
    let mut buf: Vec<f32> = Vec::with_capacity(AUDIO_CHUNK * 2);
    let (mut seq, mut sent) = (0u64, 0u64);
    let send = |samples: Vec<f32>, seq: &mut u64, sent: &mut u64| -> bool {
        let t = *sent as f64 / AUDIO_RATE as f64;
        let n = samples.len() as u64;
        if a.realtime && !pace(started, t + n as f64 / AUDIO_RATE as f64, stop) {
            return false;
        }
        let ok = tx.send(AudioChunk { seq: *seq, t, samples }).is_ok();
        *seq += 1;
        *sent += n;
        ok
    };
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match a.source.next_samples()? {
            Some(s) => buf.extend(s),
            None => break,
        }
        while buf.len() >= AUDIO_CHUNK {
            let rest = buf.split_off(AUDIO_CHUNK);
            let chunk = std::mem::replace(&mut buf, rest);
            if !send(chunk, &mut seq, &mut sent) {
                return Ok(());
            }
        }
    }
    if !buf.is_empty() {
        send(buf, &mut seq, &mut sent);
    }
    Ok(())
}

/// A closure that ends `producer`'s stream (for a stage that panicked before sending its End).
fn end_guard(tx: &MeteredSender<Envelope>, producer: usize) -> impl FnOnce() + Send + 'static {
    let tx = tx.clone();
    move || {
        let _ = tx.send(Envelope { producer, event: Event::End(0.0) });
    }
}

/// How long a live video branch may go without a frame before the session clock moves its
/// watermark on (a camera that is reconnecting must not hold back every other branch).
const HEARTBEAT_AFTER: Duration = Duration::from_millis(500);
/// How far behind the session clock a heartbeat watermark stays (a frame being captured now).
const HEARTBEAT_MARGIN_S: f64 = 1.0;

fn vision_stage(
    mut stage: VisionStage,
    rx: MeteredReceiver<Frame>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    sup: &Supervisor,
    heartbeat: Option<crate::source::Health>,
) -> Result<()> {
    let c = &sup.counters;
    let mut end = 0.0f64;
    let mut errors = ItemErrors::new("vision");
    let hook = FaultHook::for_stage("vision");
    let mut n = 0u64;
    loop {
        let frame = match &heartbeat {
            None => match rx.recv() {
                Some(f) => f,
                None => break,
            },
            Some(clock) => match rx.recv_timeout(HEARTBEAT_AFTER) {
                Ok(f) => f,
                Err(true) => break,
                Err(false) => {
                    // No frame for a while (camera lost or reconnecting): time goes on.
                    let now = clock.media_now() - HEARTBEAT_MARGIN_S;
                    if now > end && tx.send(Envelope { producer, event: Event::Progress(now) }).is_err() {
                        return Ok(());
                    }
                    continue;
                }
            },
        };
        n += 1;
        // Newest wins on overflow, so the last frame sent is never the one dropped.
        end = end.max(frame.t + frame.duration);
        match hook.check("vision", n).and_then(|_| stage.process(&frame)) {
            Ok(obs) => {
                errors.ok(sup);
                c.frames.fetch_add(1, Ordering::Relaxed);
                let t = obs.t;
                for event in [Event::Obs(Observation::Frame(obs)), Event::Progress(t)] {
                    if tx.send(Envelope { producer, event }).is_err() {
                        return Ok(());
                    }
                }
            }
            // One frame that cannot be analysed is skipped and counted; the branch goes on.
            Err(e) => {
                errors.failed(sup, &c.frames_failed, &format!("frame at {:.3} s", frame.t), &e);
                if tx.send(Envelope { producer, event: Event::Progress(frame.t) }).is_err() {
                    return Ok(());
                }
            }
        }
    }
    let _ = tx.send(Envelope { producer, event: Event::End(end) });
    Ok(())
}

fn audio_stage(
    rx: MeteredReceiver<AudioChunk>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    c: &Counters,
    mut vad: Option<(crate::audio::vad::Vad, MeteredSender<SpeechMsg>)>,
) -> Result<()> {
    let mut stage = LevelStage;
    let mut end_of_audio = 0.0f64;
    while let Some(chunk) = rx.recv() {
        let obs = stage.process(&chunk);
        c.audio_samples.fetch_add(chunk.samples.len() as u64, Ordering::Relaxed);
        let end = chunk.t + chunk.duration();
        end_of_audio = end;
        if let Some((v, seg_tx)) = vad.as_mut() {
            for seg in v.push(&chunk) {
                let _ = seg_tx.send(SpeechMsg::Segment(seg));
            }
            let _ = seg_tx.send(SpeechMsg::Watermark(v.watermark()));
        }
        for event in [Event::Obs(Observation::Audio(obs)), Event::Progress(end)] {
            if tx.send(Envelope { producer, event }).is_err() {
                return Ok(());
            }
        }
    }
    if let Some((mut v, seg_tx)) = vad {
        for seg in v.finish() {
            let _ = seg_tx.send(SpeechMsg::Segment(seg));
        }
        let _ = seg_tx.send(SpeechMsg::End(end_of_audio));
    }
    let _ = tx.send(Envelope { producer, event: Event::End(end_of_audio) });
    Ok(())
}

/// The voice estimate of one transcribed speech segment (None without a head or features).
fn voice_of(
    head: Option<&mut crate::audio::voice::VoiceHead>,
    t: &crate::audio::asr::Transcript,
    seg: &crate::audio::vad::SpeechSegment,
) -> Result<Option<crate::message::VoiceObs>> {
    let (Some(head), Some(pool)) = (head, t.encoder.as_ref()) else {
        return Ok(None);
    };
    let est = head.predict(&pool.features)?;
    Ok(Some(crate::message::VoiceObs {
        quality: ((seg.end - seg.start) / 1.5).clamp(0.1, 1.0) as f32,
        probs: est.probs,
        sentiment: est.sentiment,
        negative: est.negative,
        valence: est.valence,
    }))
}

fn asr_stage(
    mut asr: crate::audio::asr::Asr,
    mut voice: Option<crate::audio::voice::VoiceHead>,
    rx: MeteredReceiver<SpeechMsg>,
    tx: MeteredSender<UtteranceMsg>,
    sup: &Supervisor,
) -> Result<()> {
    let mut errors = ItemErrors::new("asr");
    let hook = FaultHook::for_stage("asr");
    let mut n = 0u64;
    while let Some(msg) = rx.recv() {
        let out =
            match msg {
                SpeechMsg::Segment(seg) => {
                    n += 1;
                    match hook.check("asr", n).and_then(|_| asr.transcribe(&seg)).and_then(|t| {
                        t.map(|t| voice_of(voice.as_mut(), &t, &seg).map(|v| (t, v))).transpose()
                    }) {
                        Ok(Some((t, v))) => {
                            errors.ok(sup);
                            UtteranceMsg::Utterance(t, v)
                        }
                        Ok(None) => UtteranceMsg::Watermark(seg.start),
                        // One segment that cannot be transcribed is skipped and counted.
                        Err(e) => {
                            let what = format!("speech {:.2}-{:.2} s", seg.start, seg.end);
                            errors.failed(sup, &sup.counters.utterances_failed, &what, &e);
                            UtteranceMsg::Watermark(seg.end)
                        }
                    }
                }
                SpeechMsg::Watermark(w) => UtteranceMsg::Watermark(w),
                SpeechMsg::End(t) => UtteranceMsg::End(t),
            };
        if tx.send(out).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn text_stage(
    mut model: Option<crate::text::TextModel>,
    rx: MeteredReceiver<UtteranceMsg>,
    tx: MeteredSender<Envelope>,
    producer: usize,
    sup: &Supervisor,
) -> Result<()> {
    let c = &sup.counters;
    let mut errors = ItemErrors::new("text");
    let hook = FaultHook::for_stage("text");
    let mut seq = 0;
    let mut ended = None;
    while let Some(msg) = rx.recv() {
        let event = match msg {
            UtteranceMsg::Utterance(t, voice) => {
                let (probs, embedding) = match model.as_mut() {
                    Some(m) => match hook.check("text", seq + 1).and_then(|_| m.analyze(&t.text)) {
                        Ok(s) => {
                            errors.ok(sup);
                            (Some(s.probs), Some(s.embedding))
                        }
                        // The words stay (transcript, voice); only their sentiment is missing.
                        Err(e) => {
                            let what = format!("sentiment of speech {:.2}-{:.2} s", t.start, t.end);
                            errors.failed(sup, &c.utterances_failed, &what, &e);
                            (None, None)
                        }
                    },
                    None => (None, None),
                };
                c.utterances.fetch_add(1, Ordering::Relaxed);
                seq += 1;
                Event::Obs(Observation::Utterance(crate::message::UtteranceObs {
                    seq: seq - 1,
                    start: t.start,
                    end: t.end,
                    text: t.text,
                    probs,
                    embedding,
                    voice,
                }))
            }
            UtteranceMsg::Watermark(w) => Event::Progress(w),
            UtteranceMsg::End(t) => {
                ended = Some(t);
                Event::End(t)
            }
        };
        if tx.send(Envelope { producer, event }).is_err() {
            return Ok(());
        }
    }
    if ended.is_none() {
        // The ASR thread failed before ending the stream: close the branch anyway.
        let _ = tx.send(Envelope { producer, event: Event::End(0.0) });
    }
    Ok(())
}

fn window_stage(
    mut window: IntervalWindow,
    rx: MeteredReceiver<Envelope>,
    tx: MeteredSender<Output>,
    c: &Counters,
    max_lag_s: f64,
) -> Result<()> {
    let publish = |reports: Vec<crate::message::IntervalReport>, window: &mut IntervalWindow| -> Result<()> {
        let closed = |_| Error::stage("window", "the sinks stopped early");
        for r in reports {
            c.progress_bits.fetch_max(r.interval.end_s.to_bits(), Ordering::Relaxed);
            tx.send(Output::Interval(Box::new(r))).map_err(closed)?;
            c.intervals.fetch_add(1, Ordering::Relaxed);
        }
        for a in window.take_alerts() {
            tx.send(Output::Alert(Box::new(a))).map_err(closed)?;
        }
        Ok(())
    };
    while let Some(env) = rx.recv() {
        let mut reports = window.push(env);
        // A branch that stalls (and sends no heartbeat) must not hold the others' intervals, or
        // memory, without bound: past `max_lag_s` the oldest open intervals are published as they are.
        reports.extend(window.force_lagging(max_lag_s));
        c.forced.store(window.forced_intervals(), Ordering::Relaxed);
        publish(reports, &mut window)?;
        let wm = window.watermark();
        if wm.is_finite() {
            // Positive f64s order like their bit patterns, so fetch_max works on the bits.
            c.progress_bits.fetch_max(wm.to_bits(), Ordering::Relaxed);
        }
        c.late.store(window.late_observations(), Ordering::Relaxed);
    }
    // Every branch has closed (normally after End; after a failure, without): publish what is complete.
    let reports = window.finish();
    publish(reports, &mut window)
}

/// What the metrics messages report.
struct SinkFigures {
    channels: Vec<Arc<ChannelStats>>,
    counters: Arc<Counters>,
    mic: Option<Arc<crate::source::mic::MicStats>>,
}

// One thread's whole context; a struct for it would only be unpacked again here.
#[allow(clippy::too_many_arguments)]
fn sink_stage(
    mut sinks: Vec<Box<dyn Sink>>,
    rx: MeteredReceiver<Output>,
    session: &SessionInfo,
    started: Instant,
    metrics_every: Duration,
    figures: &SinkFigures,
    stop: &AtomicBool,
    health: &crate::source::Health,
) -> Result<()> {
    let status = |state: &str, reason: &str| {
        Output::Status(StatusMessage {
            schema: STATUS_SCHEMA.into(),
            device_id: session.device_id.clone(),
            session_id: session.session_id.clone(),
            state: state.into(),
            reason: reason.into(),
            wall: rfc3339(SystemTime::now()),
        })
    };
    let metrics = || {
        Output::Metrics(MetricsReport {
            schema: METRICS_SCHEMA.into(),
            device_id: session.device_id.clone(),
            session_id: session.session_id.clone(),
            wall: rfc3339(SystemTime::now()),
            uptime_s: started.elapsed().as_secs_f64(),
            channels: figures.channels.iter().map(|c| c.snapshot()).collect(),
            rss_mib: rss_mib(),
            spool: None,
            faults: Some(figures.counters.faults(figures.mic.as_deref())),
        })
    };
    let mut first_err: Option<Error> = None;
    let mut failing = vec![false; sinks.len()];
    let mut deliver = |sinks: &mut Vec<Box<dyn Sink>>, msg: &Output| {
        for (i, s) in sinks.iter_mut().enumerate() {
            match s.publish(msg) {
                // Only a written interval or alert proves the sink works again (a file sink
                // ignores status and metrics).
                Ok(()) if failing[i] && matches!(msg, Output::Interval(_) | Output::Alert(_)) => {
                    failing[i] = false;
                    health.recover(&format!("sink {}", s.name()));
                }
                Ok(()) => {}
                Err(e) if !s.fatal_on_error() => {
                    // E.g. the log file on a full disk: say so, count it, keep the session.
                    let n = figures.counters.sink_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if !failing[i] {
                        log::error!("{e} (the session goes on; {n} messages not written so far)");
                    }
                    failing[i] = true;
                    health.degrade(&format!("sink {}", s.name()), &format!("{e} ({n} messages not written)"));
                }
                Err(e) => {
                    log::error!("{e}");
                    // A sink that cannot write ends the session gracefully: sources stop, the rest drains.
                    stop.store(true, Ordering::SeqCst);
                    first_err.get_or_insert(e);
                }
            }
        }
    };
    deliver(&mut sinks, &status("online", ""));
    let mut next_metrics = Instant::now() + metrics_every;
    let mut degraded: Option<String> = None;
    loop {
        // Wake at least every 250 ms to notice a source losing (or regaining) its device.
        let wait = next_metrics.saturating_duration_since(Instant::now()).min(Duration::from_millis(250));
        match rx.recv_timeout(wait) {
            Ok(msg) => deliver(&mut sinks, &msg),
            Err(true) => break,
            Err(false) => {}
        }
        let now_degraded = health.degraded();
        if now_degraded != degraded {
            match &now_degraded {
                Some(reason) => deliver(&mut sinks, &status("degraded", reason)),
                None => deliver(&mut sinks, &status("online", "")),
            }
            degraded = now_degraded;
        }
        if Instant::now() >= next_metrics {
            deliver(&mut sinks, &metrics());
            next_metrics += metrics_every;
        }
    }
    // A fault in the last moments (a stage that panicked as the stream ended) is still said.
    let now_degraded = health.degraded();
    if now_degraded != degraded {
        if let Some(reason) = &now_degraded {
            deliver(&mut sinks, &status("degraded", reason));
        }
    }
    deliver(&mut sinks, &metrics());
    let reason = match &now_degraded {
        Some(why) if stop.load(Ordering::SeqCst) && why.contains("panicked") => {
            format!("stopped after a fault: {why}")
        }
        _ if stop.load(Ordering::SeqCst) => "shutdown".into(),
        _ => "end of input".into(),
    };
    deliver(&mut sinks, &status("offline", &reason));
    for s in sinks.iter_mut() {
        if let Err(e) = s.flush() {
            log::error!("{e}");
            if s.fatal_on_error() {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Health, RawFrame};
    use std::sync::Mutex;

    /// Frames 0.1 s apart; after frame 2 the "device" is lost for 0.6 s, then comes back.
    struct Flaky {
        n: u32,
        health: Health,
    }

    impl VideoSource for Flaky {
        fn next_frame(&mut self) -> Result<Option<RawFrame>> {
            if self.n == 5 {
                return Ok(None);
            }
            if self.n == 2 {
                self.health.degrade("webcam", "capture failed: gone");
                std::thread::sleep(Duration::from_millis(600));
                self.health.recover("webcam");
                std::thread::sleep(Duration::from_millis(400));
            }
            let t = self.n as f64 * 0.1;
            self.n += 1;
            Ok(Some(RawFrame { t, width: 2, height: 2, duration: 0.1, rgb: vec![0; 12] }))
        }
        fn duration(&self) -> Option<f64> {
            None
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    struct Statuses(Arc<Mutex<Vec<(String, String)>>>);

    impl Sink for Statuses {
        fn name(&self) -> &str {
            "statuses"
        }
        fn publish(&mut self, msg: &Output) -> Result<()> {
            if let Output::Status(s) = msg {
                self.0.lock().unwrap().push((s.state.clone(), s.reason.clone()));
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// A live camera on the session clock: frames for 1.2 s, then lost for 3 s, then 1 more second.
    struct Stalling {
        health: Health,
        n: u32,
    }

    impl VideoSource for Stalling {
        fn next_frame(&mut self) -> Result<Option<RawFrame>> {
            if self.n == 24 {
                return Ok(None);
            }
            if self.n == 12 {
                self.health.degrade("webcam", "gone");
                std::thread::sleep(Duration::from_secs(3));
                self.health.recover("webcam");
            }
            std::thread::sleep(Duration::from_millis(100));
            self.n += 1;
            let t = self.health.media_now();
            Ok(Some(RawFrame { t, width: 2, height: 2, duration: 0.1, rgb: vec![0; 12] }))
        }
        fn duration(&self) -> Option<f64> {
            None
        }
        fn describe(&self) -> String {
            "stalling".into()
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    /// Records when each interval was published (wall time since start).
    struct Arrivals(Arc<Mutex<Vec<(f64, f64)>>>, Instant);

    impl Sink for Arrivals {
        fn name(&self) -> &str {
            "arrivals"
        }
        fn publish(&mut self, msg: &Output) -> Result<()> {
            if let Output::Interval(r) = msg {
                self.0.lock().unwrap().push((r.interval.end_s, self.1.elapsed().as_secs_f64()));
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_live_camera_that_stalls_does_not_freeze_publishing() {
        let health = Health::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let topo = Topology {
            config: PipelineConfig { interval_s: 1.0, ..Default::default() },
            device_id: "t".into(),
            session_id: "s".into(),
            first_seq: 0,
            video: Some(VideoInput {
                source: Box::new(Stalling { health: health.clone(), n: 0 }),
                realtime: false,
            }),
            vision: None,
            audio: None,
            speech: None,
            fusion: None,
            sinks: vec![Box::new(Arrivals(seen.clone(), Instant::now()))],
            stop: Arc::new(AtomicBool::new(false)),
            health,
        };
        Pipeline::start(topo).unwrap().wait().unwrap();
        let arrivals = seen.lock().unwrap().clone();
        // The interval ending at 2 s lies inside the stall (1.2–4.2 s): the clock's heartbeat
        // (1 s behind the clock) publishes it before the camera is back, not after.
        let (_, at) = arrivals.iter().find(|(end, _)| (*end - 2.0).abs() < 1e-6).copied().unwrap();
        assert!(at < 4.0, "interval [1, 2) published at {at:.2} s, during the stall: {arrivals:?}");
        let ends: Vec<f64> = arrivals.iter().map(|a| a.0).collect();
        assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    }

    /// A microphone-like source: 1 s of audio, with capture counters that say 2 gaps (0.75 s).
    struct CountedMic(bool, Arc<crate::source::mic::MicStats>);

    impl AudioSource for CountedMic {
        fn next_samples(&mut self) -> Result<Option<Vec<f32>>> {
            if std::mem::replace(&mut self.0, true) {
                return Ok(None);
            }
            Ok(Some(vec![0.0; 16000]))
        }
        fn duration(&self) -> Option<f64> {
            None
        }
        fn describe(&self) -> String {
            "counted mic".into()
        }
        fn mic_counters(&self) -> Option<Arc<crate::source::mic::MicStats>> {
            Some(self.1.clone())
        }
    }

    struct MetricsSeen(Arc<Mutex<Vec<crate::message::FaultCounts>>>);

    impl Sink for MetricsSeen {
        fn name(&self) -> &str {
            "metrics"
        }
        fn publish(&mut self, msg: &Output) -> Result<()> {
            if let Output::Metrics(m) = msg {
                self.0.lock().unwrap().extend(m.faults);
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn microphone_gaps_and_late_observations_reach_the_metrics() {
        let stats = Arc::new(crate::source::mic::MicStats::default());
        stats.gaps.store(2, Ordering::Relaxed);
        stats.gap_samples.store(12_000, Ordering::Relaxed);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let topo = Topology {
            config: PipelineConfig::default(),
            device_id: "t".into(),
            session_id: "s".into(),
            first_seq: 0,
            video: None,
            vision: None,
            audio: Some(AudioInput { source: Box::new(CountedMic(false, stats)), realtime: false }),
            speech: None,
            fusion: None,
            sinks: vec![Box::new(MetricsSeen(seen.clone()))],
            stop: Arc::new(AtomicBool::new(false)),
            health: Health::default(),
        };
        let summary = Pipeline::start(topo).unwrap().wait().unwrap();
        let last = *seen.lock().unwrap().last().expect("a final metrics message");
        assert_eq!((last.mic_overruns, last.mic_gap_s), (2, 0.75));
        assert_eq!(last.late_observations, 0);
        assert_eq!(summary.faults, last);
    }

    #[test]
    fn a_lost_device_is_published_as_degraded_then_online() {
        let health = Health::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let topo = Topology {
            config: PipelineConfig { video_overflow: Overflow::Block, ..Default::default() },
            device_id: "t".into(),
            session_id: "s".into(),
            first_seq: 0,
            video: Some(VideoInput {
                source: Box::new(Flaky { n: 0, health: health.clone() }),
                realtime: false,
            }),
            vision: None,
            audio: None,
            speech: None,
            fusion: None,
            sinks: vec![Box::new(Statuses(seen.clone()))],
            stop: Arc::new(AtomicBool::new(false)),
            health,
        };
        let summary = Pipeline::start(topo).unwrap().wait().unwrap();
        assert_eq!(summary.frames, 5);
        let states = seen.lock().unwrap().clone();
        let names: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["online", "degraded", "online", "offline"], "{states:?}");
        assert_eq!(states[1].1, "webcam: capture failed: gone");
    }
}
