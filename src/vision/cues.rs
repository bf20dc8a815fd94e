//! Visual cues from the 468 landmarks — the face's geometric feature vector for fusion. Every
//! formula works in a roll-corrected frame (the eye line rotated to horizontal, y down) and is
//! normalised by the face height (forehead 10 → chin 152), so it does not depend on distance.
//!
//! | cue | formula |
//! |---|---|
//! | `roll_deg` | angle of the eye line 33 → 263 |
//! | `yaw_deg` | atan2(z454 − z234, x454 − x234): cheek-to-cheek line against the image plane |
//! | `pitch_deg` | atan2(z152 − z10, y152 − y10): forehead-to-chin line against the image plane |
//! | `smile` | (mouth centre y − mean corner y) / face height; mouth centre = midpoint of 13, 14; corners 61, 291. > 0: corners lifted, < 0: turned down |
//! | `brow_gap` | mean(eye top − brow) / face height over (159, 105) and (386, 334); smaller = brows lowered |
//! | `eye_open` | mean of lid gap / eye width: \|y145 − y159\| / \|x133 − x33\| and \|y374 − y386\| / \|x263 − x362\| |
//! | `mouth_open` | \|y14 − y13\| / face height |
//! | `face_size` | face height / frame height |

use super::mesh::{idx, Landmarks};
use serde::{Deserialize, Serialize};

/// Eye openness below this counts as closed (for blinks).
pub const EYE_CLOSED: f32 = 0.12;
/// |yaw| or |pitch| above this (degrees) counts as looking away.
pub const AVERTED_DEG: f32 = 25.0;

/// The cue vector of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cues {
    /// Head roll, degrees.
    pub roll_deg: f32,
    /// Head yaw, degrees.
    pub yaw_deg: f32,
    /// Head pitch, degrees.
    pub pitch_deg: f32,
    /// Mouth-corner lift.
    pub smile: f32,
    /// Brow-to-eye gap.
    pub brow_gap: f32,
    /// Eye openness.
    pub eye_open: f32,
    /// Mouth openness.
    pub mouth_open: f32,
    /// Face height relative to the frame height.
    pub face_size: f32,
}

impl Cues {
    /// True when the head is turned or tilted away from the camera (gaze-aversion proxy).
    pub fn averted(&self) -> bool {
        self.yaw_deg.abs() > AVERTED_DEG || self.pitch_deg.abs() > AVERTED_DEG
    }

    /// True when the eyes are closed.
    pub fn eyes_closed(&self) -> bool {
        self.eye_open < EYE_CLOSED
    }
}

/// Computes the cues of one face in a frame `frame_h` pixels high.
pub fn compute(lm: &Landmarks, frame_h: f32) -> Cues {
    let p = |i: usize| lm.points[i];
    let (r, l) = (p(idx::RIGHT_EYE_OUTER), p(idx::LEFT_EYE_OUTER));
    let roll = (l[1] - r[1]).atan2(l[0] - r[0]);
    let (s, c) = roll.sin_cos();
    // Roll-corrected coordinates (rotation by −roll around the origin; only differences are used).
    let q = |i: usize| {
        let [x, y, z] = p(i);
        (x * c + y * s, -x * s + y * c, z)
    };
    let dist = |a: usize, b: usize| {
        let (pa, pb) = (q(a), q(b));
        ((pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2)).sqrt()
    };
    let face_h = dist(idx::FOREHEAD, idx::CHIN).max(1e-3);
    let (cheek_r, cheek_l) = (q(idx::RIGHT_CHEEK), q(idx::LEFT_CHEEK));
    let (top, chin) = (q(idx::FOREHEAD), q(idx::CHIN));
    let yaw = (cheek_l.2 - cheek_r.2).atan2(cheek_l.0 - cheek_r.0);
    let pitch = (chin.2 - top.2).atan2(chin.1 - top.1);
    let mouth_c = (q(idx::LIP_TOP).1 + q(idx::LIP_BOTTOM).1) / 2.0;
    let corners = (q(idx::MOUTH_RIGHT).1 + q(idx::MOUTH_LEFT).1) / 2.0;
    let brow = ((q(idx::RIGHT_EYE_TOP).1 - q(idx::RIGHT_BROW).1)
        + (q(idx::LEFT_EYE_TOP).1 - q(idx::LEFT_BROW).1))
        / 2.0;
    let ear = |top: usize, bottom: usize, a: usize, b: usize| {
        (q(bottom).1 - q(top).1).abs() / (q(a).0 - q(b).0).abs().max(1e-3)
    };
    let eye_open =
        (ear(idx::RIGHT_EYE_TOP, idx::RIGHT_EYE_BOTTOM, idx::RIGHT_EYE_INNER, idx::RIGHT_EYE_OUTER)
            + ear(idx::LEFT_EYE_TOP, idx::LEFT_EYE_BOTTOM, idx::LEFT_EYE_OUTER, idx::LEFT_EYE_INNER))
            / 2.0;
    Cues {
        roll_deg: roll.to_degrees(),
        yaw_deg: yaw.to_degrees(),
        pitch_deg: pitch.to_degrees(),
        smile: (mouth_c - corners) / face_h,
        brow_gap: brow / face_h,
        eye_open,
        mouth_open: (q(idx::LIP_BOTTOM).1 - q(idx::LIP_TOP).1).abs() / face_h,
        face_size: face_h / frame_h.max(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::align::Roi;

    /// A frontal face, 100 px high, drawn by hand.
    fn face() -> Vec<[f32; 3]> {
        let mut p = vec![[0.0f32; 3]; 468];
        p[idx::FOREHEAD] = [100.0, 50.0, 0.0];
        p[idx::CHIN] = [100.0, 150.0, 0.0];
        p[idx::RIGHT_EYE_OUTER] = [70.0, 90.0, 0.0];
        p[idx::RIGHT_EYE_INNER] = [90.0, 90.0, 0.0];
        p[idx::LEFT_EYE_INNER] = [110.0, 90.0, 0.0];
        p[idx::LEFT_EYE_OUTER] = [130.0, 90.0, 0.0];
        p[idx::RIGHT_EYE_TOP] = [80.0, 86.0, 0.0];
        p[idx::RIGHT_EYE_BOTTOM] = [80.0, 92.0, 0.0];
        p[idx::LEFT_EYE_TOP] = [120.0, 86.0, 0.0];
        p[idx::LEFT_EYE_BOTTOM] = [120.0, 92.0, 0.0];
        p[idx::RIGHT_BROW] = [80.0, 76.0, 0.0];
        p[idx::LEFT_BROW] = [120.0, 76.0, 0.0];
        p[idx::MOUTH_RIGHT] = [85.0, 125.0, 0.0];
        p[idx::MOUTH_LEFT] = [115.0, 125.0, 0.0];
        p[idx::LIP_TOP] = [100.0, 128.0, 0.0];
        p[idx::LIP_BOTTOM] = [100.0, 132.0, 0.0];
        p[idx::RIGHT_CHEEK] = [55.0, 100.0, 0.0];
        p[idx::LEFT_CHEEK] = [145.0, 100.0, 0.0];
        p
    }

    fn lm(points: Vec<[f32; 3]>) -> Landmarks {
        Landmarks { points, presence: 1.0, roi: Roi { cx: 0.0, cy: 0.0, size: 1.0, rotation: 0.0 } }
    }

    #[test]
    fn hand_checked_frontal_face() {
        let c = compute(&lm(face()), 200.0);
        assert_eq!((c.roll_deg, c.yaw_deg, c.pitch_deg), (0.0, 0.0, 0.0));
        // Mouth centre y = 130, corners y = 125: lifted by 5 px of a 100 px face.
        assert!((c.smile - 0.05).abs() < 1e-6, "{c:?}");
        // Eye top 86 − brow 76 = 10 px → 0.10.
        assert!((c.brow_gap - 0.10).abs() < 1e-6);
        // Lid gap 6 px over eye width 20 px.
        assert!((c.eye_open - 0.3).abs() < 1e-6);
        assert!((c.mouth_open - 0.04).abs() < 1e-6);
        assert!((c.face_size - 0.5).abs() < 1e-6);
        assert!(!c.averted() && !c.eyes_closed());
    }

    #[test]
    fn frown_and_lowered_brows() {
        let mut p = face();
        p[idx::MOUTH_RIGHT][1] = 134.0;
        p[idx::MOUTH_LEFT][1] = 134.0;
        p[idx::RIGHT_BROW][1] = 82.0;
        p[idx::LEFT_BROW][1] = 82.0;
        let c = compute(&lm(p), 200.0);
        assert!((c.smile + 0.04).abs() < 1e-6, "corners 4 px below the centre: {}", c.smile);
        assert!((c.brow_gap - 0.04).abs() < 1e-6);
    }

    #[test]
    fn roll_is_removed_before_measuring() {
        // Rotate the whole face by 30° around (100, 100): shape cues stay, roll reads 30°.
        let a = 30f32.to_radians();
        let p: Vec<[f32; 3]> = face()
            .into_iter()
            .map(|[x, y, z]| {
                let (dx, dy) = (x - 100.0, y - 100.0);
                [100.0 + dx * a.cos() - dy * a.sin(), 100.0 + dx * a.sin() + dy * a.cos(), z]
            })
            .collect();
        let c = compute(&lm(p), 200.0);
        assert!((c.roll_deg - 30.0).abs() < 1e-3, "{}", c.roll_deg);
        assert!((c.smile - 0.05).abs() < 1e-5 && (c.eye_open - 0.3).abs() < 1e-5, "{c:?}");
    }

    #[test]
    fn head_turn_shows_in_yaw() {
        // Left cheek 90 px further from the camera per 90 px across: 45°.
        let mut p = face();
        p[idx::LEFT_CHEEK][2] = 45.0;
        p[idx::RIGHT_CHEEK][2] = -45.0;
        let c = compute(&lm(p), 200.0);
        assert!((c.yaw_deg - 45.0).abs() < 1e-4, "{}", c.yaw_deg);
        assert!(c.averted());
    }

    #[test]
    fn closed_eyes() {
        let mut p = face();
        for i in [idx::RIGHT_EYE_TOP, idx::LEFT_EYE_TOP] {
            p[i][1] = 91.0;
        }
        assert!(compute(&lm(p), 200.0).eyes_closed());
    }
}
