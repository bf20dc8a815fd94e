//! The attention fusion head (tract) and the two baselines it is measured against: early fusion
//! (concatenated means → MLP, also an ONNX file) and late fusion (a weighted average of the
//! unimodal predictions, weights from the head's manifest entry).

use super::tokens::{
    IntervalTokens, Modality, FACE_CLASSES, LAYOUT, LAYOUT_V1, MAX_TOKENS, TEXT_EMBEDDING, TOKEN_DIM,
    TOKEN_DIM_V1, VOICE_CLASSES,
};
use crate::error::{Error, Result};
use crate::model::{ModelEntry, OnnxModel};
use std::collections::BTreeMap;
use std::path::Path;

/// Manifest name of the attention head.
pub const HEAD: &str = "fusion_head";
/// Manifest name of the early-fusion baseline.
pub const EARLY: &str = "fusion_early";
/// Width of the early-fusion feature vector: mean face probs, mean text probs, mean text
/// embedding, mean voice probs, presence flags (face, text, voice).
pub const EARLY_DIM: usize = FACE_CLASSES + 3 + TEXT_EMBEDDING + VOICE_CLASSES + 3;
/// Width of the v1 early-fusion feature vector (no voice columns, two presence flags).
pub const EARLY_DIM_V1: usize = FACE_CLASSES + 3 + TEXT_EMBEDDING + 2;

/// What a fusion model says about one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Calibrated sentiment probabilities (negative, neutral, positive).
    pub probs: [f32; 3],
    /// Probability of unexpressed dissatisfaction.
    pub incongruence: f32,
    /// Attention mass per modality (sums to 1 over the modalities present; 0 for absent ones).
    pub attention: BTreeMap<Modality, f32>,
}

impl Fused {
    /// Index of the most probable class.
    pub fn label(&self) -> usize {
        (0..3).max_by(|&a, &b| self.probs[a].total_cmp(&self.probs[b])).unwrap_or(1)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn extra_f32(entry: &ModelEntry, key: &str, default: f32) -> f32 {
    entry
        .extra
        .get(key)
        .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
        .unwrap_or(default as f64) as f32
}

/// The attention head: a learned query per head attends over the interval's tokens.
#[derive(Debug)]
pub struct FusionHead {
    model: OnnxModel,
    temperature: f32,
    incongruence_temperature: f32,
    late_face_weight: f32,
    face_labels: Vec<String>,
    /// Trained on the v1 layout: no voice tokens, 400-wide tokens, two presence flags.
    v1: bool,
}

impl FusionHead {
    /// Loads the head named by `entry`; its `token_layout` must be [`LAYOUT`] (or [`LAYOUT_V1`]:
    /// then voice tokens are left out) and its `face_labels` the expression model's label order
    /// (when the vision models run).
    pub fn load(path: &Path, entry: &ModelEntry, expression_labels: Option<&[String]>) -> Result<FusionHead> {
        let bad = |m: String| Error::Model { path: path.to_path_buf(), message: m };
        let layout = entry.extra.get("token_layout").and_then(|v| v.as_str()).unwrap_or("");
        let v1 = layout == LAYOUT_V1;
        if layout != LAYOUT && !v1 {
            return Err(bad(format!(
                "manifest `token_layout` is `{layout}`; this build needs `{LAYOUT}` (or `{LAYOUT_V1}`)"
            )));
        }
        if v1 {
            log::warn!(
                "{}: a v1 fusion head (no voice tokens); retrain with tools/fusion/make.sh",
                path.display()
            );
        }
        let face_labels: Vec<String> = entry
            .extra
            .get("face_labels")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if face_labels.len() != FACE_CLASSES || expression_labels.is_some_and(|l| l != face_labels) {
            return Err(bad(format!(
                "trained on expression labels {face_labels:?}, but the expression model gives {expression_labels:?}"
            )));
        }
        let (dim, flags) = if v1 { (TOKEN_DIM_V1, 2) } else { (TOKEN_DIM, 3) };
        Ok(FusionHead {
            model: OnnxModel::load_f32(path, &[&[1, MAX_TOKENS, dim], &[1, MAX_TOKENS], &[1, flags]])?
                .expect_outputs(&[Some(&[1, 3]), None, None])?,
            temperature: extra_f32(entry, "temperature", 1.0),
            incongruence_temperature: extra_f32(entry, "incongruence_temperature", 1.0),
            late_face_weight: extra_f32(entry, "late_face_weight", 0.5),
            face_labels,
            v1,
        })
    }

    /// True when the head sees voice tokens (v2 layout).
    pub fn hears_voice(&self) -> bool {
        !self.v1
    }

    /// Fuses one interval; `None` when no modality contributed a token (nothing to say).
    pub fn predict(&mut self, toks: &IntervalTokens) -> Result<Option<Fused>> {
        let v1_toks;
        let toks = if self.v1 {
            v1_toks = toks.keep(&[Modality::Face, Modality::Text]);
            &v1_toks
        } else {
            toks
        };
        if toks.is_empty() {
            return Ok(None);
        }
        let inp = toks.to_input();
        let (tokens, present, dim) = if self.v1 {
            let t: Vec<f32> =
                inp.tokens.chunks_exact(TOKEN_DIM).flat_map(|r| r[..TOKEN_DIM_V1].to_vec()).collect();
            (t, inp.present[..2].to_vec(), TOKEN_DIM_V1)
        } else {
            (inp.tokens, inp.present.to_vec(), TOKEN_DIM)
        };
        let n_flags = present.len();
        let out = self.model.run_f32(vec![
            (&[1, MAX_TOKENS, dim], tokens),
            (&[1, MAX_TOKENS], inp.bias),
            (&[1, n_flags], present),
        ])?;
        let [logits, inc, attn] = &out[..] else {
            return Err(Error::Model {
                path: self.model.path().to_path_buf(),
                message: format!("expected 3 outputs (logits, incongruence, attention), got {}", out.len()),
            });
        };
        // attention: [1, heads, MAX_TOKENS]; mass per modality averaged over heads.
        let heads = (attn.len() / MAX_TOKENS).max(1);
        let mut attention: BTreeMap<Modality, f32> = Modality::ALL.iter().map(|&m| (m, 0.0)).collect();
        for h in 0..heads {
            for (slot, m) in inp.modality.iter().enumerate() {
                *attention.entry(*m).or_default() += attn[h * MAX_TOKENS + slot] / heads as f32;
            }
        }
        Ok(Some(Fused {
            probs: crate::labels::softmax3(logits, self.temperature),
            incongruence: sigmoid(inc[0] / self.incongruence_temperature),
            attention,
        }))
    }

    /// Late-fusion baseline: the nonverbal sentiment (the mean of the face's, from expression
    /// probabilities, and the voice's) and the text sentiment, averaged with the manifest's
    /// `late_face_weight`; incongruence = max(p(face negative), p(voice negative)) ×
    /// p(words not negative).
    pub fn late(&self, toks: &IntervalTokens) -> Option<Fused> {
        let face = face_sentiment(toks, &self.face_labels);
        let voice = if self.v1 { None } else { voice_sentiment(toks) };
        let text = text_sentiment(toks);
        let nonverbal: Vec<[f32; 3]> = [face, voice].into_iter().flatten().collect();
        let nv = (!nonverbal.is_empty())
            .then(|| [0, 1, 2].map(|k| nonverbal.iter().map(|s| s[k]).sum::<f32>() / nonverbal.len() as f32));
        let neg = nonverbal.iter().map(|s| s[0]).fold(0.0f32, f32::max);
        let (probs, inc, wn) = match (nv, text) {
            (None, None) => return None,
            (Some(f), None) => (f, 0.0, 1.0),
            (None, Some(t)) => (t, 0.0, 0.0),
            (Some(f), Some(t)) => {
                let w = self.late_face_weight;
                let p = [0, 1, 2].map(|k| w * f[k] + (1.0 - w) * t[k]);
                (p, neg * (1.0 - t[0]), w)
            }
        };
        let share = wn / nonverbal.len().max(1) as f32;
        let attention = [
            (Modality::Face, if face.is_some() { share } else { 0.0 }),
            (Modality::Voice, if voice.is_some() { share } else { 0.0 }),
            (Modality::Text, if text.is_some() { 1.0 - wn } else { 0.0 }),
        ]
        .into_iter()
        .collect();
        Some(Fused { probs, incongruence: inc, attention })
    }
}

/// Mean voice sentiment over the utterances (angry/fearful/sad/disgust → negative, happy →
/// positive, the rest neutral; [`crate::audio::voice::sentiment3`]). `None` without voice.
pub fn voice_sentiment(toks: &IntervalTokens) -> Option<[f32; 3]> {
    if toks.voices.is_empty() {
        return None;
    }
    let n = toks.voices.len() as f32;
    let mut s = [0.0f32; 3];
    for v in &toks.voices {
        for (a, p) in s.iter_mut().zip(crate::audio::voice::sentiment3(&v.probs)) {
            *a += p / n;
        }
    }
    Some(s)
}

/// Mean face sentiment from expression probabilities: negative = angry + disgust + fear + sad,
/// neutral, positive = happy, renormalised without surprise. `None` without faces.
pub fn face_sentiment(toks: &IntervalTokens, labels: &[String]) -> Option<[f32; 3]> {
    if toks.faces.is_empty() {
        return None;
    }
    let mut s = [0.0f32; 3];
    for f in &toks.faces {
        for (i, p) in f.probs.iter().enumerate() {
            let k = match labels.get(i).map(String::as_str) {
                Some("angry" | "disgust" | "fear" | "sad") => 0,
                Some("neutral") => 1,
                Some("happy") => 2,
                _ => continue,
            };
            s[k] += p;
        }
    }
    let total: f32 = s.iter().sum::<f32>().max(1e-6);
    Some(s.map(|v| v / total))
}

/// Mean text sentiment over the utterances. `None` without words.
pub fn text_sentiment(toks: &IntervalTokens) -> Option<[f32; 3]> {
    if toks.texts.is_empty() {
        return None;
    }
    let n = toks.texts.len() as f32;
    let mut s = [0.0f32; 3];
    for t in &toks.texts {
        for (a, p) in s.iter_mut().zip(t.probs) {
            *a += p / n;
        }
    }
    Some(s)
}

/// The early-fusion feature vector (see [`EARLY_DIM`]).
pub fn early_features(toks: &IntervalTokens) -> Vec<f32> {
    let mut v = vec![0.0f32; EARLY_DIM];
    let nf = toks.faces.len().max(1) as f32;
    for f in &toks.faces {
        for (d, p) in v[..FACE_CLASSES].iter_mut().zip(&f.probs) {
            *d += p / nf;
        }
    }
    let nt = toks.texts.len().max(1) as f32;
    for t in &toks.texts {
        for (d, p) in v[FACE_CLASSES..FACE_CLASSES + 3].iter_mut().zip(t.probs) {
            *d += p / nt;
        }
        for (d, e) in v[FACE_CLASSES + 3..FACE_CLASSES + 3 + TEXT_EMBEDDING].iter_mut().zip(&t.embedding) {
            *d += e / nt;
        }
    }
    let nv = toks.voices.len().max(1) as f32;
    let at = FACE_CLASSES + 3 + TEXT_EMBEDDING;
    for t in &toks.voices {
        for (d, p) in v[at..at + VOICE_CLASSES].iter_mut().zip(&t.probs) {
            *d += p / nv;
        }
    }
    v[EARLY_DIM - 3] = (!toks.faces.is_empty()) as u8 as f32;
    v[EARLY_DIM - 2] = (!toks.texts.is_empty()) as u8 as f32;
    v[EARLY_DIM - 1] = (!toks.voices.is_empty()) as u8 as f32;
    v
}

/// The early-fusion baseline: an MLP on [`early_features`].
#[derive(Debug)]
pub struct EarlyFusion {
    model: OnnxModel,
    temperature: f32,
    v1: bool,
}

impl EarlyFusion {
    /// Loads the baseline named by `entry` (a v1 one, `features float32 [1, 396]`, too).
    pub fn load(path: &Path, entry: &ModelEntry) -> Result<EarlyFusion> {
        let inputs = entry.extra.get("inputs").map(|v| v.to_string()).unwrap_or_default();
        let v1 = inputs.contains(&format!("[1, {EARLY_DIM_V1}]"));
        let dim = if v1 { EARLY_DIM_V1 } else { EARLY_DIM };
        Ok(EarlyFusion {
            model: OnnxModel::load_f32(path, &[&[1, dim]])?.expect_outputs(&[Some(&[1, 3])])?,
            temperature: extra_f32(entry, "temperature", 1.0),
            v1,
        })
    }

    /// Predicts one interval; `None` without tokens.
    pub fn predict(&mut self, toks: &IntervalTokens) -> Result<Option<Fused>> {
        if toks.is_empty() {
            return Ok(None);
        }
        let mut f = early_features(toks);
        let dim = if self.v1 {
            let flags = [f[EARLY_DIM - 3], f[EARLY_DIM - 2]];
            f.truncate(FACE_CLASSES + 3 + TEXT_EMBEDDING);
            f.extend(flags);
            EARLY_DIM_V1
        } else {
            EARLY_DIM
        };
        let out = self.model.run_f32(vec![(&[1, dim], f)])?;
        let (logits, inc) = (&out[0], out.get(1).and_then(|v| v.first()).copied().unwrap_or(f32::MIN));
        Ok(Some(Fused {
            probs: crate::labels::softmax3(logits, self.temperature),
            incongruence: sigmoid(inc),
            attention: BTreeMap::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::tokens::{FaceToken, TextToken};

    fn labels() -> Vec<String> {
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn face_sentiment_maps_expressions_and_drops_surprise() {
        let toks = IntervalTokens {
            faces: vec![FaceToken { probs: vec![0.1, 0.0, 0.1, 0.3, 0.1, 0.2, 0.2], quality: 1.0, t: 0.0 }],
            texts: vec![],
            voices: vec![],
        };
        let s = face_sentiment(&toks, &labels()).unwrap();
        assert!(
            (s[0] - 0.375).abs() < 1e-6 && (s[1] - 0.25).abs() < 1e-6 && (s[2] - 0.375).abs() < 1e-6,
            "{s:?}"
        );
        assert!(text_sentiment(&toks).is_none());
    }

    #[test]
    fn early_features_average_and_flag_presence() {
        let t = |p: [f32; 3]| TextToken { probs: p, embedding: vec![1.0; TEXT_EMBEDDING], t: 0.5 };
        let toks = IntervalTokens {
            faces: vec![],
            texts: vec![t([1.0, 0.0, 0.0]), t([0.0, 0.0, 1.0])],
            voices: vec![crate::fusion::tokens::VoiceToken {
                probs: vec![0.5; VOICE_CLASSES],
                quality: 1.0,
                t: 0.5,
            }],
        };
        let v = early_features(&toks);
        assert_eq!(&v[7..10], &[0.5, 0.0, 0.5]);
        assert_eq!(v[10], 1.0);
        assert_eq!(v[FACE_CLASSES + 3 + TEXT_EMBEDDING], 0.5);
        assert_eq!((v[EARLY_DIM - 3], v[EARLY_DIM - 2], v[EARLY_DIM - 1]), (0.0, 1.0, 1.0));
        let vs = voice_sentiment(&toks).unwrap();
        assert!((vs[0] - 2.0).abs() < 1e-6 && (vs[2] - 0.5).abs() < 1e-6, "{vs:?}");
    }
}
