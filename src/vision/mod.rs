//! Vision branch: what is seen in each analysed frame. Face detection ([`detect`]) runs only when
//! tracking is lost; FaceMesh ([`mesh`]) gives 468 landmarks on an eye-levelled crop ([`align`]);
//! the landmarks give the cue vector ([`cues`]) and the crop for expression ([`expression`]).
//! Whose face that is — the customer, not the clerk — is [`customer`]'s choice.

pub mod align;
pub mod cues;
pub mod customer;
pub mod detect;
pub mod expression;
pub mod mesh;

use crate::config::{ModelsConfig, VisionConfig};
use crate::error::Result;
use crate::message::{FaceObs, Frame, FrameObs};
use crate::model;
use std::collections::BTreeMap;
use std::time::Instant;

/// The three vision models, loaded once.
#[derive(Debug)]
pub struct VisionModels {
    detector: detect::FaceDetector,
    mesh: mesh::FaceMesh,
    expression: expression::ExpressionModel,
    min_presence: f32,
    customer: customer::CustomerPolicy,
    customer_gap_s: f64,
    expression_every: u32,
    /// Model name → `file@sha256-prefix`, for the interval messages.
    pub versions: BTreeMap<String, String>,
}

impl VisionModels {
    /// Loads the models named in the config from the models folder (checked against the manifest).
    pub fn load(models: &ModelsConfig, cfg: &VisionConfig) -> Result<VisionModels> {
        let mut versions = BTreeMap::new();
        let mut find = |name: &str| -> Result<(std::path::PathBuf, model::ModelEntry)> {
            let (p, e) = model::locate(&models.dir, name, models.verify)?;
            versions.insert(name.to_string(), e.version());
            Ok((p, e))
        };
        let (det_path, _) = find("face_detection")?;
        let (mesh_path, _) = find("face_landmark")?;
        let (expr_path, expr_entry) = find(&cfg.expression_model)?;
        Ok(VisionModels {
            detector: detect::FaceDetector::load(&det_path, cfg.min_detection_score)?,
            mesh: mesh::FaceMesh::load(&mesh_path)?,
            expression: expression::ExpressionModel::load(&expr_path, &expr_entry)?,
            min_presence: cfg.min_face_presence,
            customer: cfg.customer,
            customer_gap_s: cfg.customer_gap_s,
            expression_every: cfg.expression_every.max(1),
            versions,
        })
    }

    /// Expression class names in output order.
    pub fn labels(&self) -> &[String] {
        &self.expression.labels
    }

    /// Expression probabilities of an image that is itself a tight face crop (FER-style): no
    /// detection, no landmarks, the whole image centred.
    pub fn classify_face_crop(&mut self, rgb: &[u8], w: usize, h: usize) -> Result<Vec<f32>> {
        let roi = align::Roi { cx: w as f32 / 2.0, cy: h as f32 / 2.0, size: w.max(h) as f32, rotation: 0.0 };
        self.expression.classify(rgb, w, h, &roi)
    }
}

/// The per-frame vision stage.
#[derive(Debug, Default)]
pub struct VisionStage {
    last_seq: Option<u64>,
    models: Option<VisionModels>,
    track: Option<align::Roi>,
    customer: customer::CustomerTracker,
    /// The last expression output and how many face frames have reused it
    /// (`vision.expression_every`).
    held_expression: Option<(Vec<f32>, u32)>,
}

impl VisionStage {
    /// A stage that only measures frames (no models).
    pub fn new() -> Self {
        VisionStage::default()
    }

    /// A stage that runs the face models.
    pub fn with_models(models: VisionModels) -> Self {
        let customer = customer::CustomerTracker::new(models.customer, models.customer_gap_s);
        VisionStage { models: Some(models), customer, ..Default::default() }
    }

    /// The vision stage a config asks for: with the face models (loaded and checked here) when
    /// `vision.enabled`, else frame statistics only.
    pub fn from_config(cfg: &crate::config::Config) -> crate::Result<Self> {
        Ok(if cfg.vision.enabled {
            VisionStage::with_models(VisionModels::load(&cfg.models, &cfg.vision)?)
        } else {
            VisionStage::new()
        })
    }

    /// The loaded models, when the stage runs them.
    pub fn models_mut(&mut self) -> Option<&mut VisionModels> {
        self.models.as_mut()
    }

    /// Forgets the tracked face, so the next frame runs the detector (and its face, if any,
    /// is a new customer).
    pub fn reset_tracking(&mut self) {
        self.track = None;
        self.held_expression = None;
        self.customer.forget();
    }

    /// The crop FaceMesh will use on the next frame, while a face is tracked.
    pub fn tracked_roi(&self) -> Option<align::Roi> {
        self.track
    }

    /// Model versions used (empty without models).
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.models.as_ref().map(|m| m.versions.clone()).unwrap_or_default()
    }

    /// Expression labels (empty without models).
    pub fn labels(&self) -> Vec<String> {
        self.models.as_ref().map(|m| m.labels().to_vec()).unwrap_or_default()
    }

    /// Analyses one frame.
    pub fn process(&mut self, frame: &Frame) -> Result<FrameObs> {
        let dropped_before = match self.last_seq {
            Some(prev) => frame.seq.saturating_sub(prev + 1),
            None => frame.seq,
        };
        self.last_seq = Some(frame.seq);
        let started = Instant::now();
        let face = match self.models.as_mut() {
            None => None,
            Some(m) => {
                let (w, h) = (frame.width as usize, frame.height as usize);
                let mut detected = false;
                let mut found = None;
                // A face is accepted only where the customer policy admits its centre (a region
                // excludes the staff side), while tracking as well as after detection.
                let (min_presence, policy) = (m.min_presence, *self.customer.policy());
                let admitted = |lm: &mesh::Landmarks| {
                    let (x, y, bw, bh) = lm.bbox();
                    lm.presence >= min_presence && policy.admits(x + bw / 2.0, y + bh / 2.0, w, h)
                };
                if let Some(roi) = self.track.take() {
                    let lm = m.mesh.landmarks(&frame.rgb, w, h, roi)?;
                    if admitted(&lm) {
                        found = Some((lm, None));
                    }
                }
                if found.is_none() {
                    detected = true;
                    let faces = m.detector.detect(&frame.rgb, w, h)?;
                    if let Some(d) = self.customer.choose(&faces, w, h, frame.t) {
                        let lm = m.mesh.landmarks(&frame.rgb, w, h, mesh::roi_from_detection(d))?;
                        if admitted(&lm) {
                            found = Some((lm, Some(d.score)));
                        }
                    }
                }
                match found {
                    None => {
                        self.held_expression = None;
                        None
                    }
                    Some((lm, det_score)) => {
                        self.track = Some(lm.next_roi());
                        let (x, y, bw, bh) = lm.bbox();
                        let (number, new_customer) = self.customer.seen([x, y, bw, bh], frame.t);
                        // `expression_every` > 1: hold the last output on tracked frames of the
                        // same customer; a detection or a new customer runs the model again.
                        let probs = match self.held_expression.take() {
                            Some((p, n)) if !detected && !new_customer && n + 1 < m.expression_every => {
                                self.held_expression = Some((p.clone(), n + 1));
                                p
                            }
                            _ => {
                                let p = m.expression.classify(
                                    &frame.rgb,
                                    w,
                                    h,
                                    &expression::expression_roi(&lm),
                                )?;
                                if m.expression_every > 1 {
                                    self.held_expression = Some((p.clone(), 0));
                                }
                                p
                            }
                        };
                        Some(FaceObs {
                            bbox: [x, y, bw, bh],
                            presence: lm.presence,
                            detection_score: det_score,
                            detector_ran: detected,
                            cues: cues::compute(&lm, h as f32),
                            expression: probs,
                            customer: number,
                            new_customer,
                        })
                    }
                }
            }
        };
        Ok(FrameObs {
            seq: frame.seq,
            t: frame.t,
            dropped_before,
            luma_mean: luma_mean(&frame.rgb),
            face,
            process_ms: started.elapsed().as_secs_f32() * 1000.0,
        })
    }
}

/// Mean BT.601 luma of an RGB24 buffer, in [0, 1] (every 4th pixel; it is an exposure check).
/// Summed exactly in integers (weights ×1000), so the only rounding is the final division.
pub fn luma_mean(rgb: &[u8]) -> f32 {
    let mut sum = 0u64;
    let mut n = 0u64;
    for px in rgb.chunks_exact(12) {
        sum += 299 * px[0] as u64 + 587 * px[1] as u64 + 114 * px[2] as u64;
        n += 1;
    }
    // A last partial group of 4 pixels still has its first pixel sampled.
    if rgb.len() % 12 >= 3 {
        let px = &rgb[rgb.len() - rgb.len() % 12..];
        sum += 299 * px[0] as u64 + 587 * px[1] as u64 + 114 * px[2] as u64;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        (sum as f64 / 1000.0 / n as f64 / 255.0) as f32
    }
}

/// Per-interval summary of the face modality, built from the frames' [`FaceObs`].
#[derive(Debug, Clone, Default)]
pub struct FaceAcc {
    frames: u64,
    faces: u64,
    presence: f64,
    expression: Vec<f64>,
    cues: [f64; 8],
    blinks: u64,
    averted: u64,
    detector_runs: u64,
    process_ms: f64,
    eyes_were_closed: bool,
    bbox: [f64; 4],
    customer: Option<u64>,
    new_customer: bool,
}

impl FaceAcc {
    /// Adds one analysed frame.
    pub fn add(&mut self, obs: &FrameObs) {
        self.frames += 1;
        self.process_ms += obs.process_ms as f64;
        let Some(f) = &obs.face else { return };
        if f.new_customer {
            // Another person: the interval's face figures describe the current customer only.
            *self = FaceAcc { frames: self.frames, process_ms: self.process_ms, ..Default::default() };
            self.new_customer = true;
        }
        self.customer = Some(f.customer);
        self.faces += 1;
        self.presence += f.presence as f64;
        for (a, v) in self.bbox.iter_mut().zip(f.bbox) {
            *a += v as f64;
        }
        if self.expression.len() < f.expression.len() {
            self.expression.resize(f.expression.len(), 0.0);
        }
        for (a, p) in self.expression.iter_mut().zip(&f.expression) {
            *a += *p as f64;
        }
        let c = &f.cues;
        for (a, v) in self.cues.iter_mut().zip([
            c.roll_deg,
            c.yaw_deg,
            c.pitch_deg,
            c.smile,
            c.brow_gap,
            c.eye_open,
            c.mouth_open,
            c.face_size,
        ]) {
            *a += v as f64;
        }
        let closed = c.eyes_closed();
        if closed && !self.eyes_were_closed {
            self.blinks += 1;
        }
        self.eyes_were_closed = closed;
        self.averted += c.averted() as u64;
        self.detector_runs += f.detector_ran as u64;
    }

    /// A new customer's face was first seen in this interval (the per-customer state resets).
    pub fn new_customer(&self) -> bool {
        self.new_customer
    }

    /// The `modalities.face` object: measured values only; expression, cues, box and presence
    /// are null without a face.
    pub fn summary(&self, labels: &[String], interval_s: f64) -> crate::message::FaceSummary {
        use crate::labels::round4 as r;
        let n = self.faces.max(1) as f64;
        let seen = self.faces > 0;
        let expression =
            seen.then(|| labels.iter().zip(&self.expression).map(|(l, s)| (l.clone(), r(s / n))).collect());
        let dominant = if seen {
            labels.iter().zip(&self.expression).max_by(|a, b| a.1.total_cmp(b.1)).map(|(l, _)| l.clone())
        } else {
            None
        };
        let cues = seen.then(|| {
            let names = [
                "roll_deg",
                "yaw_deg",
                "pitch_deg",
                "smile",
                "brow_gap",
                "eye_open",
                "mouth_open",
                "face_size",
            ];
            let mut cues: BTreeMap<String, f64> =
                names.iter().zip(&self.cues).map(|(k, s)| (k.to_string(), r(s / n))).collect();
            cues.insert("blinks_per_min".into(), r(self.blinks as f64 * 60.0 / interval_s.max(1e-3)));
            cues.insert("averted_ratio".into(), r(self.averted as f64 / n));
            cues
        });
        crate::message::FaceSummary {
            bbox: seen.then(|| self.bbox.iter().map(|v| (v / n).round()).collect()),
            cues,
            customer: self.customer,
            detector_runs: self.detector_runs,
            dominant,
            expression,
            face_frames: self.faces,
            frames: self.frames,
            new_customer: self.new_customer,
            presence_mean: seen.then(|| r(self.presence / n)),
            present: seen,
            process_ms_mean: r(self.process_ms / self.frames.max(1) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, value: u8) -> Frame {
        Frame { seq, t: seq as f64 / 10.0, width: 4, height: 4, duration: 0.1, rgb: vec![value; 48] }
    }

    #[test]
    fn counts_gaps_in_sequence_numbers_as_drops() {
        let mut s = VisionStage::new();
        assert_eq!(s.process(&frame(0, 0)).unwrap().dropped_before, 0);
        assert_eq!(s.process(&frame(1, 0)).unwrap().dropped_before, 0);
        assert_eq!(s.process(&frame(4, 0)).unwrap().dropped_before, 2);
    }

    #[test]
    fn luma_of_grey_levels() {
        assert_eq!(luma_mean(&[0; 48]), 0.0);
        assert!((luma_mean(&[255; 48]) - 1.0).abs() < 1e-6);
        assert!((luma_mean(&[51; 48]) - 0.2).abs() < 1e-6);
        // Every 4th pixel, a trailing partial group included: pixels 0 and 4 of 5.
        let mut img = vec![0u8; 15];
        img[12..15].copy_from_slice(&[255, 255, 255]);
        assert!((luma_mean(&img) - 0.5).abs() < 1e-6);
    }

    /// An analysed frame with a face: `eye` openness, expression probabilities (p, 1 − p).
    fn face_frame(customer: u64, new_customer: bool, eye: f32, p: f32) -> FrameObs {
        FrameObs {
            seq: 0,
            t: 0.0,
            dropped_before: 0,
            luma_mean: 0.5,
            process_ms: 2.0,
            face: Some(FaceObs {
                bbox: [0.0; 4],
                presence: 1.0,
                detection_score: None,
                detector_ran: false,
                cues: cues::Cues { eye_open: eye, ..Default::default() },
                expression: vec![p, 1.0 - p],
                customer,
                new_customer,
            }),
        }
    }

    #[test]
    fn a_new_customer_restarts_the_interval_face_figures() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mk = |customer: u64, new_customer: bool, p: f32| face_frame(customer, new_customer, 0.3, p);
        let mut acc = FaceAcc::default();
        acc.add(&mk(1, false, 1.0));
        acc.add(&mk(1, false, 1.0));
        assert!(!acc.new_customer());
        acc.add(&mk(2, true, 0.0));
        acc.add(&FrameObs { face: None, ..mk(2, false, 0.0) });
        let s = serde_json::to_value(acc.summary(&labels, 5.0)).unwrap();
        assert_eq!(s["frames"], 4, "every analysed frame still counts");
        assert_eq!(s["face_frames"], 1, "only the new customer's face");
        assert_eq!(s["expression"]["a"], 0.0);
        assert_eq!((s["customer"].as_u64(), s["new_customer"].as_bool()), (Some(2), Some(true)));
        assert!(acc.new_customer());
    }

    #[test]
    fn face_summary_averages_and_counts_blinks() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut acc = FaceAcc::default();
        let mk = |eye: f32, p: f32| face_frame(1, false, eye, p);
        for (eye, p) in [(0.3, 1.0), (0.05, 0.0), (0.3, 1.0), (0.05, 0.0)] {
            acc.add(&mk(eye, p));
        }
        acc.add(&FrameObs { face: None, ..mk(0.3, 1.0) });
        let s = serde_json::to_value(acc.summary(&labels, 5.0)).unwrap();
        assert_eq!(s["frames"], 5);
        assert_eq!(s["face_frames"], 4);
        assert_eq!(s["expression"]["a"], 0.5);
        assert_eq!(s["cues"]["blinks_per_min"], 24.0, "2 blinks in 5 s");
        let empty = serde_json::to_value(FaceAcc::default().summary(&labels, 5.0)).unwrap();
        assert_eq!(s["customer"], 1);
        assert_eq!(s["new_customer"], false);
        assert_eq!(empty["present"], false);
        assert!(empty["customer"].is_null());
        assert!(empty["expression"].is_null() && empty["cues"].is_null());
    }
}
