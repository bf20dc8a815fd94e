//! Vision branch: what is seen in each analysed frame. Today it measures exposure and counts
//! frames lost under load; face detection, landmarks and expression plug in here (issue 3).

use crate::message::{Frame, FrameObs};

/// The per-frame vision stage.
#[derive(Debug, Default)]
pub struct VisionStage {
    last_seq: Option<u64>,
}

impl VisionStage {
    /// A new stage.
    pub fn new() -> Self {
        VisionStage::default()
    }

    /// Analyses one frame.
    pub fn process(&mut self, frame: &Frame) -> FrameObs {
        let dropped_before = match self.last_seq {
            Some(prev) => frame.seq.saturating_sub(prev + 1),
            None => frame.seq,
        };
        self.last_seq = Some(frame.seq);
        FrameObs { seq: frame.seq, t: frame.t, dropped_before, luma_mean: luma_mean(&frame.rgb) }
    }
}

/// Mean BT.601 luma of an RGB24 buffer, in [0, 1] (every 4th pixel; it is an exposure check).
pub fn luma_mean(rgb: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    let mut n = 0u64;
    for px in rgb.chunks_exact(3).step_by(4) {
        sum += 0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64 / 255.0) as f32
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
        assert_eq!(s.process(&frame(0, 0)).dropped_before, 0);
        assert_eq!(s.process(&frame(1, 0)).dropped_before, 0);
        assert_eq!(s.process(&frame(4, 0)).dropped_before, 2);
    }

    #[test]
    fn luma_of_grey_levels() {
        assert_eq!(luma_mean(&[0; 48]), 0.0);
        assert!((luma_mean(&[255; 48]) - 1.0).abs() < 1e-6);
        assert!((luma_mean(&[51; 48]) - 0.2).abs() < 1e-6);
    }
}
