//! Sentiment of a text: tokenizer → MiniLM embedding → MLP head → temperature-scaled softmax.

use super::encoder::{TextEncoder, EMBEDDING_DIM};
use super::tokenize::TextTokenizer;
use crate::config::ModelsConfig;
use crate::error::{Error, Result};
use crate::model::{self, ModelEntry, OnnxModel};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Class names in the head's output order.
pub use crate::labels::SENTIMENTS as LABELS;

/// Manifest name of the tokenizer file.
pub const TOKENIZER: &str = "text_tokenizer";
/// Manifest name of the sentence encoder.
pub const ENCODER: &str = "text_encoder";
/// Manifest name of the sentiment head.
pub const HEAD: &str = "text_sentiment";

/// The sentiment head: embedding [1, 384] → raw logits [1, 3], calibrated by a temperature.
pub struct SentimentHead {
    model: OnnxModel,
    temperature: f32,
}

impl std::fmt::Debug for SentimentHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SentimentHead({}, T={})", self.model.path().display(), self.temperature)
    }
}

impl SentimentHead {
    /// Loads the head at `path`; its manifest `entry` must give `labels` = negative, neutral,
    /// positive and a positive `temperature`.
    pub fn load(path: &Path, entry: &ModelEntry) -> Result<SentimentHead> {
        let bad = |m: String| Error::Model { path: path.to_path_buf(), message: m };
        entry.require_labels(path, &LABELS)?;
        let t = entry
            .extra
            .get("temperature")
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)));
        let temperature = match t {
            Some(t) if t.is_finite() && t > 0.0 => t as f32,
            _ => {
                return Err(bad(format!(
                    "manifest entry `{}` has temperature {:?}; allowed a number > 0",
                    entry.name,
                    entry.extra.get("temperature").map(|v| v.to_string())
                )))
            }
        };
        let model = OnnxModel::load_f32(path, &[&[1, EMBEDDING_DIM]])?.expect_outputs(&[Some(&[1, 3])])?;
        Ok(SentimentHead { model, temperature })
    }

    /// Raw logits (negative, neutral, positive) for one 384-d embedding.
    pub fn logits(&mut self, embedding: &[f32]) -> Result<[f32; 3]> {
        if embedding.len() != EMBEDDING_DIM {
            return Err(Error::Model {
                path: self.model.path().to_path_buf(),
                message: format!("embedding has {} values; allowed {EMBEDDING_DIM}", embedding.len()),
            });
        }
        let out = self.model.run_f32(vec![(&[1, EMBEDDING_DIM], embedding.to_vec())])?;
        match out.first().map(|v| v.as_slice()) {
            Some(&[a, b, c]) if a.is_finite() && b.is_finite() && c.is_finite() => Ok([a, b, c]),
            other => Err(Error::Model {
                path: self.model.path().to_path_buf(),
                message: format!("expected 3 finite logits, got {other:?}"),
            }),
        }
    }

    /// Calibrated probabilities: softmax(logits / temperature).
    pub fn probs(&mut self, embedding: &[f32]) -> Result<[f32; 3]> {
        Ok(crate::labels::softmax3(&self.logits(embedding)?, self.temperature))
    }

    /// The calibration temperature from the manifest.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }
}

/// What one text says: calibrated class probabilities, the winning label, a signed score and
/// the sentence embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSentiment {
    /// Probabilities in [`LABELS`] order (negative, neutral, positive); they sum to 1.
    pub probs: [f32; 3],
    /// The most probable label.
    pub label: &'static str,
    /// p(positive) − p(negative), in [−1, 1].
    pub score: f32,
    /// The largest probability.
    pub confidence: f32,
    /// The 384-d unit-length MiniLM embedding.
    pub embedding: Vec<f32>,
    /// Token ids fed to the encoder, `[CLS]` and `[SEP]` included (2 to 256).
    pub tokens: usize,
}

impl TextSentiment {
    /// Builds the result from calibrated probabilities.
    pub fn from_probs(probs: [f32; 3], embedding: Vec<f32>, tokens: usize) -> TextSentiment {
        let (i, &confidence) =
            probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap_or((1, &probs[1]));
        TextSentiment {
            probs,
            label: LABELS[i],
            score: (probs[2] - probs[0]).clamp(-1.0, 1.0),
            confidence,
            embedding,
            tokens,
        }
    }
}

/// The whole text stage: tokenizer, encoder and head, with one reusable run state each.
/// Not shared between threads; it is `Send`, so it can be moved into its own.
#[derive(Debug)]
pub struct TextModel {
    tokenizer: TextTokenizer,
    encoder: TextEncoder,
    head: SentimentHead,
    versions: BTreeMap<String, String>,
}

impl TextModel {
    /// Loads `text_tokenizer`, `text_encoder` and `text_sentiment` from the models folder
    /// (sha256-checked when `models.verify`); a missing or corrupt file is an error naming it.
    pub fn load(models: &ModelsConfig) -> Result<TextModel> {
        let mut versions = BTreeMap::new();
        let mut find = |name: &str| -> Result<(PathBuf, ModelEntry)> {
            let (p, e) = model::locate(&models.dir, name, models.verify)?;
            versions.insert(name.to_string(), e.version());
            Ok((p, e))
        };
        let (tok_path, _) = find(TOKENIZER)?;
        let (enc_path, _) = find(ENCODER)?;
        let (head_path, head_entry) = find(HEAD)?;
        Ok(TextModel {
            tokenizer: TextTokenizer::load(&tok_path)?,
            encoder: TextEncoder::load(&enc_path)?,
            head: SentimentHead::load(&head_path, &head_entry)?,
            versions,
        })
    }

    /// Sentiment of one text (any UTF-8; empty is valid, long text is truncated to 256 tokens).
    pub fn analyze(&mut self, text: &str) -> Result<TextSentiment> {
        let ids = self.tokenizer.encode(text)?;
        let embedding = self.encoder.embed(&ids)?;
        let probs = self.head.probs(&embedding)?;
        Ok(TextSentiment::from_probs(probs, embedding, ids.len()))
    }

    /// Model name → `file@sha256-prefix` (12 hex digits), for the interval messages.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.versions.clone()
    }

    /// Class names in probability order: negative, neutral, positive.
    pub fn labels(&self) -> [&'static str; 3] {
        LABELS
    }

    /// The tokenizer (for tests and benchmarks).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The encoder (for tests and benchmarks).
    pub fn encoder_mut(&mut self) -> &mut TextEncoder {
        &mut self.encoder
    }

    /// The head (for tests and benchmarks).
    pub fn head_mut(&mut self) -> &mut SentimentHead {
        &mut self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentiment_fields() {
        let s = TextSentiment::from_probs([0.7, 0.2, 0.1], vec![], 5);
        assert_eq!(s.label, "negative");
        assert!((s.score + 0.6).abs() < 1e-6);
        assert_eq!(s.confidence, 0.7);
    }

    #[test]
    fn text_model_is_send() {
        fn send<T: Send>() {}
        send::<TextModel>();
    }
}
