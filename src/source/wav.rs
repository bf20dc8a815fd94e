//! WAV reader (`hound`): any sample rate, channel count and PCM/float format, converted to
//! 16 kHz mono.

use super::AudioSource;
use crate::audio::resample::{downmix, MonoResampler};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Reads a `.wav` file as 16 kHz mono.
pub struct WavReader {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    spec: hound::WavSpec,
    resampler: MonoResampler,
    finished: bool,
    channel: crate::config::AudioChannel,
}

impl WavReader {
    /// Opens `path` and checks its format; all channels are mixed.
    pub fn open(path: &Path) -> Result<WavReader> {
        WavReader::open_channel(path, crate::config::AudioChannel::Mix)
    }

    /// Opens `path` keeping only `channel` (`right` needs at least two channels).
    pub fn open_channel(path: &Path, channel: crate::config::AudioChannel) -> Result<WavReader> {
        let reader = hound::WavReader::open(path)
            .map_err(|e| Error::input(path, format!("not a readable WAV file: {e}")))?;
        let spec = reader.spec();
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => {}
            (f, b) => {
                return Err(Error::input(
                    path,
                    format!(
                        "{b}-bit {f:?} samples are not supported (allowed: 8/16/24/32-bit PCM, 32-bit float)"
                    ),
                ))
            }
        }
        if spec.channels == 0 {
            return Err(Error::input(path, "WAV header says 0 channels"));
        }
        if channel == crate::config::AudioChannel::Right && spec.channels < 2 {
            return Err(Error::input(
                path,
                "source.audio.channel = \"right\" but the recording is mono (allowed: left or mix)",
            ));
        }
        let resampler = MonoResampler::new(spec.sample_rate).map_err(|m| Error::input(path, m))?;
        Ok(WavReader { path: path.to_path_buf(), reader, spec, resampler, finished: false, channel })
    }

    /// The file's own format.
    pub fn spec(&self) -> hound::WavSpec {
        self.spec
    }
}

impl AudioSource for WavReader {
    fn next_samples(&mut self) -> Result<Option<Vec<f32>>> {
        if self.finished {
            return Ok(None);
        }
        let channels = self.spec.channels as usize;
        // 4096 frames, fewer with many channels: the buffer is reserved before the data is read.
        let want = (65_536 / channels).clamp(1, 4096) * channels;
        let mut buf = Vec::with_capacity(want);
        let path = &self.path;
        let err = |e: hound::Error| Error::input(path, format!("corrupt WAV data: {e}"));
        match self.spec.sample_format {
            hound::SampleFormat::Float => {
                // Float WAVs may hold anything: NaN and infinities become silence, the rest is
                // clipped to full scale (the speech stages are promised samples in [-1, 1]).
                for s in self.reader.samples::<f32>().take(want) {
                    let x = s.map_err(err)?;
                    buf.push(if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) });
                }
            }
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (self.spec.bits_per_sample - 1)) as f32;
                for s in self.reader.samples::<i32>().take(want) {
                    buf.push(s.map_err(err)? as f32 * scale);
                }
            }
        }
        if buf.is_empty() {
            self.finished = true;
            let tail = self.resampler.finish();
            return Ok(if tail.is_empty() { None } else { Some(tail) });
        }
        let mono = match self.channel {
            crate::config::AudioChannel::Mix => downmix(&buf, channels),
            crate::config::AudioChannel::Left => buf.iter().step_by(channels).copied().collect(),
            crate::config::AudioChannel::Right => buf.iter().skip(1).step_by(channels).copied().collect(),
        };
        Ok(Some(self.resampler.push(&mono)))
    }

    fn duration(&self) -> Option<f64> {
        Some(self.reader.duration() as f64 / self.spec.sample_rate as f64)
    }

    fn describe(&self) -> String {
        format!("wav:{} {} Hz x{}", self.path.display(), self.spec.sample_rate, self.spec.channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, secs: f32) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..(rate as f32 * secs) as usize {
            let v = ((i as f32 * 0.05).sin() * 10000.0) as i16;
            for _ in 0..channels {
                w.write_sample(v).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    fn read_all(r: &mut WavReader) -> Vec<f32> {
        let mut all = Vec::new();
        while let Some(s) = r.next_samples().unwrap() {
            all.extend(s);
        }
        all
    }

    #[test]
    fn stereo_48k_becomes_16k_mono_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.wav");
        write_wav(&p, 48000, 2, 2.5);
        let mut r = WavReader::open(&p).unwrap();
        assert_eq!(r.duration(), Some(2.5));
        assert_eq!(read_all(&mut r).len(), 40000);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");
        std::fs::write(&p, b"definitely not RIFF").unwrap();
        let e = WavReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("x.wav") && e.contains("not a readable WAV"), "{e}");
    }
}
