//! Microphone source: an input device through `cpal` (ALSA on Linux), at whatever rate, channel
//! count and sample format the device offers, converted to 16 kHz mono by the pipeline's resampler.
//!
//! cpal streams are not `Send`, so the stream lives in its own capture thread, which hands mono
//! blocks at the device rate to the source over a bounded channel. On a stream error the thread
//! marks the source degraded, drops the stream and rebuilds it with back-off. Overruns are counted:
//! a capture timestamp running ahead of the samples delivered (the device overwrote data we did not
//! read), and blocks dropped because the pipeline fell more than 512 blocks and 0.5 s behind (until
//! then the callback waits, so a device faster than real time — ALSA's `null` — loses nothing).

use super::{AudioSource, Backoff, Health};
use crate::audio::resample::MonoResampler;
use crate::error::{Error, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which input device and how to open it.
#[derive(Debug, Clone, PartialEq)]
pub struct MicSpec {
    /// `""` = the default input device; else its exact name, or a part of it.
    pub device: String,
    /// Sample rate to ask for; 0 = the device's default.
    pub sample_rate: u32,
    /// Upper bound of the restart back-off, seconds.
    pub restart_max_s: f64,
}

/// Capture statistics shared with the capture thread.
#[derive(Debug, Default)]
pub struct MicStats {
    /// Overruns seen (capture clock ahead of the samples delivered).
    pub xruns: AtomicU64,
    /// Blocks dropped because the pipeline did not keep up.
    pub dropped_blocks: AtomicU64,
    /// Stream restarts after errors.
    pub restarts: AtomicU64,
    /// Gaps filled with silence (overruns measured on the device clock, device outages).
    pub gaps: AtomicU64,
    /// Samples (16 kHz) of silence inserted for those gaps.
    pub gap_samples: AtomicU64,
}

impl MicStats {
    /// Audio lost by the device or the pipeline, as gap events.
    pub fn overruns(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    /// Seconds of silence inserted so the audio timeline does not compress.
    pub fn gap_seconds(&self) -> f64 {
        self.gap_samples.load(Ordering::Relaxed) as f64 / crate::message::AUDIO_RATE as f64
    }
}

/// Mono samples at the device rate, as captured.
struct Block {
    rate: u32,
    mono: Vec<f32>,
}

struct Opened {
    name: String,
    rate: u32,
    channels: u16,
    format: cpal::SampleFormat,
}

/// Names of the input devices cpal lists (for error messages and `device` matching).
pub fn input_device_names() -> Vec<String> {
    let host = cpal::default_host();
    host.input_devices().map(|d| d.filter_map(|d| d.name().ok()).collect()).unwrap_or_default()
}

fn find_device(spec: &MicSpec) -> Result<cpal::Device> {
    let host = cpal::default_host();
    let hint = "check `arecord -L`, that the service user is in group `audio`, and source.audio.device";
    if spec.device.is_empty() {
        return host
            .default_input_device()
            .ok_or_else(|| Error::stage("mic", format!("no default input device found ({hint})")));
    }
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| Error::stage("mic", format!("cannot list input devices: {e} ({hint})")))?
        .collect();
    let names: Vec<String> = devices.iter().map(|d| d.name().unwrap_or_default()).collect();
    if let Some(i) = names.iter().position(|n| n == &spec.device) {
        return Ok(devices.into_iter().nth(i).expect("index from position"));
    }
    let lower = spec.device.to_lowercase();
    if let Some(i) = names.iter().position(|n| n.to_lowercase().contains(&lower)) {
        return Ok(devices.into_iter().nth(i).expect("index from position"));
    }
    Err(Error::stage(
        "mic",
        format!(
            "source.audio.device = {:?}: no input device has that name (allowed: \"\" for the default, or one of: {})",
            spec.device,
            if names.is_empty() { "none found".to_string() } else { names.join(", ") }
        ),
    ))
}

fn stream_config(device: &cpal::Device, rate: u32) -> Result<cpal::SupportedStreamConfig> {
    let err = |e: &dyn std::fmt::Display| Error::stage("mic", format!("cannot query the input device: {e}"));
    if rate == 0 {
        return device.default_input_config().map_err(|e| err(&e));
    }
    let ranges: Vec<_> = device.supported_input_configs().map_err(|e| err(&e))?.collect();
    let rank = |f: cpal::SampleFormat| match f {
        cpal::SampleFormat::F32 => 0,
        cpal::SampleFormat::I16 => 1,
        _ => 2,
    };
    ranges
        .iter()
        .filter(|r| r.min_sample_rate().0 <= rate && rate <= r.max_sample_rate().0)
        .min_by_key(|r| (rank(r.sample_format()), r.channels()))
        .map(|r| r.with_sample_rate(cpal::SampleRate(rate)))
        .ok_or_else(|| {
            let offered: Vec<String> = ranges
                .iter()
                .map(|r| format!("{}-{} Hz", r.min_sample_rate().0, r.max_sample_rate().0))
                .collect();
            Error::stage(
                "mic",
                format!(
                    "source.audio.sample_rate = {rate}: the device does not offer it (offers: {}; 0 = its default)",
                    offered.join(", ")
                ),
            )
        })
}

/// Callback state: downmixes, detects overruns from the capture clock, hands blocks on.
struct Feeder {
    tx: Sender<Block>,
    rate: u32,
    channels: usize,
    stats: Arc<MicStats>,
    first: Option<cpal::StreamInstant>,
    delivered: u64,
    /// Seconds the device was away before this stream (a restart): silence to deliver first.
    outage_s: f64,
}

impl Feeder {
    /// Hands `secs` of silence on (at the device rate), counted: audio the device lost, so the
    /// timeline does not silently compress.
    fn silence(&mut self, secs: f64) {
        let n = (secs * self.rate as f64) as usize;
        if n == 0 {
            return;
        }
        self.stats.gaps.fetch_add(1, Ordering::Relaxed);
        let at16k = (secs * crate::message::AUDIO_RATE as f64) as u64;
        self.stats.gap_samples.fetch_add(at16k, Ordering::Relaxed);
        for chunk in vec![0.0f32; n].chunks(self.rate as usize) {
            let block = Block { rate: self.rate, mono: chunk.to_vec() };
            if self.tx.send_timeout(block, Duration::from_millis(500)).is_err() {
                self.stats.dropped_blocks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn feed<T>(&mut self, data: &[T], info: &cpal::InputCallbackInfo)
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        let frames = data.len() / self.channels.max(1);
        let capture = info.timestamp().capture;
        match self.first {
            None => {
                self.first = Some(capture);
                let outage = std::mem::take(&mut self.outage_s);
                if outage > 0.0 {
                    log::warn!("mic: {:.0} ms without a device; filled with silence", outage * 1000.0);
                    self.silence(outage);
                }
            }
            Some(first) => {
                if let Some(elapsed) = capture.duration_since(&first) {
                    let clock = elapsed.as_secs_f64();
                    let had = self.delivered as f64 / self.rate as f64;
                    let slack = (2.0 * frames as f64 / self.rate as f64).max(0.1);
                    if clock > had + slack {
                        self.stats.xruns.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "mic: overrun, {:.0} ms of audio lost ({} so far)",
                            (clock - had) * 1000.0,
                            self.stats.xruns.load(Ordering::Relaxed)
                        );
                        // The lost audio becomes silence (the timeline stays true); resynchronise
                        // so one overrun is counted once.
                        self.silence(clock - had);
                        self.delivered = (clock * self.rate as f64) as u64;
                    }
                }
            }
        }
        self.delivered += frames as u64;
        let ch = self.channels.max(1);
        let mono: Vec<f32> = data
            .chunks_exact(ch)
            .map(|f| f.iter().map(|&s| f32::from_sample_(s)).sum::<f32>() / ch as f32)
            .collect();
        // Wait a little for a pipeline that fell 512 blocks behind (a real device then overruns,
        // which is counted above); drop the block only after that.
        if self.tx.send_timeout(Block { rate: self.rate, mono }, Duration::from_millis(500)).is_err() {
            self.stats.dropped_blocks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn build_stream(
    spec: &MicSpec,
    tx: &Sender<Block>,
    stats: &Arc<MicStats>,
    failed: &Arc<AtomicBool>,
    outage_s: f64,
) -> Result<(cpal::Stream, Opened)> {
    let device = find_device(spec)?;
    let name = device.name().unwrap_or_else(|_| "?".into());
    let supported = stream_config(&device, spec.sample_rate)?;
    let format = supported.sample_format();
    let config: cpal::StreamConfig = supported.into();
    let mut feeder = Feeder {
        tx: tx.clone(),
        rate: config.sample_rate.0,
        channels: config.channels as usize,
        stats: stats.clone(),
        first: None,
        delivered: 0,
        outage_s,
    };
    let failed2 = failed.clone();
    let on_error = move |e: cpal::StreamError| {
        log::warn!("mic: stream error: {e}");
        failed2.store(true, Ordering::SeqCst);
    };
    let on_data = move |data: &cpal::Data, info: &cpal::InputCallbackInfo| {
        use cpal::SampleFormat as F;
        match data.sample_format() {
            F::I8 => data.as_slice::<i8>().map(|d| feeder.feed(d, info)),
            F::I16 => data.as_slice::<i16>().map(|d| feeder.feed(d, info)),
            F::I32 => data.as_slice::<i32>().map(|d| feeder.feed(d, info)),
            F::I64 => data.as_slice::<i64>().map(|d| feeder.feed(d, info)),
            F::U8 => data.as_slice::<u8>().map(|d| feeder.feed(d, info)),
            F::U16 => data.as_slice::<u16>().map(|d| feeder.feed(d, info)),
            F::U32 => data.as_slice::<u32>().map(|d| feeder.feed(d, info)),
            F::U64 => data.as_slice::<u64>().map(|d| feeder.feed(d, info)),
            F::F32 => data.as_slice::<f32>().map(|d| feeder.feed(d, info)),
            F::F64 => data.as_slice::<f64>().map(|d| feeder.feed(d, info)),
            _ => None,
        };
    };
    let stream = device.build_input_stream_raw(&config, format, on_data, on_error, None).map_err(|e| {
        Error::stage(
            "mic",
            format!("cannot open input device {name:?} ({format}, {} Hz): {e}", config.sample_rate.0),
        )
    })?;
    stream.play().map_err(|e| Error::stage("mic", format!("cannot start input device {name:?}: {e}")))?;
    Ok((stream, Opened { name, rate: config.sample_rate.0, channels: config.channels, format }))
}

/// A live microphone, as 16 kHz mono.
pub struct Mic {
    rx: Receiver<Block>,
    thread: Option<std::thread::JoinHandle<()>>,
    quit: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    resampler: MonoResampler,
    rate: u32,
    description: String,
    stats: Arc<MicStats>,
}

impl Mic {
    /// Opens the device now (errors name it and what is available) and starts capturing.
    pub fn open(spec: MicSpec, stop: Arc<AtomicBool>, health: Health) -> Result<Mic> {
        let (tx, rx) = crossbeam_channel::bounded::<Block>(512);
        let (init_tx, init_rx) = crossbeam_channel::bounded::<Result<Opened>>(1);
        let stats = Arc::new(MicStats::default());
        let quit = Arc::new(AtomicBool::new(false));
        let (stats2, quit2, stop2) = (stats.clone(), quit.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("mic-capture".into())
            .spawn(move || capture_thread(spec, tx, init_tx, stats2, quit2, stop2, health))
            .map_err(|e| Error::stage("mic", format!("cannot spawn thread: {e}")))?;
        let opened = match init_rx.recv() {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::stage("mic", "capture thread ended before opening the device"));
            }
        };
        let resampler = MonoResampler::new(opened.rate).map_err(|m| Error::stage("mic", m))?;
        let description = format!(
            "mic:{:?} {} Hz x{} {} → 16 kHz mono",
            opened.name, opened.rate, opened.channels, opened.format
        );
        Ok(Mic { rx, thread: Some(thread), quit, stop, resampler, rate: opened.rate, description, stats })
    }

    /// Capture statistics (overruns, dropped blocks, restarts).
    pub fn stats(&self) -> &MicStats {
        &self.stats
    }
}

fn capture_thread(
    spec: MicSpec,
    tx: Sender<Block>,
    init: Sender<Result<Opened>>,
    stats: Arc<MicStats>,
    quit: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    health: Health,
) {
    let failed = Arc::new(AtomicBool::new(false));
    let mut stream = match build_stream(&spec, &tx, &stats, &failed, 0.0) {
        Ok((s, opened)) => {
            let _ = init.send(Ok(opened));
            Some(s)
        }
        Err(e) => {
            let _ = init.send(Err(e));
            return;
        }
    };
    let mut backoff = Backoff::new(spec.restart_max_s);
    let done = || quit.load(Ordering::SeqCst) || stop.load(Ordering::SeqCst);
    let mut down_since: Option<std::time::Instant> = None;
    while !done() {
        if stream.is_some() && !failed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if stream.take().is_some() {
            health.degrade("mic", "input stream failed; restarting");
            down_since.get_or_insert_with(std::time::Instant::now);
        }
        if !super::sleep_unless_stopped(backoff.next_delay(), &quit) || done() {
            break;
        }
        failed.store(false, Ordering::SeqCst);
        let outage = down_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        match build_stream(&spec, &tx, &stats, &failed, outage) {
            Ok((s, o)) => {
                down_since = None;
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                log::info!("mic: input stream restarted on {:?} ({} Hz)", o.name, o.rate);
                health.recover("mic");
                backoff.reset();
                stream = Some(s);
            }
            Err(e) => {
                log::warn!("mic: restart failed: {e}");
                health.degrade("mic", &format!("input stream failed; restarting: {e}"));
            }
        }
    }
}

impl AudioSource for Mic {
    fn next_samples(&mut self) -> Result<Option<Vec<f32>>> {
        if self.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match self.rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Block { rate, mono }) => {
                let mut out = Vec::new();
                if rate != self.rate {
                    // The device came back at another rate: flush and start a new resampler.
                    out.extend(self.resampler.finish());
                    self.resampler = MonoResampler::new(rate).map_err(|m| Error::stage("mic", m))?;
                    self.rate = rate;
                }
                out.extend(self.resampler.push(&mono));
                Ok(Some(out))
            }
            // Nothing yet (or the device is reconnecting): an empty run lets the caller check `stop`.
            Err(RecvTimeoutError::Timeout) => Ok(Some(Vec::new())),
            Err(RecvTimeoutError::Disconnected) if self.stop.load(Ordering::SeqCst) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::stage("mic", "the capture thread stopped unexpectedly"))
            }
        }
    }

    fn duration(&self) -> Option<f64> {
        None
    }

    fn mic_counters(&self) -> Option<Arc<MicStats>> {
        Some(self.stats.clone())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl Drop for Mic {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        let s = &self.stats;
        log::info!(
            "mic: {} overruns, {} blocks dropped, {} restarts",
            s.xruns.load(Ordering::Relaxed),
            s.dropped_blocks.load(Ordering::Relaxed),
            s.restarts.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_audio_becomes_counted_silence_at_the_device_rate() {
        let (tx, rx) = crossbeam_channel::bounded::<Block>(64);
        let stats = Arc::new(MicStats::default());
        let mut f = Feeder {
            tx,
            rate: 48_000,
            channels: 1,
            stats: stats.clone(),
            first: None,
            delivered: 0,
            outage_s: 0.0,
        };
        f.silence(2.5);
        let blocks: Vec<Block> = rx.try_iter().collect();
        let n: usize = blocks.iter().map(|b| b.mono.len()).sum();
        assert_eq!(n, 120_000, "2.5 s at 48 kHz");
        assert!(blocks.iter().all(|b| b.rate == 48_000 && b.mono.iter().all(|&x| x == 0.0)));
        assert_eq!(stats.overruns(), 1);
        assert!((stats.gap_seconds() - 2.5).abs() < 1e-9);
        f.silence(0.0);
        assert_eq!(stats.overruns(), 1, "nothing lost, nothing counted");
    }
}
