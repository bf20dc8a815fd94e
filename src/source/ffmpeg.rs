//! Any container (mp4, mkv, webm, mpg …) decoded by an `ffmpeg` subprocess: raw RGB24 frames at
//! the analysis frame rate, and s16le 16 kHz mono audio.

use super::child::ChildProcess;
use super::{AudioSource, RawFrame, VideoSource};
use crate::error::{Error, Result};
use crate::message::AUDIO_RATE;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INSTALL_HINT: &str =
    "install it (Debian/Ubuntu: `apt-get install ffmpeg`) or convert the recording to .y4m + .wav";

/// What `ffprobe` reports about a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// It has a video stream.
    pub has_video: bool,
    /// It has an audio stream.
    pub has_audio: bool,
    /// Width of the first video stream.
    pub width: u32,
    /// Height of the first video stream.
    pub height: u32,
    /// Container duration in seconds, when known.
    pub duration: Option<f64>,
    /// Channels of the first audio stream, when known.
    pub audio_channels: Option<u32>,
}

fn spawn_error(tool: &str, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::ToolMissing { tool: tool.into(), hint: INSTALL_HINT.into() }
    } else {
        Error::stage("source", format!("cannot start {tool}: {e}"))
    }
}

/// Runs `ffprobe` on `path`.
pub fn probe(path: &Path) -> Result<Probe> {
    let mut cmd = Command::new("ffprobe");
    super::child::clean_env(&mut cmd);
    let out = cmd
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height,channels:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error("ffprobe", e))?;
    if !out.status.success() {
        let msg = crate::secrets::redact(String::from_utf8_lossy(&out.stderr).trim()).into_owned();
        return Err(Error::input(path, format!("ffprobe cannot read it: {msg}")));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::input(path, format!("unexpected ffprobe output: {e}")))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok());
    Ok(Probe {
        has_video: video.is_some(),
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
        width: video.and_then(|s| s["width"].as_u64()).unwrap_or(0) as u32,
        height: video.and_then(|s| s["height"].as_u64()).unwrap_or(0) as u32,
        duration,
        audio_channels: streams
            .iter()
            .find(|s| s["codec_type"] == "audio")
            .and_then(|s| s["channels"].as_u64())
            .map(|c| c as u32),
    })
}

/// A running ffmpeg process whose stdout we read and whose stderr we keep (bounded) for errors.
struct Decoder {
    path: PathBuf,
    child: ChildProcess,
    done: bool,
}

impl Decoder {
    fn spawn(path: &Path, output_args: &[String]) -> Result<Decoder> {
        let mut args: Vec<String> =
            ["-nostdin", "-hide_banner", "-v", "error", "-i"].iter().map(|s| s.to_string()).collect();
        args.push(path.to_string_lossy().into_owned());
        args.extend(output_args.iter().cloned());
        args.push("pipe:1".into());
        let child = ChildProcess::spawn("ffmpeg", &args).map_err(|e| spawn_error("ffmpeg", e))?;
        Ok(Decoder { path: path.to_path_buf(), child, done: false })
    }

    /// Fills `buf` completely; `Ok(false)` on a clean end of stream at a record boundary.
    fn read_record(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.child.read(&mut buf[filled..], None) {
                Ok(Some(0)) | Ok(None) => break,
                Ok(Some(n)) => filled += n,
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        }
        if filled == buf.len() {
            return Ok(true);
        }
        self.finish()?;
        if filled == 0 {
            Ok(false)
        } else {
            Err(Error::input(
                &self.path,
                format!("ffmpeg output ended mid-record ({filled} of {} bytes)", buf.len()),
            ))
        }
    }

    /// Reads what is available, up to `buf.len()` bytes; 0 at end of stream.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.child.read(buf, None) {
            Ok(Some(0)) | Ok(None) => {
                self.finish()?;
                Ok(0)
            }
            Ok(Some(n)) => Ok(n),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let status = self.child.wait().map_err(|e| Error::io(&self.path, e))?;
        if status.success() {
            return Ok(());
        }
        let tail = self.child.stderr_tail(5);
        Err(Error::input(&self.path, format!("ffmpeg failed to decode it ({status}): {tail}")))
    }
}

/// Video frames decoded by ffmpeg, already sampled at the analysis frame rate.
pub struct FfmpegVideo {
    decoder: Decoder,
    width: u32,
    height: u32,
    fps: f64,
    index: u64,
    duration: Option<f64>,
}

impl FfmpegVideo {
    /// Starts ffmpeg on `path`, producing RGB24 frames at `fps`.
    pub fn spawn(path: &Path, probe: &Probe, fps: f64) -> Result<FfmpegVideo> {
        if probe.width == 0 || probe.height == 0 {
            return Err(Error::input(path, "video stream has no frame size"));
        }
        let args: Vec<String> =
            ["-map", "0:v:0", "-an", "-vf", &format!("fps={fps}"), "-pix_fmt", "rgb24", "-f", "rawvideo"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        Ok(FfmpegVideo {
            decoder: Decoder::spawn(path, &args)?,
            width: probe.width,
            height: probe.height,
            fps,
            index: 0,
            duration: probe.duration,
        })
    }
}

impl VideoSource for FfmpegVideo {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        let mut rgb = vec![0u8; self.width as usize * self.height as usize * 3];
        if !self.decoder.read_record(&mut rgb)? {
            return Ok(None);
        }
        let t = self.index as f64 / self.fps;
        self.index += 1;
        Ok(Some(RawFrame { t, width: self.width, height: self.height, duration: 1.0 / self.fps, rgb }))
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    fn describe(&self) -> String {
        format!(
            "ffmpeg-video:{} {}x{} sampled at {} fps",
            self.decoder.path.display(),
            self.width,
            self.height,
            self.fps
        )
    }
}

/// Audio decoded and resampled to 16 kHz mono by ffmpeg.
pub struct FfmpegAudio {
    decoder: Decoder,
    carry: Option<u8>,
    duration: Option<f64>,
}

impl FfmpegAudio {
    /// Starts ffmpeg on `path`'s first audio stream, all channels mixed.
    pub fn spawn(path: &Path, probe: &Probe) -> Result<FfmpegAudio> {
        FfmpegAudio::spawn_channel(path, probe, crate::config::AudioChannel::Mix)
    }

    /// Starts ffmpeg on `path`'s first audio stream keeping only `channel` (ffmpeg's `pan`
    /// filter: `left` = c0, `right` = c1; the other channel is dropped before resampling).
    pub fn spawn_channel(
        path: &Path,
        probe: &Probe,
        channel: crate::config::AudioChannel,
    ) -> Result<FfmpegAudio> {
        use crate::config::AudioChannel;
        let rate = AUDIO_RATE.to_string();
        let mut args: Vec<String> = ["-map", "0:a:0", "-vn"].iter().map(|s| s.to_string()).collect();
        match channel {
            AudioChannel::Mix => {}
            AudioChannel::Left => args.extend(["-af".to_string(), "pan=mono|c0=c0".to_string()]),
            AudioChannel::Right => {
                if probe.audio_channels.is_some_and(|c| c < 2) {
                    return Err(Error::input(
                        path,
                        "source.audio.channel = \"right\" but the recording is mono (allowed: left or mix)",
                    ));
                }
                args.extend(["-af".to_string(), "pan=mono|c0=c1".to_string()]);
            }
        }
        args.extend(["-ac", "1", "-ar", &rate, "-f", "s16le"].iter().map(|s| s.to_string()));
        Ok(FfmpegAudio { decoder: Decoder::spawn(path, &args)?, carry: None, duration: probe.duration })
    }
}

impl AudioSource for FfmpegAudio {
    fn next_samples(&mut self) -> Result<Option<Vec<f32>>> {
        let mut buf = vec![0u8; 8192];
        let mut start = 0;
        if let Some(b) = self.carry.take() {
            buf[0] = b;
            start = 1;
        }
        let n = self.decoder.read_some(&mut buf[start..])?;
        if n == 0 {
            return Ok(None);
        }
        let total = start + n;
        let even = total & !1;
        if even < total {
            self.carry = Some(buf[even]);
        }
        let samples =
            buf[..even].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect();
        Ok(Some(samples))
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    fn describe(&self) -> String {
        format!("ffmpeg-audio:{} 16 kHz mono", self.decoder.path.display())
    }
}
