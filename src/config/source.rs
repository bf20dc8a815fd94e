//! `[source.video]` and `[source.audio]`: where frames and audio come from.

use super::*;

/// Where frames and audio come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The video source.
    pub video: VideoSourceConfig,
    /// The audio source.
    pub audio: AudioSourceConfig,
}

/// A video source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VideoSourceConfig {
    /// No video.
    None,
    /// A recording: `.y4m` read natively, anything else decoded by ffmpeg.
    File {
        /// The recording.
        path: PathBuf,
        /// Pace delivery to the wall clock, as a camera would (for the daemon); `false` = as fast as possible.
        #[serde(default)]
        realtime: bool,
    },
    /// A V4L2 webcam (nokhwa); the camera's closest offer to the request is used.
    Webcam {
        /// `""` = first camera; an index (`0`), `/dev/videoN`, or part of the camera's name.
        #[serde(default)]
        device: String,
        /// Requested width in pixels.
        #[serde(default = "default_webcam_width")]
        width: u32,
        /// Requested height in pixels.
        #[serde(default = "default_webcam_height")]
        height: u32,
        /// Requested frames per second.
        #[serde(default = "default_webcam_fps")]
        fps: u32,
        /// Requested pixel format: `auto`, `mjpeg`, `yuyv` or `nv12` (falls back to what the camera offers).
        #[serde(default = "default_webcam_format")]
        format: crate::source::webcam::WebcamFormat,
        /// Upper bound of the reconnect back-off in seconds when the camera disappears.
        #[serde(default = "default_reconnect_max_s")]
        reconnect_max_s: f64,
    },
    /// A command writing raw frames to stdout (rpicam-vid, gst-launch-1.0 … ! fdsink, ffmpeg).
    Pipe {
        /// Program and arguments, no shell (use `["sh", "-c", "…"]` for a pipeline).
        command: Vec<String>,
        /// Frame width in pixels, as the command writes it.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Frames per second the command writes (media time = frame index / fps).
        fps: f64,
        /// Layout of each frame: `rgb24`, `gray`, `yuv420p`, `nv12` or `yuyv`.
        pixel_format: crate::source::pixfmt::PixelFormat,
    },
}

fn default_webcam_width() -> u32 {
    640
}
fn default_webcam_height() -> u32 {
    480
}
fn default_webcam_fps() -> u32 {
    30
}
fn default_webcam_format() -> crate::source::webcam::WebcamFormat {
    crate::source::webcam::WebcamFormat::Auto
}
fn default_reconnect_max_s() -> f64 {
    30.0
}

/// An audio source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AudioSourceConfig {
    /// No audio.
    None,
    /// A recording: `.wav` read natively, anything else (including a video's audio track) via ffmpeg.
    File {
        /// The recording.
        path: PathBuf,
        /// Pace delivery to the wall clock.
        #[serde(default)]
        realtime: bool,
        /// Which channel of a stereo call recording is the customer: `left`, `right` or `mix`
        /// (all channels averaged, the default). Only that channel is decoded and analysed.
        #[serde(default)]
        channel: AudioChannel,
    },
    /// A microphone (cpal; ALSA on Linux), any native rate/format, resampled to 16 kHz mono.
    Mic {
        /// `""` = the default input device; else its name (as `arecord -L` lists it) or part of it.
        #[serde(default)]
        device: String,
        /// Sample rate to ask the device for; 0 = its default.
        #[serde(default)]
        sample_rate: u32,
        /// Upper bound of the restart back-off in seconds after a stream error.
        #[serde(default = "default_reconnect_max_s")]
        restart_max_s: f64,
    },
}

/// The channel of a recording that is analysed (the customer's, on a stereo call recording).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AudioChannel {
    /// Every channel averaged to mono.
    #[default]
    Mix,
    /// The first channel only (the others are never decoded past the demuxer).
    Left,
    /// The second channel only; a mono recording has none, which is an error.
    Right,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig { video: VideoSourceConfig::None, audio: AudioSourceConfig::None }
    }
}

impl SourceConfig {
    /// Checks every value of this section; the error names the key and what is allowed.
    pub(crate) fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |key: &str, value: &dyn std::fmt::Display, allowed: &str| bad(origin, key, value, allowed);
        if let VideoSourceConfig::File { path, .. } = &self.video {
            if path.as_os_str().is_empty() {
                return bad("source.video.path", &"\"\"", "allowed: the path of a recording");
            }
        }
        if let AudioSourceConfig::File { path, .. } = &self.audio {
            if path.as_os_str().is_empty() {
                return bad("source.audio.path", &"\"\"", "allowed: the path of a recording");
            }
        }
        match &self.video {
            VideoSourceConfig::Webcam { width, height, fps, reconnect_max_s, .. } => {
                if !(16..=7680).contains(width) {
                    return bad("source.video.width", width, "allowed: 16 to 7680 pixels");
                }
                if !(16..=4320).contains(height) {
                    return bad("source.video.height", height, "allowed: 16 to 4320 pixels");
                }
                if !(1..=240).contains(fps) {
                    return bad("source.video.fps", fps, "allowed: 1 to 240");
                }
                if !(0.5..=3600.0).contains(reconnect_max_s) {
                    return bad(
                        "source.video.reconnect_max_s",
                        reconnect_max_s,
                        "allowed: 0.5 to 3600 seconds",
                    );
                }
            }
            VideoSourceConfig::Pipe { command, width, height, fps, pixel_format } => {
                if command.first().is_none_or(|p| p.is_empty()) {
                    return bad(
                        "source.video.command",
                        &format!("{command:?}"),
                        "allowed: a program and its arguments, e.g. [\"rpicam-vid\", \"-o\", \"-\"]",
                    );
                }
                if !(16..=7680).contains(width) {
                    return bad("source.video.width", width, "allowed: 16 to 7680 pixels");
                }
                if !(16..=4320).contains(height) {
                    return bad("source.video.height", height, "allowed: 16 to 4320 pixels");
                }
                if !(fps.is_finite() && *fps > 0.0 && *fps <= 240.0) {
                    return bad("source.video.fps", fps, "allowed: above 0, at most 240");
                }
                if pixel_format.frame_bytes(*width, *height).is_none() {
                    return bad(
                        "source.video.pixel_format",
                        pixel_format,
                        &format!("{width}x{height} does not fit it: 4:2:0 formats need even width and height, yuyv an even width"),
                    );
                }
            }
            VideoSourceConfig::None | VideoSourceConfig::File { .. } => {}
        }
        if let AudioSourceConfig::Mic { sample_rate, restart_max_s, .. } = &self.audio {
            if *sample_rate != 0 && !(8000..=384_000).contains(sample_rate) {
                return bad(
                    "source.audio.sample_rate",
                    sample_rate,
                    "allowed: 0 (device default) or 8000 to 384000 Hz",
                );
            }
            if !(0.5..=3600.0).contains(restart_max_s) {
                return bad("source.audio.restart_max_s", restart_max_s, "allowed: 0.5 to 3600 seconds");
            }
        }
        Ok(())
    }
}
