//! Typed messages that flow between stages, and the JSON messages that leave the device.
//!
//! Every in-pipeline message carries **media time** (seconds from session start on the source's clock)
//! and a per-stream sequence number, so a replayed recording gives the same reports however fast the
//! machine is. The outgoing messages ([`IntervalReport`], [`StatusMessage`], [`MetricsReport`]) are
//! serialised as JSON; their schema is `docs/message-schema.json`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sample rate of every [`AudioChunk`] in the pipeline (mono).
pub const AUDIO_RATE: u32 = 16_000;

/// Schema identifier written into every interval message.
pub const INTERVAL_SCHEMA: &str = "affectd.interval/1";
/// Schema identifier written into every status message.
pub const STATUS_SCHEMA: &str = "affectd.status/1";
/// Schema identifier written into every alert message.
pub const ALERT_SCHEMA: &str = "affectd.alert/1";
/// Schema identifier written into every metrics message.
pub const METRICS_SCHEMA: &str = "affectd.metrics/1";

/// One decoded video frame, RGB24, row-major, no padding.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Sequence number assigned by the source (gaps mean frames were dropped on the way).
    pub seq: u64,
    /// Media time of the frame, seconds from session start.
    pub t: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How long the frame lasts on the source's clock, seconds.
    pub duration: f64,
    /// `width * height * 3` bytes, R G B.
    pub rgb: Vec<u8>,
}

/// A run of 16 kHz mono audio samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct AudioChunk {
    /// Sequence number assigned by the source.
    pub seq: u64,
    /// Media time of the first sample, seconds from session start.
    pub t: f64,
    /// Samples at [`AUDIO_RATE`].
    pub samples: Vec<f32>,
}

impl AudioChunk {
    /// Duration of the chunk in seconds.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / AUDIO_RATE as f64
    }
}

/// What the video branch reports for one analysed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameObs {
    /// The frame's sequence number.
    pub seq: u64,
    /// Media time of the frame.
    pub t: f64,
    /// Frames lost between the previous analysed frame and this one (dropped under load).
    pub dropped_before: u64,
    /// Mean luma (BT.601) in [0, 1]: a cheap exposure check.
    pub luma_mean: f32,
    /// The customer's face, when one is seen and the vision models run.
    pub face: Option<FaceObs>,
    /// Time the vision stage spent on this frame, milliseconds.
    pub process_ms: f32,
}

/// The customer's face in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceObs {
    /// Landmark bounding box (x, y, w, h) in frame pixels.
    pub bbox: [f32; 4],
    /// FaceMesh face-presence probability.
    pub presence: f32,
    /// Detector score when the detector ran on this frame (None while tracking).
    pub detection_score: Option<f32>,
    /// The detector ran on this frame (tracking was lost or had not started).
    pub detector_ran: bool,
    /// Geometric cues.
    pub cues: crate::vision::cues::Cues,
    /// Calibrated expression probabilities in the model's label order.
    pub expression: Vec<f32>,
    /// The customer's number in this session (1, 2, …; src/vision/customer.rs).
    pub customer: u64,
    /// This face starts a new customer (the previous one left, or it is the first).
    pub new_customer: bool,
}

/// What the audio branch reports for one block of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioObs {
    /// Media time of the block's first sample.
    pub t: f64,
    /// Number of samples in the block.
    pub samples: usize,
    /// Sum of squared samples (for RMS over any span).
    pub sum_sq: f64,
    /// Largest absolute sample.
    pub peak: f32,
}

impl AudioObs {
    /// Media time of the middle of the block (used to assign it to an interval).
    pub fn midpoint(&self) -> f64 {
        self.t + self.samples as f64 / AUDIO_RATE as f64 / 2.0
    }
}

/// One transcribed utterance and what its words mean.
#[derive(Debug, Clone, PartialEq)]
pub struct UtteranceObs {
    /// Per-session utterance number.
    pub seq: u64,
    /// Media time the speech starts.
    pub start: f64,
    /// Media time the speech ends.
    pub end: f64,
    /// The transcript (kept on the device; published only when privacy.publish_transcripts, redacted).
    pub text: String,
    /// Text sentiment probabilities (negative, neutral, positive), when the text stage runs.
    pub probs: Option<[f32; 3]>,
    /// Sentence embedding (384-d), when the text stage runs.
    pub embedding: Option<Vec<f32>>,
    /// How it was said, when the voice stage runs.
    pub voice: Option<VoiceObs>,
}

/// The voice stage's estimate for one utterance (docs/voice.md).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceObs {
    /// Calibrated voice-emotion probabilities in [`crate::audio::voice::LABELS`] order.
    pub probs: Vec<f32>,
    /// (negative, neutral, positive) folded from `probs`.
    pub sentiment: [f32; 3],
    /// Probability that the voice sounds negative (angry, fearful, sad or disgusted).
    pub negative: f32,
    /// Valence in [-1, 1]: P(positive) − P(negative).
    pub valence: f32,
    /// Quality weight in (0, 1]: grows with the utterance's length (full from 1.5 s of speech).
    pub quality: f32,
}

/// An observation a stage contributes to interval aggregation.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A frame was analysed.
    Frame(FrameObs),
    /// A block of audio was measured.
    Audio(AudioObs),
    /// An utterance was transcribed (and its sentiment estimated).
    Utterance(UtteranceObs),
}

impl Observation {
    /// The media time that decides which interval the observation belongs to.
    pub fn time(&self) -> f64 {
        match self {
            Observation::Frame(f) => f.t,
            Observation::Audio(a) => a.midpoint(),
            // An utterance belongs to the interval holding its midpoint.
            Observation::Utterance(u) => (u.start + u.end) / 2.0,
        }
    }
}

/// One element of a timed stream between stages: an item, a watermark, or the end. Producers
/// send `Event<Observation>` to the interval window; the speech branch uses the same shape for
/// speech segments (audio → ASR) and utterances (ASR → text).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T = Observation> {
    /// An item (an observation, a speech segment, an utterance).
    Obs(T),
    /// A watermark: the producer will send no observation with a time before this media time.
    Progress(f64),
    /// The producer has finished; nothing more will come. Carries the media time at which its
    /// input ended (the end of the last frame or sample delivered).
    End(f64),
}

/// An [`Event`] tagged with the index of the producer that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Index of the producer (assigned by the pipeline builder).
    pub producer: usize,
    /// The event.
    pub event: Event,
}

/// The per-interval message (schema `affectd.interval/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    /// Always [`INTERVAL_SCHEMA`].
    pub schema: String,
    /// The device's configured id.
    pub device_id: String,
    /// A UUID per run of the agent.
    pub session_id: String,
    /// Interval number: increases per device without gaps within a session; a new session
    /// continues where the last one ended when a state folder (the MQTT spool) keeps it, else starts at 0.
    pub seq: u64,
    /// The interval's span.
    pub interval: IntervalSpan,
    /// Fused customer sentiment; null when fusion is off or nothing was seen or heard.
    pub sentiment: Option<Sentiment>,
    /// Unexpressed-dissatisfaction estimate; null when fusion is off or face or words are missing.
    pub incongruence: Option<Incongruence>,
    /// Per-modality summaries; each is null while its stage does not exist.
    pub modalities: Modalities,
    /// How the fusion head weighed the modalities; null when fusion is off.
    pub fusion: Option<FusionInfo>,
    /// What flowed in from the sources during the interval (always present).
    pub inputs: Inputs,
    /// Model name → version/sha of every model that contributed.
    pub models: BTreeMap<String, String>,
}

/// Start and end of an interval in media time and on the wall clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalSpan {
    /// Media time of the start, seconds.
    pub start_s: f64,
    /// Media time of the end, seconds (exclusive).
    pub end_s: f64,
    /// Wall-clock time of the start: session start + `start_s`, RFC 3339 UTC.
    pub wall_start: String,
    /// Wall-clock time of the end: session start + `end_s`, RFC 3339 UTC.
    pub wall_end: String,
    /// True for the last interval of a session when the media ended before a full interval.
    pub partial: bool,
}

/// A sentiment estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    /// `negative`, `neutral` or `positive`.
    pub label: String,
    /// Valence in [-1, 1].
    pub score: f64,
    /// Class probabilities, summing to 1.
    pub probs: BTreeMap<String, f64>,
    /// Calibrated confidence in [0, 1].
    pub confidence: f64,
}

/// The unexpressed-dissatisfaction estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incongruence {
    /// Probability that words and face/voice disagree with the face/voice negative.
    pub probability: f64,
    /// True when the probability is above the configured threshold.
    pub flag: bool,
}

/// The fusion head's explanation of one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionInfo {
    /// Attention mass per modality (`face`, `voice`, `text`): sums to 1 over the modalities that
    /// contributed, 0 for a missing one.
    pub attention: BTreeMap<String, f64>,
    /// Tokens each modality contributed (analysed frames with a face, utterances).
    pub tokens: BTreeMap<String, u64>,
    /// Modalities that contributed nothing, with why (`no face in view`, `nobody spoke`, …).
    pub missing: BTreeMap<String, String>,
    /// The head that produced `sentiment` and `incongruence` (`file@sha256-prefix`).
    pub model: String,
}

/// The unexpressed-dissatisfaction alert (schema `affectd.alert/1`): published once when the
/// incongruence probability stayed at or above the threshold for N consecutive intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// Always [`ALERT_SCHEMA`].
    pub schema: String,
    /// The device's configured id.
    pub device_id: String,
    /// The session's id.
    pub session_id: String,
    /// Always `unexpressed_dissatisfaction`.
    pub kind: String,
    /// `seq` of the intervals that raised it (N consecutive).
    pub intervals: Vec<u64>,
    /// Media time the first of them starts, seconds.
    pub start_s: f64,
    /// Media time the last of them ends, seconds.
    pub end_s: f64,
    /// Wall clock of `end_s`, RFC 3339 UTC.
    pub wall: String,
    /// Mean incongruence probability over those intervals.
    pub probability: f64,
    /// The threshold it stayed at or above.
    pub threshold: f64,
    /// The fused sentiment of the last interval.
    pub sentiment: Option<Sentiment>,
    /// What the face showed most (dominant expression of the last interval), when seen.
    pub face: Option<String>,
    /// The voice's dominant emotion in the last flagged interval (null without a voice stage or speech).
    #[serde(default)]
    pub voice: Option<String>,
    /// The words' own sentiment label in the last interval, when someone spoke.
    pub words: Option<String>,
    /// What was said in those intervals (PII-redacted); only with `privacy.publish_transcripts`.
    pub transcript: Option<String>,
}

/// Per-modality summaries; each is null while its stage does not exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Modalities {
    /// Face summary (vision stages).
    pub face: Option<FaceSummary>,
    /// Voice-emotion summary (the voice head on Whisper's encoder output).
    pub voice: Option<VoiceSummary>,
    /// Text sentiment summary.
    pub text: Option<TextSummary>,
}

// The summaries' fields are in alphabetical order: the published JSON stays byte-identical to the
// hand-built objects these types replaced (serde_json's maps are sorted).

/// `modalities.face`: what the vision stages measured in the interval; expression, cues, box and
/// presence are null when no face was seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceSummary {
    /// Mean face box `[x, y, width, height]` in pixels of the analysed frame.
    #[serde(rename = "box")]
    pub bbox: Option<Vec<f64>>,
    /// Mean facial cues (head pose in degrees, smile, brow gap, eye and mouth opening, face size,
    /// blinks per minute, share of frames looking away).
    pub cues: Option<BTreeMap<String, f64>>,
    /// Which customer of the session the figures describe (1, 2, …; `vision.customer`); null
    /// without a face.
    pub customer: Option<u64>,
    /// Frames on which the face detector ran (the rest were tracked).
    pub detector_runs: u64,
    /// The expression with the highest mean probability.
    pub dominant: Option<String>,
    /// Mean expression probabilities, by label.
    pub expression: Option<BTreeMap<String, f64>>,
    /// Analysed frames with a face.
    pub face_frames: u64,
    /// Analysed frames.
    pub frames: u64,
    /// A new customer's face was first seen in this interval (the figures restart with them).
    pub new_customer: bool,
    /// Mean landmark-model face presence score.
    pub presence_mean: Option<f64>,
    /// A face was seen in the interval.
    pub present: bool,
    /// Mean vision processing time per frame, milliseconds (wall clock: differs per run).
    pub process_ms_mean: f64,
}

/// The voice's dominant emotion over the eight RAVDESS classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceEmotion {
    /// Probability of `label`.
    pub confidence: f64,
    /// The most probable emotion.
    pub label: String,
    /// Probability of each emotion.
    pub probs: BTreeMap<String, f64>,
}

/// `modalities.voice`: overlap-weighted voice estimates of the utterances overlapping the interval; all null
/// (and `present` false) when no utterance had one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceSummary {
    /// The eight-class voice emotion.
    pub emotion: Option<VoiceEmotion>,
    /// Probability that the voice is negative.
    pub negative: Option<f64>,
    /// Some utterance had a voice estimate.
    pub present: bool,
    /// The emotion folded to negative/neutral/positive.
    pub sentiment: Option<Sentiment>,
    /// Utterances with a voice estimate.
    pub utterances: u64,
    /// P(positive) − P(negative).
    pub valence: Option<f64>,
}

/// One transcribed utterance in `modalities.text.segments` (opt-in, redacted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextSegment {
    /// Media time of its end, seconds.
    pub end_s: f64,
    /// Media time of its start, seconds.
    pub start_s: f64,
    /// The redacted words.
    pub text: String,
}

/// `modalities.text`: the utterances overlapping the interval and their overlap-weighted text sentiment; the
/// transcript and its segments only with `privacy.publish_transcripts` (redacted), else null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TextSummary {
    /// Somebody spoke in the interval.
    pub present: bool,
    /// The utterances with their media-time spans (opt-in).
    pub segments: Option<Vec<TextSegment>>,
    /// Text sentiment; null when no utterance's sentiment was estimated.
    pub sentiment: Option<Sentiment>,
    /// Seconds of speech inside the interval.
    pub speech_s: f64,
    /// The redacted transcript (opt-in).
    pub transcript: Option<String>,
    /// Utterances overlapping the interval.
    pub utterances: u64,
    /// Their words, in proportion to the overlap.
    pub words: u64,
}

/// What the sources delivered during an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Video input, null when the session has no video source.
    pub video: Option<VideoInput>,
    /// Audio input, null when the session has no audio source.
    pub audio: Option<AudioInput>,
}

/// Video frames seen in an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInput {
    /// Frames analysed.
    pub frames: u64,
    /// Frames dropped under load before analysis.
    pub dropped: u64,
    /// Mean luma of the analysed frames in [0, 1]; null when none was analysed.
    pub luma_mean: Option<f64>,
}

/// Audio seen in an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    /// Seconds of audio received.
    pub seconds: f64,
    /// RMS level in dBFS (floored at -120); null when no audio arrived.
    pub rms_dbfs: Option<f64>,
    /// Peak level in dBFS (floored at -120); null when no audio arrived.
    pub peak_dbfs: Option<f64>,
}

/// Agent health (schema `affectd.status/1`), published retained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// Always [`STATUS_SCHEMA`].
    pub schema: String,
    /// The device's configured id.
    pub device_id: String,
    /// The session's id.
    pub session_id: String,
    /// `online`, `degraded` or `offline`.
    pub state: String,
    /// Why, in words (empty when online and healthy).
    pub reason: String,
    /// Wall clock, RFC 3339 UTC.
    pub wall: String,
}

/// Periodic pipeline figures (schema `affectd.metrics/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Always [`METRICS_SCHEMA`].
    pub schema: String,
    /// The device's configured id.
    pub device_id: String,
    /// The session's id.
    pub session_id: String,
    /// Wall clock, RFC 3339 UTC.
    pub wall: String,
    /// Seconds since the session started.
    pub uptime_s: f64,
    /// Per-channel figures.
    pub channels: Vec<crate::channel::ChannelSnapshot>,
    /// Resident memory of the process in MiB, when the OS tells.
    pub rss_mib: Option<f64>,
    /// MQTT spool figures (only in messages published over MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<crate::sink::spool::SpoolStats>,
    /// What the pipeline skipped, dropped or recovered from since the session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultCounts>,
}

/// Fault counters of a session (metrics `faults`): every skip and drop is counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Frames the vision stage could not analyse (skipped; the interval has fewer frames).
    pub frames_failed: u64,
    /// Speech segments ASR, voice or text could not process (skipped).
    pub utterances_failed: u64,
    /// Stage threads that panicked (each ends the session in order).
    pub stage_panics: u64,
    /// Observations that arrived after their interval was published (not in any interval).
    pub late_observations: u64,
    /// Intervals published before a stalled branch reported (the window's bound on waiting).
    pub intervals_forced: u64,
    /// Audio lost by the microphone (overruns), in blocks; the gap is filled with silence.
    pub mic_overruns: u64,
    /// Seconds of silence inserted for microphone overruns, keeping the timeline true.
    pub mic_gap_s: f64,
    /// Messages a non-fatal sink could not write (e.g. the log file on a full disk).
    pub sink_failures: u64,
}

/// Everything a sink may be asked to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A completed interval.
    Interval(Box<IntervalReport>),
    /// An unexpressed-dissatisfaction alert.
    Alert(Box<AlertMessage>),
    /// A health change.
    Status(StatusMessage),
    /// Periodic metrics.
    Metrics(MetricsReport),
}

/// Formats `secs` since the Unix epoch as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
