//! Face detection with BlazeFace short-range (mediapipe 0.10.14, 128×128 input, 896 anchors):
//! letterbox, run, decode anchors, weighted non-maximum suppression.

use super::align::{crop_into, CropColor, Letterbox};
use crate::error::Result;
use crate::model::OnnxModel;
use std::path::Path;

/// Model input side.
pub const INPUT: usize = 128;

/// One detected face in frame pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// Detection score in [0, 1].
    pub score: f32,
    /// Six keypoints: right eye, left eye, nose tip, mouth centre, right ear, left ear.
    pub keypoints: [(f32, f32); 6],
}

impl Detection {
    /// Box area in pixels².
    pub fn area(&self) -> f32 {
        self.w * self.h
    }

    /// Box centre.
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// Anchor centres of the short-range model: strides 8 (2 per cell) and 16 (6 per cell).
pub fn anchors() -> Vec<(f32, f32)> {
    let mut a = Vec::with_capacity(896);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                for _ in 0..per_cell {
                    a.push(((x as f32 + 0.5) / grid as f32, (y as f32 + 0.5) / grid as f32));
                }
            }
        }
    }
    a
}

/// Intersection over union of two boxes.
pub fn iou(a: &Detection, b: &Detection) -> f32 {
    let x1 = a.x.max(b.x);
    let y1 = a.y.max(b.y);
    let x2 = (a.x + a.w).min(b.x + b.w);
    let y2 = (a.y + a.h).min(b.y + b.h);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a.area() + b.area() - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Weighted non-maximum suppression (mediapipe's WEIGHTED mode): overlapping candidates are
/// averaged, weighted by score; the cluster keeps its best score.
pub fn weighted_nms(mut cands: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    // A total order (score, then geometry): the result does not depend on the input order, even
    // with tied scores.
    cands.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.x.total_cmp(&b.x))
            .then(a.y.total_cmp(&b.y))
            .then(a.w.total_cmp(&b.w))
            .then(a.h.total_cmp(&b.h))
    });
    let mut out = Vec::new();
    while !cands.is_empty() {
        let best = cands[0].clone();
        let (cluster, rest): (Vec<Detection>, Vec<Detection>) =
            cands.into_iter().partition(|c| iou(&best, c) > iou_threshold);
        cands = rest;
        let total: f32 = cluster.iter().map(|c| c.score).sum();
        let mut merged = best.clone();
        if total > 0.0 {
            let avg =
                |f: &dyn Fn(&Detection) -> f32| cluster.iter().map(|c| f(c) * c.score).sum::<f32>() / total;
            merged.x = avg(&|c| c.x);
            merged.y = avg(&|c| c.y);
            merged.w = avg(&|c| c.w);
            merged.h = avg(&|c| c.h);
            for k in 0..6 {
                merged.keypoints[k] = (avg(&|c| c.keypoints[k].0), avg(&|c| c.keypoints[k].1));
            }
        }
        out.push(merged);
    }
    out
}

/// Decodes raw model outputs (896×16 regressors, 896 logits) into letterboxed-normalised
/// candidates above `min_score`.
pub fn decode(regressors: &[f32], logits: &[f32], anchors: &[(f32, f32)], min_score: f32) -> Vec<Detection> {
    let mut out = Vec::new();
    for (i, &(ax, ay)) in anchors.iter().enumerate() {
        let score = 1.0 / (1.0 + (-logits[i].clamp(-100.0, 100.0)).exp());
        if score < min_score {
            continue;
        }
        let r = &regressors[i * 16..i * 16 + 16];
        let s = INPUT as f32;
        let (cx, cy, w, h) = (r[0] / s + ax, r[1] / s + ay, r[2] / s, r[3] / s);
        let mut keypoints = [(0.0, 0.0); 6];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = (r[4 + 2 * k] / s + ax, r[5 + 2 * k] / s + ay);
        }
        out.push(Detection { x: cx - w / 2.0, y: cy - h / 2.0, w, h, score, keypoints });
    }
    out
}

/// The BlazeFace detector.
#[derive(Debug)]
pub struct FaceDetector {
    model: OnnxModel,
    anchors: Vec<(f32, f32)>,
    /// Minimum detection score.
    pub min_score: f32,
}

impl FaceDetector {
    /// Loads the model file.
    pub fn load(path: &Path, min_score: f32) -> Result<FaceDetector> {
        Ok(FaceDetector {
            model: OnnxModel::load_f32(path, &[&[1, INPUT, INPUT, 3]])?,
            anchors: anchors(),
            min_score,
        })
    }

    /// Detects faces in an RGB24 frame; boxes in frame pixels, best first.
    pub fn detect(&mut self, rgb: &[u8], w: usize, h: usize) -> Result<Vec<Detection>> {
        let lb = Letterbox::new(w, h);
        let out = self.model.run_f32_filled(&[1, INPUT, INPUT, 3], |dst| {
            crop_into(CropColor::Rgb, rgb, w, h, &lb.roi(), INPUT, |v| v / 127.5 - 1.0, dst)
        })?;
        let (regressors, logits) =
            if out[0].len() == 896 * 16 { (&out[0], &out[1]) } else { (&out[1], &out[0]) };
        let cands = decode(regressors, logits, &self.anchors, self.min_score);
        let mut faces = weighted_nms(cands, 0.3);
        for f in faces.iter_mut() {
            let (x0, y0) = lb.to_frame(f.x, f.y);
            let (x1, y1) = lb.to_frame(f.x + f.w, f.y + f.h);
            *f = Detection {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
                score: f.score,
                keypoints: f.keypoints.map(|(u, v)| lb.to_frame(u, v)),
            };
        }
        Ok(faces)
    }
}

/// The customer by the default policy: the largest face, ties broken by closeness to the frame
/// centre (see [`super::customer::CustomerPolicy`] for the others).
pub fn pick_customer(faces: &[Detection], w: usize, h: usize) -> Option<&Detection> {
    super::customer::CustomerPolicy::Largest.pick(faces, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, w: f32, h: f32, score: f32) -> Detection {
        Detection { x, y, w, h, score, keypoints: [(x, y); 6] }
    }

    #[test]
    fn anchor_layout() {
        let a = anchors();
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], (1.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], (3.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[512], (1.0 / 16.0, 1.0 / 16.0));
        assert_eq!(a[895], (15.0 / 16.0, 15.0 / 16.0));
    }

    #[test]
    fn decode_applies_anchor_offsets_and_sigmoid() {
        let anchors = vec![(0.5, 0.5), (0.25, 0.25)];
        let mut reg = vec![0.0; 32];
        reg[0] = 12.8; // +0.1 in x
        reg[2] = 64.0; // w 0.5
        reg[3] = 32.0; // h 0.25
        let d = decode(&reg, &[2.0, -5.0], &anchors, 0.5);
        assert_eq!(d.len(), 1);
        assert!((d[0].score - 0.880797).abs() < 1e-5);
        assert!((d[0].x - (0.6 - 0.25)).abs() < 1e-6 && (d[0].y - (0.5 - 0.125)).abs() < 1e-6);
        assert!((d[0].w - 0.5).abs() < 1e-6 && (d[0].h - 0.25).abs() < 1e-6);
    }

    #[test]
    fn nms_merges_overlaps_weighted_and_keeps_separate_faces() {
        let out = weighted_nms(
            vec![
                det(0.0, 0.0, 10.0, 10.0, 0.9),
                det(1.0, 0.0, 10.0, 10.0, 0.3),
                det(50.0, 50.0, 10.0, 10.0, 0.8),
            ],
            0.3,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert!((out[0].x - 0.25).abs() < 1e-6, "weighted x = (0*0.9 + 1*0.3)/1.2 = 0.25, got {}", out[0].x);
        assert_eq!(out[1].x, 50.0);
    }

    #[test]
    fn iou_values() {
        assert_eq!(iou(&det(0.0, 0.0, 10.0, 10.0, 1.0), &det(0.0, 0.0, 10.0, 10.0, 1.0)), 1.0);
        assert_eq!(iou(&det(0.0, 0.0, 10.0, 10.0, 1.0), &det(20.0, 0.0, 10.0, 10.0, 1.0)), 0.0);
        assert!(
            (iou(&det(0.0, 0.0, 10.0, 10.0, 1.0), &det(5.0, 0.0, 10.0, 10.0, 1.0)) - 1.0 / 3.0).abs() < 1e-6
        );
    }

    #[test]
    fn customer_is_largest_then_most_central() {
        let faces = vec![
            det(0.0, 0.0, 20.0, 20.0, 0.9),
            det(40.0, 40.0, 30.0, 30.0, 0.6),
            det(80.0, 80.0, 10.0, 10.0, 0.99),
        ];
        assert_eq!(pick_customer(&faces, 100, 100).unwrap().w, 30.0);
        let similar = vec![det(0.0, 0.0, 30.0, 30.0, 0.9), det(35.0, 35.0, 29.0, 29.0, 0.6)];
        assert_eq!(pick_customer(&similar, 100, 100).unwrap().x, 35.0);
    }
}
