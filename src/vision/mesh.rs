//! Face geometry with FaceMesh (mediapipe 0.10.14): a 192×192 crop around the face, rotated so
//! the eyes are level, gives 468 3-D landmarks and a face-presence score. The landmarks of one
//! frame give the crop of the next (tracking), so the detector runs only when tracking is lost.

use super::align::{crop_into, rotation_from, CropColor, Roi};
use super::detect::Detection;
use crate::error::Result;
use crate::model::OnnxModel;
use std::path::Path;

/// Model input side.
pub const INPUT: usize = 192;
/// Number of landmarks.
pub const LANDMARKS: usize = 468;
/// Crop enlargement around a face box (mediapipe's 1.5).
pub const SCALE: f32 = 1.5;

/// Landmark indices used by the cues and the tracker (mediapipe's canonical face mesh).
pub mod idx {
    /// Right eye, outer corner (image left for a frontal face).
    pub const RIGHT_EYE_OUTER: usize = 33;
    /// Right eye, inner corner.
    pub const RIGHT_EYE_INNER: usize = 133;
    /// Right eye, upper lid.
    pub const RIGHT_EYE_TOP: usize = 159;
    /// Right eye, lower lid.
    pub const RIGHT_EYE_BOTTOM: usize = 145;
    /// Left eye, outer corner.
    pub const LEFT_EYE_OUTER: usize = 263;
    /// Left eye, inner corner.
    pub const LEFT_EYE_INNER: usize = 362;
    /// Left eye, upper lid.
    pub const LEFT_EYE_TOP: usize = 386;
    /// Left eye, lower lid.
    pub const LEFT_EYE_BOTTOM: usize = 374;
    /// Right brow, middle of its lower edge.
    pub const RIGHT_BROW: usize = 105;
    /// Left brow, middle of its lower edge.
    pub const LEFT_BROW: usize = 334;
    /// Right mouth corner.
    pub const MOUTH_RIGHT: usize = 61;
    /// Left mouth corner.
    pub const MOUTH_LEFT: usize = 291;
    /// Upper lip, inner middle.
    pub const LIP_TOP: usize = 13;
    /// Lower lip, inner middle.
    pub const LIP_BOTTOM: usize = 14;
    /// Nose tip.
    pub const NOSE_TIP: usize = 1;
    /// Forehead top (mid-line).
    pub const FOREHEAD: usize = 10;
    /// Chin (mid-line).
    pub const CHIN: usize = 152;
    /// Right cheek edge.
    pub const RIGHT_CHEEK: usize = 234;
    /// Left cheek edge.
    pub const LEFT_CHEEK: usize = 454;
}

/// 468 landmarks: x, y in frame pixels and z (relative depth, same scale as x).
#[derive(Debug, Clone, PartialEq)]
pub struct Landmarks {
    /// Points in frame pixels (z in pixels too, smaller = closer to the camera).
    pub points: Vec<[f32; 3]>,
    /// Face-presence probability from the model.
    pub presence: f32,
    /// The crop the landmarks were computed in.
    pub roi: Roi,
}

impl Landmarks {
    /// One landmark as (x, y).
    pub fn xy(&self, i: usize) -> (f32, f32) {
        (self.points[i][0], self.points[i][1])
    }

    /// Axis-aligned bounding box (x, y, w, h) in frame pixels.
    pub fn bbox(&self) -> (f32, f32, f32, f32) {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in &self.points {
            x0 = x0.min(p[0]);
            y0 = y0.min(p[1]);
            x1 = x1.max(p[0]);
            y1 = y1.max(p[1]);
        }
        (x0, y0, x1 - x0, y1 - y0)
    }

    /// The crop for the next frame: around these landmarks, eyes level, enlarged by [`SCALE`].
    pub fn next_roi(&self) -> Roi {
        let rotation = rotation_from(self.xy(idx::RIGHT_EYE_OUTER), self.xy(idx::LEFT_EYE_OUTER));
        // Size measured in the rotated frame, so a tilted head does not inflate the crop.
        let (s, c) = rotation.sin_cos();
        let (cx, cy) = {
            let (x, y, w, h) = self.bbox();
            (x + w / 2.0, y + h / 2.0)
        };
        let (mut u0, mut v0, mut u1, mut v1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in &self.points {
            let (dx, dy) = (p[0] - cx, p[1] - cy);
            let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
            u0 = u0.min(u);
            v0 = v0.min(v);
            u1 = u1.max(u);
            v1 = v1.max(v);
        }
        let (mu, mv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
        Roi {
            cx: cx + mu * c - mv * s,
            cy: cy + mu * s + mv * c,
            size: (u1 - u0).max(v1 - v0) * SCALE,
            rotation,
        }
    }
}

/// The crop for a fresh detection: box centre, eyes level (keypoints 0 and 1), enlarged by [`SCALE`].
pub fn roi_from_detection(d: &Detection) -> Roi {
    let (cx, cy) = d.center();
    Roi { cx, cy, size: d.w.max(d.h) * SCALE, rotation: rotation_from(d.keypoints[0], d.keypoints[1]) }
}

/// The FaceMesh model.
#[derive(Debug)]
pub struct FaceMesh {
    model: OnnxModel,
}

impl FaceMesh {
    /// Loads the model file.
    pub fn load(path: &Path) -> Result<FaceMesh> {
        Ok(FaceMesh { model: OnnxModel::load_f32(path, &[&[1, INPUT, INPUT, 3]])? })
    }

    /// Runs on the crop `roi` of an RGB24 frame.
    pub fn landmarks(&mut self, rgb: &[u8], w: usize, h: usize, roi: Roi) -> Result<Landmarks> {
        let out = self.model.run_f32_filled(&[1, INPUT, INPUT, 3], |dst| {
            crop_into(CropColor::Rgb, rgb, w, h, &roi, INPUT, |v| v / 255.0, dst)
        })?;
        let (pts, logit) =
            if out[0].len() == LANDMARKS * 3 { (&out[0], out[1][0]) } else { (&out[1], out[0][0]) };
        let s = INPUT as f32;
        // `roi.to_frame` per point, with its sin_cos taken once.
        let (sin, cos) = roi.rotation.sin_cos();
        let points = pts
            .chunks_exact(3)
            .map(|p| {
                let (dx, dy) = ((p[0] / s - 0.5) * roi.size, (p[1] / s - 0.5) * roi.size);
                [roi.cx + dx * cos - dy * sin, roi.cy + dx * sin + dy * cos, p[2] / s * roi.size]
            })
            .collect();
        Ok(Landmarks { points, presence: 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp()), roi })
    }
}
