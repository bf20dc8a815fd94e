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
use crate::channel::{self, ChannelSnapshot, ChannelStats, MeteredReceiver, MeteredSender, Overflow, Recv};
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
            v.insert("voice".into(), h.version());
        }
        v
    }
}

/// What flows from the audio stage to the ASR thread: speech segments, watermarks, the end.
type SpeechMsg = Event<crate::audio::vad::SpeechSegment>;

/// What flows from the ASR thread to the text thread: transcripts with their voice estimate.
type UtteranceMsg = Event<(crate::audio::asr::Transcript, Option<crate::message::VoiceObs>)>;

/// A video source and how to pace it.
pub struct VideoFeed {
    /// The source.
    pub source: Box<dyn VideoSource>,
    /// Deliver frames at wall-clock speed (live-like) instead of as fast as possible.
    pub realtime: bool,
}

/// An audio source and how to pace it.
pub struct AudioFeed {
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
    pub video: Option<VideoFeed>,
    /// The vision stage for the video branch (with or without models); `None` = frame statistics only.
    pub vision: Option<VisionStage>,
    /// Audio branch, if any.
    pub audio: Option<AudioFeed>,
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

mod branches;
mod build;
mod output;
mod supervisor;
#[cfg(test)]
mod tests;

use branches::*;
pub use build::Endpoints;
use output::*;
use supervisor::*;

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
    /// Seconds each branch stage thread spent working (the rest of `wall_seconds` it waited
    /// for input or for room downstream): (stage, busy seconds).
    pub stage_busy: Vec<(String, f64)>,
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
                    let _ = utt_end.send(Event::End(0.0));
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
            stage_busy: supervisor::STAGES
                .iter()
                .zip(&c.busy_ns)
                .map(|(s, ns)| (s.to_string(), ns.load(Ordering::Relaxed) as f64 / 1e9))
                .collect(),
        })
    }
}
