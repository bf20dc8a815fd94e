//! Webcam source: a V4L2 camera through `nokhwa`. The requested size, rate and format are a wish:
//! the camera's closest offer is taken (MJPEG decoded, YUYV/NV12/GRAY converted to RGB24). When
//! the device disappears the source marks itself degraded and reopens it with back-off.
//!
//! Pi CSI cameras under libcamera expose only Bayer formats over V4L2, and Jetson CSI cameras need
//! GStreamer: use the pipe source for those (docs/deploy.md).

use super::pixfmt::{decode_mjpeg, PixelFormat};
use super::{Backoff, Health, RawFrame, VideoSource};
use crate::error::{Error, Result};
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, CameraInfo, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::Camera;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebcamFormat {
    /// Whatever the camera offers closest to the requested size and rate (MJPEG preferred).
    Auto,
    /// Motion JPEG (decoded on the CPU).
    Mjpeg,
    /// Packed YUV 4:2:2.
    Yuyv,
    /// Semi-planar YUV 4:2:0.
    Nv12,
}

/// Which camera and what to ask of it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebcamSpec {
    /// `""` = the first camera; a number = that index (`/dev/videoN`); `/dev/videoN`; else a
    /// case-insensitive part of the camera's name.
    pub device: String,
    /// Requested width in pixels.
    pub width: u32,
    /// Requested height in pixels.
    pub height: u32,
    /// Requested frames per second.
    pub fps: u32,
    /// Requested pixel format.
    pub format: WebcamFormat,
    /// Upper bound of the reconnect back-off, seconds.
    pub reconnect_max_s: f64,
}

const NO_CAMERA_HINT: &str = "check `ls -l /dev/video*` and `v4l2-ctl --list-devices` (package v4l-utils), that the camera is plugged in and that the service user is in group `video`; Raspberry Pi CSI cameras (libcamera) and Jetson CSI cameras (nvarguscamerasrc) are not V4L2 webcams: use source.video.kind = \"pipe\" with rpicam-vid or gst-launch-1.0 (docs/deploy.md)";

fn video_nodes() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("video"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The cameras V4L2 lists, or a "no camera found" error with a hint.
pub fn list_cameras() -> Result<Vec<CameraInfo>> {
    let nodes = video_nodes();
    let found = match nokhwa::query(ApiBackend::Video4Linux) {
        Ok(c) => c,
        Err(e) if nodes.is_empty() => {
            log::debug!("nokhwa query: {e}");
            Vec::new()
        }
        Err(e) => {
            return Err(Error::stage(
                "webcam",
                format!("cannot list cameras ({}): {e}; {NO_CAMERA_HINT}", nodes.join(", ")),
            ))
        }
    };
    if found.is_empty() {
        let seen = if nodes.is_empty() {
            "no /dev/video* device exists".to_string()
        } else {
            format!("{} exist but none is a capture device", nodes.join(", "))
        };
        return Err(Error::stage("webcam", format!("no camera found: {seen}; {NO_CAMERA_HINT}")));
    }
    Ok(found)
}

/// Picks the camera `device` names among `cameras`.
pub fn select(device: &str, cameras: &[CameraInfo]) -> Result<CameraIndex> {
    let listing = || {
        cameras.iter().map(|c| format!("{} = {:?}", c.index(), c.human_name())).collect::<Vec<_>>().join(", ")
    };
    let d = device.trim();
    if d.is_empty() {
        return Ok(cameras[0].index().clone());
    }
    let number = d.strip_prefix("/dev/video").unwrap_or(d);
    if let Ok(n) = number.parse::<u32>() {
        if let Some(c) = cameras.iter().find(|c| c.index().as_index().ok() == Some(n)) {
            return Ok(c.index().clone());
        }
        return Err(Error::stage(
            "webcam",
            format!("source.video.device = {d:?}: no such camera (found: {})", listing()),
        ));
    }
    let lower = d.to_lowercase();
    cameras.iter().find(|c| c.human_name().to_lowercase().contains(&lower)).map(|c| c.index().clone()).ok_or_else(
        || {
            Error::stage(
                "webcam",
                format!(
                    "source.video.device = {d:?}: no camera name contains it (allowed: \"\", an index, /dev/videoN or part of a name; found: {})",
                    listing()
                ),
            )
        },
    )
}

/// A V4L2 camera delivering RGB24 frames stamped with the time since the session started.
pub struct Webcam {
    spec: WebcamSpec,
    camera: Option<Camera>,
    name: String,
    stop: Arc<AtomicBool>,
    health: Health,
    backoff: Backoff,
    last_t: f64,
}

fn open_camera(spec: &WebcamSpec) -> Result<(Camera, String)> {
    let cameras = list_cameras()?;
    let index = select(&spec.device, &cameras)?;
    let name = cameras.iter().find(|c| c.index() == &index).map(|c| c.human_name()).unwrap_or_default();
    let all =
        [FrameFormat::MJPEG, FrameFormat::YUYV, FrameFormat::NV12, FrameFormat::GRAY, FrameFormat::RAWRGB];
    let (first, wanted): (FrameFormat, &[FrameFormat]) = match spec.format {
        WebcamFormat::Auto => (FrameFormat::MJPEG, &all),
        WebcamFormat::Mjpeg => (FrameFormat::MJPEG, &[FrameFormat::MJPEG]),
        WebcamFormat::Yuyv => (FrameFormat::YUYV, &[FrameFormat::YUYV]),
        WebcamFormat::Nv12 => (FrameFormat::NV12, &[FrameFormat::NV12]),
    };
    let want = CameraFormat::new_from(spec.width, spec.height, first, spec.fps);
    let open = |formats: &[FrameFormat]| {
        let req = RequestedFormat::with_formats(RequestedFormatType::Closest(want), formats);
        Camera::with_backend(index.clone(), req, ApiBackend::Video4Linux)
    };
    let mut camera = match open(wanted) {
        Ok(c) => c,
        Err(e) if spec.format != WebcamFormat::Auto => {
            log::warn!(
                "webcam {name:?}: {:?} not available ({e}); falling back to what it offers",
                spec.format
            );
            open(&all)
                .map_err(|e| Error::stage("webcam", format!("cannot open camera {index} {name:?}: {e}")))?
        }
        Err(e) => return Err(Error::stage("webcam", format!("cannot open camera {index} {name:?}: {e}"))),
    };
    camera.open_stream().map_err(|e| {
        Error::stage("webcam", format!("cannot start streaming from camera {index} {name:?}: {e}"))
    })?;
    let f = camera.camera_format();
    if f.width() != spec.width || f.height() != spec.height || f.frame_rate() != spec.fps {
        log::warn!(
            "webcam {name:?}: asked for {}x{}@{}, camera offers {}x{}@{} {}",
            spec.width,
            spec.height,
            spec.fps,
            f.width(),
            f.height(),
            f.frame_rate(),
            f.format()
        );
    }
    Ok((camera, name))
}

/// Converts one captured buffer to RGB24.
fn to_rgb(
    format: FrameFormat,
    width: u32,
    height: u32,
    data: &[u8],
) -> std::result::Result<(u32, u32, Vec<u8>), String> {
    let raw = |pf: PixelFormat| -> std::result::Result<(u32, u32, Vec<u8>), String> {
        let need =
            pf.frame_bytes(width, height).ok_or_else(|| format!("{width}x{height} does not fit {pf}"))?;
        if data.len() < need {
            return Err(format!("short {pf} frame: {} of {need} bytes", data.len()));
        }
        Ok((width, height, pf.to_rgb(data, width, height)))
    };
    match format {
        FrameFormat::MJPEG => decode_mjpeg(data, width, height),
        FrameFormat::YUYV => raw(PixelFormat::Yuyv),
        FrameFormat::NV12 => raw(PixelFormat::Nv12),
        FrameFormat::GRAY => raw(PixelFormat::Gray),
        FrameFormat::RAWRGB => raw(PixelFormat::Rgb24),
        FrameFormat::RAWBGR => {
            let (w, h, mut rgb) = raw(PixelFormat::Rgb24)?;
            rgb.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            Ok((w, h, rgb))
        }
    }
}

impl Webcam {
    /// Opens the camera now; with no camera present this fails with "no camera found" and a hint.
    pub fn open(spec: WebcamSpec, stop: Arc<AtomicBool>, health: Health) -> Result<Webcam> {
        let (camera, name) = open_camera(&spec)?;
        let backoff = Backoff::new(spec.reconnect_max_s);
        Ok(Webcam { spec, camera: Some(camera), name, stop, health, backoff, last_t: -1.0 })
    }

    /// Reopens the camera with back-off until it works or `stop` is set (then false).
    fn reconnect(&mut self, why: &str) -> bool {
        log::warn!("webcam {:?}: {why}; reconnecting", self.name);
        self.health.degrade("webcam", why);
        self.camera = None;
        loop {
            if !super::sleep_unless_stopped(self.backoff.next_delay(), &self.stop) {
                return false;
            }
            match open_camera(&self.spec) {
                Ok((c, name)) => {
                    log::info!("webcam {name:?}: reconnected");
                    self.camera = Some(c);
                    self.name = name;
                    self.backoff.reset();
                    self.health.recover("webcam");
                    return true;
                }
                Err(e) => {
                    self.health.degrade("webcam", &format!("{why}; reconnecting: {e}"));
                    log::debug!("webcam reconnect: {e}");
                }
            }
        }
    }
}

impl VideoSource for Webcam {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let Some(cam) = self.camera.as_mut() else {
                if !self.reconnect("camera closed") {
                    return Ok(None);
                }
                continue;
            };
            let grabbed = cam.frame();
            let t = self.health.media_now();
            match grabbed {
                Ok(buf) => {
                    let res = buf.resolution();
                    match to_rgb(buf.source_frame_format(), res.width(), res.height(), buf.buffer()) {
                        Ok((width, height, rgb)) => {
                            let fps = cam.frame_rate().max(1) as f64;
                            // Media time is the camera's wall clock since start, strictly increasing.
                            let t = t.max(self.last_t + 1e-6);
                            self.last_t = t;
                            return Ok(Some(RawFrame { t, width, height, duration: 1.0 / fps, rgb }));
                        }
                        // A corrupt frame (USB hiccup) is skipped, not fatal.
                        Err(e) => log::warn!("webcam {:?}: frame skipped: {e}", self.name),
                    }
                }
                Err(e) => {
                    if !self.reconnect(&format!("capture failed: {e}")) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn is_live(&self) -> bool {
        true
    }

    fn duration(&self) -> Option<f64> {
        None
    }

    fn describe(&self) -> String {
        match &self.camera {
            Some(c) => {
                let f = c.camera_format();
                format!(
                    "webcam:{} {:?} {}x{}@{} {}",
                    c.index(),
                    self.name,
                    f.width(),
                    f.height(),
                    f.frame_rate(),
                    f.format()
                )
            }
            None => format!("webcam:{:?} (reconnecting)", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams() -> Vec<CameraInfo> {
        vec![
            CameraInfo::new("Integrated Camera", "", "", CameraIndex::Index(0)),
            CameraInfo::new("Logitech C920", "", "", CameraIndex::Index(2)),
        ]
    }

    #[test]
    fn selects_by_index_path_and_name() {
        assert_eq!(select("", &cams()).unwrap(), CameraIndex::Index(0));
        assert_eq!(select("2", &cams()).unwrap(), CameraIndex::Index(2));
        assert_eq!(select("/dev/video2", &cams()).unwrap(), CameraIndex::Index(2));
        assert_eq!(select("c920", &cams()).unwrap(), CameraIndex::Index(2));
        let e = select("5", &cams()).unwrap_err().to_string();
        assert!(e.contains("\"5\"") && e.contains("Logitech C920"), "{e}");
        let e = select("Brio", &cams()).unwrap_err().to_string();
        assert!(e.contains("Brio") && e.contains("part of a name") && e.contains("Integrated"), "{e}");
    }

    #[test]
    fn captured_formats_convert() {
        let (w, h, rgb) = to_rgb(FrameFormat::RAWBGR, 1, 1, &[1, 2, 3]).unwrap();
        assert_eq!((w, h, rgb), (1, 1, vec![3, 2, 1]));
        assert!(to_rgb(FrameFormat::YUYV, 4, 2, &[0; 10]).unwrap_err().contains("short yuyv frame"));
        assert_eq!(to_rgb(FrameFormat::GRAY, 2, 1, &[5, 6]).unwrap().2, vec![5, 5, 5, 6, 6, 6]);
    }
}
