//! `[models]`, `[vision]`, `[speech]`, `[text]`, `[fusion]`, `[privacy]`: the model stages.

use super::*;

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
    /// Manifest name of the expression model (`expression` = the FER+ VGG CNN, `expression_baseline` = fer's mini-XCEPTION).
    pub expression_model: String,
    /// Whose face is analysed: `"largest"`, `"most_central"` or `{ region = [x0, y0, x1, y1] }`
    /// (fractions of the frame; faces centred outside are never scored). See src/vision/customer.rs.
    pub customer: crate::vision::customer::CustomerPolicy,
    /// A customer unseen for longer than this (media seconds) has left: the next face is a new customer.
    pub customer_gap_s: f64,
    /// Run the expression model on every Nth tracked face frame and hold its output in between
    /// (1 = every analysed frame; 1 to 10; default 2). A detection or a new customer always runs it.
    pub expression_every: u32,
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
            expression_every: 2,
        }
    }
}

/// Voice activity detection and Whisper transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// Detect speech and transcribe it.
    pub enabled: bool,
    /// Threads for whisper.cpp (1 leaves the other cores to vision).
    pub asr_threads: usize,
    /// Segments whose no-speech probability is above this are dropped (Whisper invents text on silence).
    pub no_speech_max: f32,
    /// Size Whisper's encoder context to each segment (at least 768 frames, 15.4 s) instead of
    /// the full 30 s window: 2.8x less ASR time for +2 points WER (docs/speech.md); the voice and
    /// fusion heads are trained on fitted-context features.
    pub fit_audio_ctx: bool,
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
            fit_audio_ctx: true,
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

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig { dir: PathBuf::from("models"), verify: true }
    }
}

impl VisionConfig {
    /// Checks every value of this section; the error names the key and what is allowed.
    pub(crate) fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| bad(origin, key, value, allowed);
        let v = self;
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
        if !(1..=10).contains(&v.expression_every) {
            return bad("vision.expression_every", &v.expression_every, "allowed: 1 to 10 (analysed frames)");
        }
        Ok(())
    }
}

impl SpeechConfig {
    /// Checks every value of this section; the error names the key and what is allowed.
    pub(crate) fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| bad(origin, key, value, allowed);
        let sp = self;
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
        Ok(())
    }
}

impl FusionConfig {
    /// Checks every value of this section; the error names the key and what is allowed.
    pub(crate) fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| bad(origin, key, value, allowed);
        let fu = self;
        if !(0.0..=1.0).contains(&fu.incongruence_threshold) {
            return bad("fusion.incongruence_threshold", &fu.incongruence_threshold, "allowed: 0 to 1");
        }
        if !(1..=1000).contains(&fu.alert_after) {
            return bad("fusion.alert_after", &fu.alert_after, "allowed: 1 to 1000 intervals");
        }
        if !(1..=1000).contains(&fu.alert_rearm_after) {
            return bad("fusion.alert_rearm_after", &fu.alert_rearm_after, "allowed: 1 to 1000 intervals");
        }
        Ok(())
    }
}
