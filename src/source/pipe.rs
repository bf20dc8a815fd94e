//! Pipe source: any command that writes raw video frames to its standard output — `rpicam-vid`
//! for Pi CSI cameras, `gst-launch-1.0 … ! fdsink` for Jetson CSI cameras, `ffmpeg -f rawvideo`
//! for RTSP cameras or files. The frame geometry (size, rate, pixel format) comes from the config,
//! because a raw stream carries none. See docs/deploy.md for recipes.

use super::child::ChildProcess;
use super::pixfmt::PixelFormat;
use super::{RawFrame, VideoSource};
use crate::error::{Error, Result};
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a pipe source reads: the command and the frames' geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct PipeSpec {
    /// Program and arguments (no shell; use `["sh", "-c", "…"]` for a shell pipeline).
    pub command: Vec<String>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second the command produces (stamps media time: frame index / fps).
    pub fps: f64,
    /// Layout of each frame.
    pub pixel_format: PixelFormat,
}

impl PipeSpec {
    /// The command as one line for messages, credentials masked (`rtsp://***@cam/…`).
    pub fn command_line(&self) -> String {
        let line = self
            .command
            .iter()
            .map(|a| if a.contains(' ') || a.is_empty() { format!("{a:?}") } else { a.clone() })
            .collect::<Vec<_>>()
            .join(" ");
        crate::secrets::redact(&line).into_owned()
    }
}

/// Raw frames read from a child process's stdout.
pub struct PipeVideo {
    spec: PipeSpec,
    frame_bytes: usize,
    child: ChildProcess,
    index: u64,
    stop: Arc<AtomicBool>,
    finished: bool,
}

fn source_error(spec: &PipeSpec, msg: impl std::fmt::Display) -> Error {
    let msg = crate::secrets::redact(&msg.to_string()).into_owned();
    Error::stage("video pipe", format!("command `{}`: {msg}", spec.command_line()))
}

impl PipeVideo {
    /// Starts the command. It runs in its own process group (a Ctrl-C meant for the daemon does
    /// not kill it first; dropping the source kills the whole group), without credential
    /// environment variables. `stop` ends the stream quietly, even while a read waits.
    pub fn spawn(spec: PipeSpec, stop: Arc<AtomicBool>) -> Result<PipeVideo> {
        let Some(program) = spec.command.first() else {
            return Err(Error::stage("video pipe", "source.video.command is empty"));
        };
        let frame_bytes = spec.pixel_format.frame_bytes(spec.width, spec.height).ok_or_else(|| {
            source_error(
                &spec,
                format!(
                    "{}x{} does not fit pixel_format {} (4:2:0 needs even width and height, 4:2:2 an even width)",
                    spec.width, spec.height, spec.pixel_format
                ),
            )
        })?;
        let child = ChildProcess::spawn(program, &spec.command[1..]).map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::ToolMissing {
                    tool: crate::secrets::redact(program).into_owned(),
                    hint: format!(
                        "source.video.command = `{}`: install it or give its full path",
                        spec.command_line()
                    ),
                }
            } else {
                source_error(&spec, format!("cannot start it: {e}"))
            }
        })?;
        Ok(PipeVideo { spec, frame_bytes, child, index: 0, stop, finished: false })
    }

    fn stderr_tail(&mut self) -> String {
        let _ = self.child.wait();
        let tail = self.child.stderr_tail(5);
        if tail.is_empty() {
            "(nothing on stderr)".into()
        } else {
            format!("stderr: {tail}")
        }
    }

    /// The stream ended after `filled` bytes of the current frame: end, or say what went wrong.
    fn ended(&mut self, filled: usize) -> Result<Option<RawFrame>> {
        self.finished = true;
        let status = self.child.wait().map_err(|e| source_error(&self.spec, format!("wait: {e}")))?;
        if self.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let tail = self.stderr_tail();
        if filled > 0 {
            return Err(source_error(
                &self.spec,
                format!(
                    "output ended mid-frame after {} frames: short frame of {filled} of {} bytes ({}x{} {}); check source.video.width, height and pixel_format against what the command writes ({status}; {tail})",
                    self.index, self.frame_bytes, self.spec.width, self.spec.height, self.spec.pixel_format
                ),
            ));
        }
        if self.index == 0 {
            return Err(source_error(
                &self.spec,
                format!("exited before its first frame ({status}; {tail})"),
            ));
        }
        if !status.success() {
            return Err(source_error(
                &self.spec,
                format!("failed after {} frames ({status}; {tail})", self.index),
            ));
        }
        log::info!("video pipe: command ended after {} frames", self.index);
        Ok(None)
    }
}

/// Fills `buf` with one raw frame through `read` (which returns `Ok(None)` when the read was
/// stopped); returns how many bytes it got — less than `buf.len()` only when the stream ended
/// first — or `None` when stopped. The one loop the pipe source and its fuzz target share.
pub fn fill_frame(
    buf: &mut [u8],
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<Option<usize>>,
) -> std::io::Result<Option<usize>> {
    let mut filled = 0;
    while filled < buf.len() {
        match read(&mut buf[filled..]) {
            Ok(Some(0)) => break,
            Ok(Some(n)) => filled += n,
            Ok(None) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(filled))
}

/// [`fill_frame`] from any byte stream (never stopped).
pub fn read_frame(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    Ok(fill_frame(buf, |b| stream.read(b).map(Some))?.unwrap_or(0))
}

impl VideoSource for PipeVideo {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        if self.finished {
            return Ok(None);
        }
        let mut buf = vec![0u8; self.frame_bytes];
        let stop = self.stop.clone();
        match fill_frame(&mut buf, |b| self.child.read(b, Some(&stop))) {
            Ok(Some(n)) if n == buf.len() => {}
            Ok(Some(filled)) => return self.ended(filled),
            // Stopped while waiting for the command: end quietly (Drop kills its group).
            Ok(None) => {
                self.finished = true;
                return Ok(None);
            }
            Err(e) => return Err(source_error(&self.spec, format!("reading its output: {e}"))),
        }
        let t = self.index as f64 / self.spec.fps;
        self.index += 1;
        let (w, h) = (self.spec.width, self.spec.height);
        let rgb = self.spec.pixel_format.to_rgb(&buf, w, h);
        Ok(Some(RawFrame { t, width: w, height: h, duration: 1.0 / self.spec.fps, rgb }))
    }

    fn duration(&self) -> Option<f64> {
        None
    }

    fn describe(&self) -> String {
        format!(
            "pipe:`{}` {}x{} {} at {} fps",
            self.spec.command_line(),
            self.spec.width,
            self.spec.height,
            self.spec.pixel_format,
            self.spec.fps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cmd: &[&str], w: u32, h: u32, f: PixelFormat) -> PipeSpec {
        PipeSpec {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            width: w,
            height: h,
            fps: 10.0,
            pixel_format: f,
        }
    }

    fn open(s: PipeSpec) -> Result<PipeVideo> {
        PipeVideo::spawn(s, Arc::new(AtomicBool::new(false)))
    }

    #[test]
    fn reads_whole_frames_then_ends() {
        // Two 2x2 gray frames (8 bytes) from printf.
        let mut p = open(spec(&["printf", "ABCDEFGH"], 2, 2, PixelFormat::Gray)).unwrap();
        let f0 = p.next_frame().unwrap().unwrap();
        assert_eq!((f0.t, f0.rgb.len()), (0.0, 12));
        assert_eq!(&f0.rgb[..3], b"AAA");
        let f1 = p.next_frame().unwrap().unwrap();
        assert!((f1.t - 0.1).abs() < 1e-9);
        assert!(p.next_frame().unwrap().is_none());
        assert!(p.next_frame().unwrap().is_none());
    }

    #[test]
    fn missing_command_is_named() {
        let e =
            open(spec(&["no-such-camera-tool", "--x"], 2, 2, PixelFormat::Gray)).err().unwrap().to_string();
        assert!(
            e.contains("no-such-camera-tool") && e.contains("not found") && e.contains("full path"),
            "{e}"
        );
    }

    #[test]
    fn early_exit_and_short_frame_are_explained() {
        let mut p =
            open(spec(&["sh", "-c", "echo camera busy >&2; exit 3"], 2, 2, PixelFormat::Gray)).unwrap();
        let e = p.next_frame().unwrap_err().to_string();
        assert!(
            e.contains("sh -c") && e.contains("before its first frame") && e.contains("camera busy"),
            "{e}"
        );
        assert!(e.contains("exit status: 3"), "{e}");
        let mut p = open(spec(&["printf", "ABCDEFGHIJ"], 2, 2, PixelFormat::Gray)).unwrap();
        assert!(p.next_frame().unwrap().is_some());
        assert!(p.next_frame().unwrap().is_some());
        let e = p.next_frame().unwrap_err().to_string();
        assert!(
            e.contains("printf") && e.contains("short frame of 2 of 4 bytes") && e.contains("pixel_format"),
            "{e}"
        );
    }

    #[test]
    fn credentials_in_the_command_never_reach_messages() {
        let cmd = [
            "sh",
            "-c",
            "echo 'rtsp://admin:hunter22@cam: 401 Unauthorized' >&2; exit 1",
            "rtsp://admin:hunter22@cam/s",
        ];
        let s = spec(&cmd, 2, 2, PixelFormat::Gray);
        assert!(!s.command_line().contains("hunter22"), "{}", s.command_line());
        let mut p = open(s).unwrap();
        assert!(!p.describe().contains("hunter22"), "{}", p.describe());
        let e = p.next_frame().unwrap_err().to_string();
        assert!(e.contains("401 Unauthorized") && e.contains("rtsp://***@cam"), "{e}");
        assert!(!e.contains("hunter22"), "{e}");
    }

    #[test]
    fn stop_ends_a_read_from_a_silent_command() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut p = PipeVideo::spawn(spec(&["sleep", "300"], 2, 2, PixelFormat::Gray), stop.clone()).unwrap();
        let t0 = std::time::Instant::now();
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            s2.store(true, Ordering::SeqCst);
        });
        assert!(p.next_frame().unwrap().is_none());
        h.join().unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn odd_geometry_for_yuv_is_refused() {
        let e = open(spec(&["true"], 3, 3, PixelFormat::Yuv420p)).err().unwrap().to_string();
        assert!(e.contains("3x3") && e.contains("yuv420p") && e.contains("even"), "{e}");
    }
}
