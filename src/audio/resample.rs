//! Streaming conversion of any-rate audio to 16 kHz mono (FFT resampler from `rubato`, with its
//! delay removed so that sample `n` out is at media time `n / 16000`).

use crate::message::AUDIO_RATE;
use rubato::{FftFixedIn, Resampler};

/// Averages interleaved `channels`-channel samples to mono.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect()
}

/// Lowest input sample rate [`MonoResampler`] accepts.
pub const MIN_RATE: u32 = 1000;
/// Highest input sample rate [`MonoResampler`] accepts.
pub const MAX_RATE: u32 = 384_000;

/// Converts a mono stream at `rate` Hz to 16 kHz, chunk by chunk.
pub struct MonoResampler {
    inner: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    skip: usize,
    rate: u32,
    consumed: u64,
    produced: u64,
}

impl MonoResampler {
    /// A resampler from `rate` Hz (pass-through when it is already 16 kHz).
    pub fn new(rate: u32) -> Result<Self, String> {
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            // Outside this range the FFT resampler's size explodes (4294967295 Hz: an 859 M-point
            // FFT; 1 Hz: 8 M output points per chunk).
            return Err(format!(
                "sample rate {rate} Hz is not supported (allowed: {MIN_RATE} to {MAX_RATE} Hz)"
            ));
        }
        let inner = if rate == AUDIO_RATE {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(rate as usize, AUDIO_RATE as usize, 1024, 2, 1)
                    .map_err(|e| format!("cannot resample {rate} Hz to {AUDIO_RATE} Hz: {e}"))?,
            )
        };
        let skip = inner.as_ref().map(|r| r.output_delay()).unwrap_or(0);
        Ok(MonoResampler { inner, pending: Vec::new(), skip, rate, consumed: 0, produced: 0 })
    }

    fn expected_total(&self) -> u64 {
        (self.consumed as f64 * AUDIO_RATE as f64 / self.rate as f64).round() as u64
    }

    fn emit(&mut self, mut out: Vec<f32>, cap: Option<u64>) -> Vec<f32> {
        let drop = self.skip.min(out.len());
        self.skip -= drop;
        out.drain(..drop);
        if let Some(cap) = cap {
            let room = cap.saturating_sub(self.produced) as usize;
            out.truncate(room);
        }
        self.produced += out.len() as u64;
        // Band-limiting can overshoot full scale slightly; the pipeline promises [-1, 1].
        for x in out.iter_mut() {
            *x = x.clamp(-1.0, 1.0);
        }
        out
    }

    /// Feeds samples; returns whatever 16 kHz output is ready.
    pub fn push(&mut self, input: &[f32]) -> Vec<f32> {
        self.consumed += input.len() as u64;
        let Some(r) = self.inner.as_mut() else {
            self.produced += input.len() as u64;
            return input.to_vec();
        };
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            let need = r.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            let chunk: Vec<f32> = self.pending.drain(..need).collect();
            match r.process(&[chunk], None) {
                Ok(mut o) => out.append(&mut o[0]),
                Err(e) => {
                    log::error!("resampler failed: {e}");
                    break;
                }
            }
        }
        self.emit(out, None)
    }

    /// Flushes the tail at the end of the stream, so the total output matches the input duration.
    pub fn finish(&mut self) -> Vec<f32> {
        if self.inner.is_none() {
            return Vec::new();
        }
        let target = self.expected_total();
        let mut out = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        let r = self.inner.as_mut().expect("checked above");
        if let Ok(mut o) = r.process_partial(Some(&[pending]), None) {
            out.append(&mut o[0]);
        }
        let mut guard = 0;
        while self.produced + (out.len().saturating_sub(self.skip)) as u64 <= target && guard < 256 {
            match r.process_partial::<Vec<f32>>(None, None) {
                Ok(mut o) => out.append(&mut o[0]),
                Err(_) => break,
            }
            guard += 1;
        }
        self.emit(out, Some(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn run(rate: u32, input: &[f32], block: usize) -> Vec<f32> {
        let mut r = MonoResampler::new(rate).unwrap();
        let mut out = Vec::new();
        for c in input.chunks(block) {
            out.extend(r.push(c));
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn keeps_duration_for_common_rates() {
        for rate in [8000, 22050, 44100, 48000] {
            let x = sine(rate, 440.0, 1.3);
            let y = run(rate, &x, 777);
            let want = (x.len() as f64 * 16000.0 / rate as f64).round() as usize;
            assert_eq!(y.len(), want, "rate {rate}");
        }
    }

    #[test]
    fn keeps_the_signal_and_its_timing() {
        // A 440 Hz tone at 44.1 kHz must come out as a 440 Hz tone at 16 kHz, in phase.
        let x = sine(44100, 440.0, 1.0);
        let y = run(44100, &x, 1000);
        let reference = sine(16000, 440.0, 1.0);
        let mid = &y[2000..14000];
        let err = mid.iter().zip(&reference[2000..14000]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
    }

    #[test]
    fn passthrough_at_16k() {
        let x = sine(16000, 300.0, 0.5);
        assert_eq!(run(16000, &x, 100), x);
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5], 2), vec![0.5, 0.5]);
    }
}
