//! Sources: where frames and audio enter the pipeline. Each source yields media-timed data;
//! [`open_video`] and [`open_audio`] pick the reader from the file type.

pub mod child;
pub mod ffmpeg;
pub mod mic;
pub mod pipe;
pub mod pixfmt;
pub mod wav;
pub mod webcam;
pub mod y4m;

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Shared health of the sources and stages: one that lost its device (or keeps failing) marks
/// itself degraded (with a reason) until it recovers; the sink stage publishes the change as a
/// status message. It also carries the session clock every live source stamps media time with.
#[derive(Debug, Clone)]
pub struct Health {
    inner: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    epoch: std::time::Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health { inner: Arc::default(), epoch: std::time::Instant::now() }
    }
}

impl Health {
    /// Seconds on the session clock (since this health was created): the media time of live sources.
    pub fn media_now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Marks `source` degraded because of `reason` (replaces its previous reason).
    pub fn degrade(&self, source: &str, reason: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(source.to_string(), reason.to_string());
        }
    }

    /// Marks `source` healthy again.
    pub fn recover(&self, source: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(source);
        }
    }

    /// `None` when every source is healthy, else the reasons joined (`webcam: …; mic: …`).
    pub fn degraded(&self) -> Option<String> {
        let m = self.inner.lock().ok()?;
        if m.is_empty() {
            return None;
        }
        Some(m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "))
    }
}

/// Exponential back-off for reconnecting to a device: 0.5 s, doubling, capped at `max_s`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: f64,
    max: f64,
}

impl Backoff {
    /// A back-off that starts at 0.5 s (or `max_s` if smaller) and grows to `max_s`.
    pub fn new(max_s: f64) -> Self {
        Backoff { next: 0.5f64.min(max_s), max: max_s }
    }

    /// The next delay, in seconds.
    pub fn next_delay(&mut self) -> f64 {
        let d = self.next;
        self.next = (self.next * 2.0).min(self.max);
        d
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = 0.5f64.min(self.max);
    }
}

/// `secs` as a [`std::time::Duration`], clamped to 0 s ..= one year (NaN → 0): media times and
/// configured delays come from outside and must never overflow a clock.
pub fn secs_duration(secs: f64) -> std::time::Duration {
    let s = if secs.is_nan() { 0.0 } else { secs.clamp(0.0, 365.0 * 86_400.0) };
    std::time::Duration::from_secs_f64(s)
}

/// Sleeps `secs` in small steps; false if `stop` was set meanwhile.
pub fn sleep_unless_stopped(secs: f64, stop: &std::sync::atomic::AtomicBool) -> bool {
    let until = std::time::Instant::now() + secs_duration(secs);
    while std::time::Instant::now() < until {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !stop.load(std::sync::atomic::Ordering::SeqCst)
}

/// A decoded frame before sampling: RGB24 with its media time.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Media time, seconds from the start of the recording.
    pub t: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How long the frame lasts (one source frame period), seconds.
    pub duration: f64,
    /// RGB24 pixels.
    pub rgb: Vec<u8>,
}

/// Something that yields video frames in media-time order.
pub trait VideoSource: Send {
    /// The next frame, or `None` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<RawFrame>>;
    /// Total duration in seconds, when known (for progress reporting).
    fn duration(&self) -> Option<f64>;
    /// A short description for logs (`y4m:/path 360x288@25`).
    fn describe(&self) -> String;
    /// A device whose frames are stamped on the session clock ([`Health::media_now`]); while it
    /// delivers nothing, the pipeline moves its watermark on with that clock.
    fn is_live(&self) -> bool {
        false
    }
}

/// Something that yields 16 kHz mono audio, in order and without gaps.
pub trait AudioSource: Send {
    /// The next run of samples (any length), or `None` at the end of the stream.
    fn next_samples(&mut self) -> Result<Option<Vec<f32>>>;
    /// Total duration in seconds, when known.
    fn duration(&self) -> Option<f64>;
    /// A short description for logs.
    fn describe(&self) -> String;
    /// Capture counters of a microphone (overruns, gaps filled with silence) for the metrics.
    fn mic_counters(&self) -> Option<Arc<mic::MicStats>> {
        None
    }
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

fn check_exists(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::input(path, "is not a file")),
        Err(e) => Err(Error::input(path, format!("cannot open recording: {e}"))),
    }
}

/// Opens a video recording: `.y4m` natively, anything else through ffmpeg, sampled at `fps`.
pub fn open_video(path: &Path, fps: f64) -> Result<Box<dyn VideoSource>> {
    check_exists(path)?;
    if extension(path) == "y4m" {
        Ok(Box::new(y4m::Y4mReader::open(path)?))
    } else {
        let probe = ffmpeg::probe(path)?;
        if !probe.has_video {
            return Err(Error::input(
                path,
                "has no video stream (allowed: a file with a video track, or use it as audio)",
            ));
        }
        Ok(Box::new(ffmpeg::FfmpegVideo::spawn(path, &probe, fps)?))
    }
}

/// Opens an audio recording: `.wav` natively (any rate/channels, resampled to 16 kHz mono),
/// anything else (including the audio track of a video) through ffmpeg. All channels mixed.
pub fn open_audio(path: &Path) -> Result<Box<dyn AudioSource>> {
    open_audio_channel(path, crate::config::AudioChannel::Mix)
}

/// Like [`open_audio`], keeping only `channel` of the recording (`left` = the first, `right` =
/// the second): the other channel is dropped before resampling and never reaches the analysis.
/// Asking for `right` of a mono recording is an error naming the file.
pub fn open_audio_channel(path: &Path, channel: crate::config::AudioChannel) -> Result<Box<dyn AudioSource>> {
    check_exists(path)?;
    if extension(path) == "wav" {
        Ok(Box::new(wav::WavReader::open_channel(path, channel)?))
    } else {
        let probe = ffmpeg::probe(path)?;
        if !probe.has_audio {
            return Err(Error::input(path, "has no audio stream"));
        }
        Ok(Box::new(ffmpeg::FfmpegAudio::spawn_channel(path, &probe, channel)?))
    }
}

/// What a recording contains, as far as choosing sources goes.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// It has a video track (or is a Y4M file).
    pub has_video: bool,
    /// It has an audio track (or is a WAV file).
    pub has_audio: bool,
}

/// Looks at a recording to decide which sources to open on it.
pub fn inspect(path: &Path) -> Result<MediaInfo> {
    check_exists(path)?;
    match extension(path).as_str() {
        "y4m" => Ok(MediaInfo { has_video: true, has_audio: false }),
        "wav" => Ok(MediaInfo { has_video: false, has_audio: true }),
        _ => {
            let p = ffmpeg::probe(path)?;
            Ok(MediaInfo { has_video: p.has_video, has_audio: p.has_audio })
        }
    }
}

/// Keeps the frames that fall on an `fps` grid (media time), whatever the source's own rate.
#[derive(Debug, Clone)]
pub struct FrameSampler {
    period: f64,
    next_t: f64,
}

impl FrameSampler {
    /// A sampler for `fps` frames per second.
    pub fn new(fps: f64) -> Self {
        FrameSampler { period: 1.0 / fps, next_t: 0.0 }
    }

    /// True when the frame at media time `t` is to be analysed.
    pub fn keep(&mut self, t: f64) -> bool {
        // Half a millisecond of slack absorbs rounding in container timestamps.
        if t + 5e-4 < self.next_t {
            return false;
        }
        while self.next_t <= t + 5e-4 {
            self.next_t += self.period;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_decimates_25_to_10_fps() {
        let mut s = FrameSampler::new(10.0);
        let kept: Vec<usize> = (0..50).filter(|&i| s.keep(i as f64 / 25.0)).collect();
        assert_eq!(kept.len(), 20, "{kept:?}");
        assert_eq!(&kept[..5], &[0, 3, 5, 8, 10]);
    }

    #[test]
    fn sampler_keeps_everything_from_a_slower_source() {
        let mut s = FrameSampler::new(10.0);
        assert!((0..30).all(|i| s.keep(i as f64 / 5.0)));
    }

    #[test]
    fn sampler_keeps_an_exact_grid() {
        let mut s = FrameSampler::new(10.0);
        assert!((0..100).all(|i| s.keep(i as f64 / 10.0)));
    }

    #[test]
    fn health_reports_and_clears_degraded_sources() {
        let h = Health::default();
        assert_eq!(h.degraded(), None);
        h.degrade("webcam", "device gone");
        h.clone().degrade("mic", "stream error");
        assert_eq!(h.degraded().as_deref(), Some("mic: stream error; webcam: device gone"));
        h.recover("mic");
        h.recover("webcam");
        assert_eq!(h.degraded(), None);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(3.0);
        let d: Vec<f64> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(d, vec![0.5, 1.0, 2.0, 3.0, 3.0]);
        b.reset();
        assert_eq!(b.next_delay(), 0.5);
    }

    #[test]
    fn missing_recording_is_named() {
        let e = open_video(Path::new("/no/such/clip.mp4"), 10.0).err().unwrap().to_string();
        assert!(e.contains("/no/such/clip.mp4") && e.contains("cannot open"), "{e}");
    }
}
