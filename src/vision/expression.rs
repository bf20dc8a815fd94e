//! Facial expression: a grey 64×64 crop of the eye-levelled face, classified into 7 classes and
//! calibrated with the temperature from the model's manifest entry.

use super::align::{crop_gray, rotation_from, Roi};
use super::mesh::{idx, Landmarks};
use crate::error::{Error, Result};
use crate::model::{ModelEntry, OnnxModel};
use std::path::Path;

/// Crop side.
pub const INPUT: usize = 64;
/// Face crop side relative to the landmarks' extent (FER2013 faces are tight crops).
pub const CROP_SCALE: f32 = 1.1;

/// The expression classifier.
#[derive(Debug)]
pub struct ExpressionModel {
    model: OnnxModel,
    /// Class names in output order.
    pub labels: Vec<String>,
    /// Temperature for calibration (1 = none).
    pub temperature: f32,
    /// The model returns probabilities (softmax inside) rather than logits.
    pub outputs_probs: bool,
}

/// The crop the expression model sees: eyes level, square around the landmarks.
pub fn expression_roi(lm: &Landmarks) -> Roi {
    let rotation = rotation_from(lm.xy(idx::RIGHT_EYE_OUTER), lm.xy(idx::LEFT_EYE_OUTER));
    let mut r = lm.next_roi();
    r.rotation = rotation;
    r.size = r.size / super::mesh::SCALE * CROP_SCALE;
    r
}

/// Softmax of `logits / t`.
pub fn softmax_t(logits: &[f32], t: f32) -> Vec<f32> {
    let m = logits.iter().fold(f32::MIN, |a, &b| a.max(b / t));
    let e: Vec<f32> = logits.iter().map(|&l| (l / t - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

impl ExpressionModel {
    /// Loads the model named by a manifest entry (labels, temperature, output kind from it).
    pub fn load(path: &Path, entry: &ModelEntry) -> Result<ExpressionModel> {
        let labels: Vec<String> = entry
            .extra
            .get("labels")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        if labels.len() != 7 {
            return Err(Error::Model {
                path: path.to_path_buf(),
                message: format!("manifest entry `{}` needs `labels` with 7 classes", entry.name),
            });
        }
        let temperature = entry.extra.get("temperature").and_then(|v| v.as_float()).unwrap_or(1.0) as f32;
        let outputs = entry.extra.get("outputs").map(|v| v.to_string()).unwrap_or_default();
        let outputs_probs =
            outputs.contains("softmax probabilities") || outputs.contains("probabilities in label order");
        Ok(ExpressionModel {
            model: OnnxModel::load_f32(path, &[&[1, INPUT, INPUT, 1]])?,
            labels,
            temperature,
            outputs_probs,
        })
    }

    /// Calibrated class probabilities for the face in `roi`.
    pub fn classify(&mut self, rgb: &[u8], w: usize, h: usize, roi: &Roi) -> Result<Vec<f32>> {
        let input = crop_gray(rgb, w, h, roi, INPUT, |v| (v / 255.0 - 0.5) * 2.0);
        let out = self.model.run_f32(vec![(&[1, INPUT, INPUT, 1], input)])?;
        let raw = &out[0];
        Ok(if self.outputs_probs {
            // Calibrate probabilities: softmax(ln p / T).
            let logp: Vec<f32> = raw.iter().map(|p| p.max(1e-12).ln()).collect();
            softmax_t(&logp, self.temperature)
        } else {
            softmax_t(raw, self.temperature)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_with_temperature() {
        let p = softmax_t(&[0.0, 0.0], 1.0);
        assert_eq!(p, vec![0.5, 0.5]);
        let p = softmax_t(&[2.0f32.ln(), 0.0], 1.0);
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-6);
        // A higher temperature flattens: ln-probs (ln 0.8, ln 0.2) at T=2 → (2/3, 1/3).
        let p = softmax_t(&[0.8f32.ln(), 0.2f32.ln()], 2.0);
        assert!((p[0] - 2.0 / 3.0).abs() < 1e-6, "{p:?}");
    }
}
