//! Facial expression: a grey square crop of the eye-levelled face, classified into 7 classes and
//! calibrated with the temperature from the model's manifest entry. The crop side
//! (`input_size`, default 64) and the pixel range (`input_range = [lo, hi]`: pixel 0 → lo,
//! 255 → hi, default [-1, 1]) come from the manifest entry too, so a model with another input
//! needs no code change.

use super::align::{crop_into, rotation_from, CropColor, Roi};
use super::mesh::{idx, Landmarks};
use crate::error::{Error, Result};
use crate::model::{ModelEntry, OnnxModel};
use std::path::Path;

/// Crop side when the manifest entry has no `input_size` (fer's mini-XCEPTION).
pub const INPUT: usize = 64;
/// Pixel range when the manifest entry has no `input_range`: 0 → -1, 255 → 1.
pub const INPUT_RANGE: [f32; 2] = [-1.0, 1.0];
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
    /// Crop side in pixels (square, grey).
    pub input_size: usize,
    /// Value of pixel 0 and of pixel 255 at the model input.
    pub input_range: [f32; 2],
}

/// The crop the expression model sees: eyes level, square around the landmarks.
pub fn expression_roi(lm: &Landmarks) -> Roi {
    let rotation = rotation_from(lm.xy(idx::RIGHT_EYE_OUTER), lm.xy(idx::LEFT_EYE_OUTER));
    let mut r = lm.next_roi();
    r.rotation = rotation;
    r.size = r.size / super::mesh::SCALE * CROP_SCALE;
    r
}

pub use crate::labels::softmax_t;

/// Crop side and pixel range from the manifest entry (`input_size`, `input_range`), with the
/// fer baseline's 64 and [-1, 1] when absent.
pub fn input_spec(path: &Path, entry: &ModelEntry) -> Result<(usize, [f32; 2])> {
    let bad = |message: String| Error::Model { path: path.to_path_buf(), message };
    let input_size = match entry.extra.get("input_size") {
        None => INPUT,
        Some(v) => match v.as_integer() {
            Some(n) if (8..=512).contains(&n) => n as usize,
            _ => return Err(bad(format!("manifest `input_size` = {v}; allowed: an integer 8 to 512"))),
        },
    };
    let input_range = match entry.extra.get("input_range") {
        None => INPUT_RANGE,
        Some(v) => {
            let r: Vec<f32> = v
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_float().or(x.as_integer().map(|i| i as f64))).collect())
                .unwrap_or_else(Vec::new)
                .into_iter()
                .map(|x: f64| x as f32)
                .collect();
            match r[..] {
                [lo, hi] if lo != hi && lo.is_finite() && hi.is_finite() => [lo, hi],
                _ => {
                    return Err(bad(format!(
                        "manifest `input_range` = {v}; allowed: [lo, hi], two different numbers"
                    )))
                }
            }
        }
    };
    Ok((input_size, input_range))
}

impl ExpressionModel {
    /// Loads the model named by a manifest entry (labels, temperature, output kind from it).
    pub fn load(path: &Path, entry: &ModelEntry) -> Result<ExpressionModel> {
        let labels = entry.labels();
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
        let (input_size, input_range) = input_spec(path, entry)?;
        Ok(ExpressionModel {
            model: OnnxModel::load_f32(path, &[&[1, input_size, input_size, 1]])?,
            labels,
            temperature,
            outputs_probs,
            input_size,
            input_range,
        })
    }

    /// The model input value of a grey level `v` in 0..=255.
    pub fn normalise(&self, v: f32) -> f32 {
        let [lo, hi] = self.input_range;
        lo + v / 255.0 * (hi - lo)
    }

    /// Calibrated class probabilities for the face in `roi`.
    pub fn classify(&mut self, rgb: &[u8], w: usize, h: usize, roi: &Roi) -> Result<Vec<f32>> {
        let n = self.input_size;
        let [lo, hi] = self.input_range;
        let out = self.model.run_f32_filled(&[1, n, n, 1], |dst| {
            crop_into(CropColor::Gray, rgb, w, h, roi, n, |v| lo + v / 255.0 * (hi - lo), dst)
        })?;
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

    fn entry(extra: &str) -> ModelEntry {
        toml::from_str(&format!(
            "name = \"e\"\nfile = \"e.onnx\"\nsha256 = \"\"\nbytes = 0\nsource = \"\"\nlicence = \"\"\n\
             conversion = \"\"\ninputs = \"\"\noutputs = \"\"\naccuracy = \"\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn input_size_and_range_come_from_the_manifest() {
        let p = Path::new("e.onnx");
        assert_eq!(input_spec(p, &entry("")).unwrap(), (64, [-1.0, 1.0]));
        assert_eq!(
            input_spec(p, &entry("input_size = 48\ninput_range = [0, 1.0]")).unwrap(),
            (48, [0.0, 1.0])
        );
        assert!(input_spec(p, &entry("input_size = 2")).is_err());
        assert!(input_spec(p, &entry("input_range = [1.0, 1.0]")).is_err());
        assert!(input_spec(p, &entry("input_range = [\"a\"]")).is_err());
    }

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
