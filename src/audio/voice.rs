//! Voice emotion: a linear head (standardisation → linear → softmax, temperature folded in) on the
//! Whisper encoder output that speech recognition has already computed, pooled over each
//! utterance ([`crate::audio::asr::EncoderPool`]). Trained by `tools/voice/train.py` on RAVDESS,
//! speaker-independently; see docs/voice.md.

use crate::error::{Error, Result};
use crate::model::{self, ModelEntry, OnnxModel};
use std::path::{Path, PathBuf};

/// Voice emotion classes in the head's output order (RAVDESS's eight).
pub const LABELS: [&str; 8] = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"];
/// Width of the pooled encoder features (mean + std of 384 tiny.en encoder dimensions).
pub const FEATURES: usize = 768;
/// Manifest name of the voice head.
pub const HEAD: &str = "voice_emotion";
/// The classes counted as negative voice (angry, fearful, sad, disgust).
pub const NEGATIVE: [usize; 4] = [3, 4, 5, 6];
/// The classes counted as positive voice (happy). Surprised counts as neutral: in acted speech it
/// is as often alarmed as delighted, and calling it negative would flag pleasant surprise.
pub const POSITIVE: [usize; 1] = [2];

/// Folds eight voice probabilities into (negative, neutral, positive): angry, fearful, sad,
/// disgust → negative; happy → positive; neutral, calm, surprised → neutral.
pub fn sentiment3(probs: &[f32]) -> [f32; 3] {
    let neg: f32 = NEGATIVE.iter().map(|&i| probs.get(i).copied().unwrap_or(0.0)).sum();
    let pos: f32 = POSITIVE.iter().map(|&i| probs.get(i).copied().unwrap_or(0.0)).sum();
    let total: f32 = probs.iter().sum();
    [neg, (total - neg - pos).max(0.0), pos]
}

/// The 3-class sentiment index of an 8-class voice label index.
pub fn sentiment_of_class(i: usize) -> usize {
    if NEGATIVE.contains(&i) {
        0
    } else if POSITIVE.contains(&i) {
        2
    } else {
        1
    }
}

/// One utterance's voice estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceEstimate {
    /// Calibrated probabilities in [`LABELS`] order.
    pub probs: Vec<f32>,
    /// (negative, neutral, positive) from [`sentiment3`].
    pub sentiment: [f32; 3],
    /// Probability that the voice is negative (= `sentiment[0]`).
    pub negative: f32,
    /// Valence in [-1, 1]: P(positive) − P(negative).
    pub valence: f32,
    /// Seconds the head took.
    pub head_s: f64,
}

/// The voice head in tract: pooled features [1, 768] → calibrated probabilities [1, 8].
pub struct VoiceHead {
    model: OnnxModel,
    path: PathBuf,
    version: String,
}

impl std::fmt::Debug for VoiceHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VoiceHead({})", self.path.display())
    }
}

impl VoiceHead {
    /// Loads the head at `path`; its manifest `entry` must list exactly [`LABELS`].
    pub fn load(path: &Path, entry: &ModelEntry) -> Result<VoiceHead> {
        entry.require_labels(path, &LABELS)?;
        let model =
            OnnxModel::load_f32(path, &[&[1, FEATURES]])?.expect_outputs(&[Some(&[1, LABELS.len()])])?;
        Ok(VoiceHead { model, path: path.to_path_buf(), version: entry.version() })
    }

    /// Loads the head named [`HEAD`] from the models folder (sha256-checked when `verify`).
    pub fn load_from(dir: &Path, verify: bool) -> Result<VoiceHead> {
        let (path, entry) = model::locate(dir, HEAD, verify)?;
        VoiceHead::load(&path, &entry)
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version string published in messages (`file@sha12`, like every other model).
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// Scores one utterance's pooled encoder features.
    pub fn predict(&mut self, features: &[f32]) -> Result<VoiceEstimate> {
        if features.len() != FEATURES || features.iter().any(|v| !v.is_finite()) {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!(
                    "voice features: {} values (finite: {}), expected {FEATURES} finite values",
                    features.len(),
                    features.iter().all(|v| v.is_finite())
                ),
            });
        }
        let t0 = std::time::Instant::now();
        let out = self.model.run_f32(vec![(&[1, FEATURES], features.to_vec())])?;
        let probs = out.into_iter().next().unwrap_or_default();
        if probs.len() != LABELS.len() || probs.iter().any(|p| !p.is_finite()) {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!("voice head gave {} outputs, expected {} finite", probs.len(), LABELS.len()),
            });
        }
        let sentiment = sentiment3(&probs);
        Ok(VoiceEstimate {
            negative: sentiment[0],
            valence: sentiment[2] - sentiment[0],
            sentiment,
            probs,
            head_s: t0.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentiment_mapping_keeps_surprise_out_of_negative() {
        let mut p = vec![0.0f32; 8];
        p[7] = 1.0;
        assert_eq!(sentiment3(&p), [0.0, 1.0, 0.0]);
        let p = [0.1, 0.1, 0.2, 0.1, 0.2, 0.1, 0.1, 0.1];
        let s = sentiment3(&p);
        assert!((s[0] - 0.5).abs() < 1e-6 && (s[1] - 0.3).abs() < 1e-6 && (s[2] - 0.2).abs() < 1e-6, "{s:?}");
        let classes: Vec<usize> = (0..8).map(sentiment_of_class).collect();
        assert_eq!(classes, vec![1, 1, 2, 0, 0, 0, 0, 1]);
    }
}
