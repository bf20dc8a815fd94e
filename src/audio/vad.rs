//! Voice activity detection: cuts the 16 kHz stream into speech segments for the recogniser.
//!
//! Per 20 ms frame it measures the energy (dBFS) and, in the 300–3000 Hz band, the spectral
//! flatness of the power spectrum *divided by a running noise spectrum*. A frame is speech when
//! its energy is well above an adaptive noise floor (a low percentile of the last 3 s of frame
//! energies) **and** its whitened spectrum is peaky (harmonics, formants). Stationary noise of any
//! colour whitens to a flat spectrum (flatness ≈ 0.5), so it does not trigger even when loud.
//! Hysteresis (a higher threshold to start than to continue), a minimum speech duration, a
//! hangover of `min_silence_s` and padding turn frames into segments; segments longer than
//! `max_utterance_s` are split at the quietest frame near the limit, without overlap.

use crate::message::{AudioChunk, AUDIO_RATE};
use std::collections::VecDeque;

/// Frame length and hop, samples (20 ms).
const FRAME: usize = 320;
/// FFT size (frame zero-padded).
const NFFT: usize = 512;
/// Frames of energy history for the noise floor (3 s).
const HISTORY: usize = 150;
/// Frames below this level (dBFS) are never speech (digital silence, dither).
const ABS_FLOOR_DB: f64 = -60.0;
/// Energy above the noise floor needed to start speech, dB.
const ONSET_DB: f64 = 9.0;
/// Energy above the noise floor needed to continue speech, dB.
const OFFSET_DB: f64 = 4.0;
/// Whitened-spectrum flatness below which a frame may start speech (noise ≈ 0.5).
const ONSET_FLATNESS: f64 = 0.30;
/// Whitened-spectrum flatness below which a frame may continue speech.
const OFFSET_FLATNESS: f64 = 0.42;

/// Segmentation settings.
#[derive(Debug, Clone)]
pub struct VadParams {
    /// Speech shorter than this (seconds of speech frames) is discarded.
    pub min_speech_s: f64,
    /// Silence that ends a segment, seconds.
    pub min_silence_s: f64,
    /// Longer segments are split, seconds (whisper's window is 30 s).
    pub max_utterance_s: f64,
    /// Audio kept before and after the detected speech, seconds (at most `min_silence_s` after).
    pub pad_s: f64,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams { min_speech_s: 0.25, min_silence_s: 0.5, max_utterance_s: 28.0, pad_s: 0.2 }
    }
}

/// One detected utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechSegment {
    /// Media time of the first sample, seconds.
    pub start: f64,
    /// Media time just after the last sample, seconds.
    pub end: f64,
    /// The 16 kHz mono audio of [start, end).
    pub samples: Vec<f32>,
}

/// Per-frame features (exposed for tests and tuning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFeatures {
    /// Energy, dBFS.
    pub energy_db: f64,
    /// Noise floor at this frame, dBFS.
    pub floor_db: f64,
    /// Spectral flatness of the noise-whitened 300–3000 Hz power spectrum, in (0, 1].
    pub flatness: f64,
    /// The frame was classified as speech.
    pub speech: bool,
}

/// Streaming VAD. Feed chunks with [`Vad::push`], end with [`Vad::finish`].
pub struct Vad {
    params: VadParams,
    /// Media time of global sample 0 (reset on a timestamp discontinuity).
    base_t: f64,
    started: bool,
    /// Global index of buf[0].
    buf_start: usize,
    buf: Vec<f32>,
    /// Global index of the next frame to analyse.
    next_frame: usize,
    energies: VecDeque<f64>,
    noise: Vec<f64>,
    noise_init: bool,
    noise_updates: usize,
    window: Vec<f32>,
    /// Open segment: global index of the first speech frame.
    seg_start: Option<usize>,
    /// End (global sample) of the last speech frame of the open segment.
    last_speech_end: usize,
    speech_frames: usize,
    /// (global frame start, energy) of the open segment's frames, for splitting.
    seg_energy: Vec<(usize, f64)>,
    /// Earliest sample a new segment may take as padding (end of the last emitted segment).
    emitted_end: usize,
    last_features: Option<FrameFeatures>,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vad({:?}, at {:.2} s)", self.params, self.time(self.next_frame))
    }
}

fn rate() -> f64 {
    AUDIO_RATE as f64
}

impl Vad {
    /// A detector with `params` (negative or zero values are raised to one frame).
    pub fn new(params: VadParams) -> Vad {
        let window = (0..FRAME)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / FRAME as f64).cos()) as f32)
            .collect();
        Vad {
            params,
            base_t: 0.0,
            started: false,
            buf_start: 0,
            buf: Vec::new(),
            next_frame: 0,
            energies: VecDeque::with_capacity(HISTORY),
            noise: vec![0.0; NFFT / 2 + 1],
            noise_init: false,
            noise_updates: 0,
            window,
            seg_start: None,
            last_speech_end: 0,
            speech_frames: 0,
            seg_energy: Vec::new(),
            emitted_end: 0,
            last_features: None,
        }
    }

    fn time(&self, idx: usize) -> f64 {
        self.base_t + idx as f64 / rate()
    }

    fn secs(&self, s: f64) -> usize {
        (s.max(0.0) * rate()).round() as usize
    }

    /// Features of the most recently analysed frame.
    pub fn last_features(&self) -> Option<FrameFeatures> {
        self.last_features
    }

    /// Adds a chunk; returns the segments completed so far. A chunk whose time does not follow
    /// the previous one (a gap or a jump back) ends the open segment first.
    pub fn push(&mut self, chunk: &AudioChunk) -> Vec<SpeechSegment> {
        let mut out = Vec::new();
        let expected = self.time(self.buf_start + self.buf.len());
        if !self.started || (chunk.t - expected).abs() > 1.5 / rate() * FRAME as f64 {
            if self.started {
                out.extend(self.finish());
            }
            *self = Vad { noise: std::mem::take(&mut self.noise), ..Vad::new(self.params.clone()) };
            self.noise_init = self.noise.iter().any(|&n| n > 0.0);
            self.base_t = chunk.t;
            self.started = true;
        }
        self.buf.extend(chunk.samples.iter().map(|s| if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 }));
        while self.next_frame + FRAME <= self.buf_start + self.buf.len() {
            let f = self.next_frame;
            self.analyse(f, &mut out);
            self.next_frame += FRAME;
        }
        self.trim();
        out
    }

    /// Ends the stream: closes the open segment (if it holds enough speech) and returns it.
    pub fn finish(&mut self) -> Vec<SpeechSegment> {
        let mut out = Vec::new();
        if self.seg_start.is_some() {
            let end = self.buf_start + self.buf.len();
            self.close(end, &mut out);
        }
        out
    }

    /// Media time before which no future segment can start.
    pub fn watermark(&self) -> f64 {
        let pad = self.secs(self.params.pad_s);
        let idx = match self.seg_start {
            Some(s) => s.saturating_sub(pad).max(self.emitted_end),
            None => self.next_frame.saturating_sub(pad).max(self.emitted_end),
        };
        self.time(idx)
    }

    fn frame(&self, f: usize) -> &[f32] {
        let i = f - self.buf_start;
        &self.buf[i..i + FRAME]
    }

    fn analyse(&mut self, f: usize, out: &mut Vec<SpeechSegment>) {
        let x = self.frame(f);
        let energy = x.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / FRAME as f64;
        let energy_db = 10.0 * (energy + 1e-12).log10();
        let mut re = vec![0.0f64; NFFT];
        let mut im = vec![0.0f64; NFFT];
        for (i, (&s, &w)) in x.iter().zip(&self.window).enumerate() {
            re[i] = (s * w) as f64;
        }
        fft(&mut re, &mut im);
        let power: Vec<f64> = (0..=NFFT / 2).map(|k| re[k] * re[k] + im[k] * im[k]).collect();
        let lo = 300 * NFFT / AUDIO_RATE as usize;
        let hi = 3000 * NFFT / AUDIO_RATE as usize;
        // Noise floor: the 15th percentile of the recent frame energies.
        let floor_db = if self.energies.is_empty() {
            energy_db
        } else {
            let mut v: Vec<f64> = self.energies.iter().copied().collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[(v.len() * 15 / 100).min(v.len() - 1)]
        };
        // A single frame's periodogram is too noisy to whiten by: smooth it across 9 bins.
        let smooth: Vec<f64> = (0..power.len())
            .map(|k| {
                let (a, b) = (k.saturating_sub(4), (k + 4).min(power.len() - 1));
                power[a..=b].iter().sum::<f64>() / (b - a + 1) as f64
            })
            .collect();
        if !self.noise_init && energy_db > ABS_FLOOR_DB {
            self.noise.copy_from_slice(&smooth);
            self.noise_init = true;
            self.noise_updates = 1;
        }
        // Flatness of the whitened band spectrum (geometric / arithmetic mean of P/N).
        let eps = 1e-10;
        let (mut log_sum, mut sum) = (0.0, 0.0);
        for (p, nk) in power[lo..=hi].iter().zip(&self.noise[lo..=hi]) {
            let r = (p + eps) / (nk + eps);
            log_sum += r.ln();
            sum += r;
        }
        let n = (hi - lo + 1) as f64;
        let flatness = ((log_sum / n).exp() / (sum / n)).clamp(0.0, 1.0);
        let in_speech = self.seg_start.is_some();
        let speech = energy_db > ABS_FLOOR_DB
            && if in_speech {
                energy_db > floor_db + OFFSET_DB && flatness < OFFSET_FLATNESS
            } else {
                energy_db > floor_db + ONSET_DB && flatness < ONSET_FLATNESS
            };
        // Update the noise spectrum from frames that are clearly not speech: near the floor, or
        // (outside speech) noise-like after whitening. A running mean first, then an EMA.
        if !speech
            && energy_db > ABS_FLOOR_DB
            && (energy_db < floor_db + 3.0 || (!in_speech && flatness > OFFSET_FLATNESS))
        {
            self.noise_updates += 1;
            let a = (1.0 / self.noise_updates as f64).max(0.1);
            for (nk, pk) in self.noise.iter_mut().zip(&smooth) {
                *nk = (1.0 - a) * *nk + a * pk;
            }
        }
        if self.energies.len() == HISTORY {
            self.energies.pop_front();
        }
        self.energies.push_back(energy_db);
        self.last_features = Some(FrameFeatures { energy_db, floor_db, flatness, speech });
        self.step(f, speech, energy_db, out);
    }

    fn step(&mut self, f: usize, speech: bool, energy_db: f64, out: &mut Vec<SpeechSegment>) {
        if speech {
            if self.seg_start.is_none() {
                self.seg_start = Some(f);
                self.speech_frames = 0;
                self.seg_energy.clear();
            }
            self.speech_frames += 1;
            self.last_speech_end = f + FRAME;
        }
        let Some(start) = self.seg_start else { return };
        self.seg_energy.push((f, energy_db));
        let silence = f + FRAME - self.last_speech_end;
        if silence >= self.secs(self.params.min_silence_s).max(FRAME) {
            let end = self.last_speech_end;
            self.close(end, out);
            return;
        }
        let pad = self.secs(self.params.pad_s);
        let max = self.secs(self.params.max_utterance_s).max(2 * FRAME);
        let padded_start = start.saturating_sub(pad).max(self.emitted_end).max(self.buf_start);
        if f + FRAME - padded_start >= max {
            // Split at the quietest frame in the last quarter of the window.
            let from = padded_start + max * 3 / 4;
            let cut = self
                .seg_energy
                .iter()
                .filter(|(g, _)| *g >= from && *g + FRAME <= padded_start + max)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(g, _)| *g + FRAME / 2)
                .unwrap_or(padded_start + max);
            self.emit(padded_start, cut, out);
            self.seg_start = Some(cut);
            self.speech_frames = self.seg_energy.iter().filter(|(g, _)| *g >= cut).count();
            self.seg_energy.retain(|(g, _)| *g >= cut);
        }
    }

    fn close(&mut self, speech_end: usize, out: &mut Vec<SpeechSegment>) {
        let Some(start) = self.seg_start.take() else { return };
        let enough = self.speech_frames as f64 * FRAME as f64 / rate() >= self.params.min_speech_s;
        if enough {
            let pad = self.secs(self.params.pad_s);
            let tail = pad.min(self.secs(self.params.min_silence_s));
            let s = start.saturating_sub(pad).max(self.emitted_end).max(self.buf_start);
            let e = (speech_end + tail).min(self.buf_start + self.buf.len()).max(s);
            self.emit(s, e, out);
        }
        self.speech_frames = 0;
        self.seg_energy.clear();
    }

    fn emit(&mut self, s: usize, e: usize, out: &mut Vec<SpeechSegment>) {
        if e <= s {
            return;
        }
        let samples = self.buf[s - self.buf_start..e - self.buf_start].to_vec();
        out.push(SpeechSegment { start: self.time(s), end: self.time(e), samples });
        self.emitted_end = e;
    }

    /// Drops audio no future segment can use.
    fn trim(&mut self) {
        let pad = self.secs(self.params.pad_s);
        let keep_from = match self.seg_start {
            Some(s) => s.saturating_sub(pad),
            None => self.next_frame.saturating_sub(pad),
        }
        .max(self.buf_start);
        let n = keep_from - self.buf_start;
        if n > 16 * FRAME {
            self.buf.drain(..n);
            self.buf_start = keep_from;
        }
    }
}

/// In-place radix-2 complex FFT (length a power of two).
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = ((ang * k as f64).cos(), (ang * k as f64).sin());
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(samples: &[f32], t0: f64) -> Vec<AudioChunk> {
        samples
            .chunks(1600)
            .enumerate()
            .map(|(i, c)| AudioChunk { seq: i as u64, t: t0 + i as f64 * 0.1, samples: c.to_vec() })
            .collect()
    }

    fn run(samples: &[f32], params: VadParams) -> Vec<SpeechSegment> {
        let mut v = Vad::new(params);
        let mut out = Vec::new();
        for c in chunks(samples, 5.0) {
            out.extend(v.push(&c));
        }
        out.extend(v.finish());
        out
    }

    /// A crude voiced sound: harmonics of 140 Hz with a formant-like envelope.
    fn vowel(n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16000.0;
                (1..20)
                    .map(|h| {
                        let f = 140.0 * h as f32;
                        let g = (-((f - 700.0) / 500.0).powi(2)).exp()
                            + 0.5 * (-((f - 1200.0) / 400.0).powi(2)).exp();
                        g * (2.0 * std::f32::consts::PI * f * t).sin()
                    })
                    .sum::<f32>()
                    * amp
            })
            .collect()
    }

    fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    #[test]
    fn fft_of_a_sine_peaks_in_its_bin() {
        let mut re: Vec<f64> =
            (0..64).map(|i| (2.0 * std::f64::consts::PI * 4.0 * i as f64 / 64.0).cos()).collect();
        let mut im = vec![0.0; 64];
        fft(&mut re, &mut im);
        assert!((re[4] - 32.0).abs() < 1e-9 && re[5].abs() < 1e-9);
    }

    #[test]
    fn vowels_in_noise_are_found_and_noise_alone_is_not() {
        let mut x = noise(16000, 0.01, 1);
        let v = vowel(16000, 0.1);
        x.extend(noise(16000, 0.01, 2).iter().zip(&v).map(|(a, b)| a + b));
        x.extend(noise(32000, 0.01, 3));
        let segs = run(&x, VadParams::default());
        assert_eq!(segs.len(), 1, "{:?}", segs.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>());
        assert!(
            (segs[0].start - 5.8).abs() < 0.15 && (segs[0].end - 7.2).abs() < 0.15,
            "{} {}",
            segs[0].start,
            segs[0].end
        );
        assert_eq!(segs[0].samples.len(), ((segs[0].end - segs[0].start) * 16000.0).round() as usize);
        assert!(run(&noise(48000, 0.3, 9), VadParams::default()).is_empty());
        assert!(run(&[0.0; 48000], VadParams::default()).is_empty());
    }

    #[test]
    fn long_speech_is_split_without_overlap() {
        // 12 s of syllables (3 per second, dipping 20 dB between them) in light noise.
        let x: Vec<f32> = vowel(16000 * 12, 0.1)
            .iter()
            .zip(noise(16000 * 12, 0.005, 4))
            .enumerate()
            .map(|(i, (a, b))| {
                a * (0.55 + 0.45 * (i as f32 / 16000.0 * 6.0 * std::f32::consts::PI).sin()) + b
            })
            .collect();
        let mut y = noise(16000, 0.005, 5);
        y.extend(x);
        y.extend(noise(16000, 0.005, 6));
        let p = VadParams { max_utterance_s: 5.0, ..VadParams::default() };
        let segs = run(&y, p);
        assert!(segs.len() >= 3, "{:?}", segs.iter().map(|s| (s.start, s.end)).collect::<Vec<_>>());
        for w in segs.windows(2) {
            assert!(w[0].end <= w[1].start + 1e-9);
        }
        for s in &segs {
            assert!(s.end - s.start <= 5.0 + 1e-9);
        }
    }

    #[test]
    fn watermark_never_passes_a_later_segment_start() {
        let mut x = noise(16000, 0.01, 1);
        x.extend(vowel(16000, 0.1));
        x.extend(noise(16000, 0.01, 3));
        let mut v = Vad::new(VadParams::default());
        let mut marks = Vec::new();
        let mut segs = Vec::new();
        for c in chunks(&x, 0.0) {
            segs.extend(v.push(&c));
            marks.push((v.watermark(), segs.len()));
        }
        segs.extend(v.finish());
        assert_eq!(segs.len(), 1);
        for (w, n) in marks {
            if n == 0 {
                assert!(w <= segs[0].start + 1e-9, "{w} > {}", segs[0].start);
            }
        }
    }
}
