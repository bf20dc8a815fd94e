//! Audio branch: 16 kHz mono in. [`LevelStage`] measures level per block; [`vad`] cuts speech
//! segments, [`asr`] transcribes them with whisper.cpp and keeps the encoder output, on which
//! [`voice`] estimates the voice's emotion. (No hand-crafted prosody features: docs/voice.md.)

pub mod asr;
pub mod resample;
pub mod vad;
pub mod voice;

use crate::message::{AudioChunk, AudioObs};

/// The audio level stage: one observation per chunk.
#[derive(Debug, Default)]
pub struct LevelStage;

impl LevelStage {
    /// Measures one chunk.
    pub fn process(&mut self, chunk: &AudioChunk) -> AudioObs {
        let sum_sq = chunk.samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
        let peak = chunk.samples.iter().fold(0.0f32, |m, &s| m.max(s.abs()));
        AudioObs { t: chunk.t, samples: chunk.samples.len(), sum_sq, peak }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_chunk() {
        let c = AudioChunk { seq: 0, t: 1.5, samples: vec![0.5, -0.5, 0.5, -1.0] };
        let o = LevelStage.process(&c);
        assert_eq!((o.t, o.samples, o.peak), (1.5, 4, 1.0));
        assert!((o.sum_sq - 1.75).abs() < 1e-12);
    }
}
