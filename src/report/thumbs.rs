//! Keyframe thumbnails at alert moments (`--report-thumbnails`, off by default: a face on a
//! report is personal data). One small JPEG per alert, cut by ffmpeg from the recording and
//! embedded in the HTML as a `data:` URI.

use super::Session;
use crate::error::{Error, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Width of a thumbnail in pixels (height follows the aspect ratio).
pub const WIDTH: u32 = 160;

/// One keyframe.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// Media time of the frame, seconds.
    pub t: f64,
    /// The JPEG, base64-encoded.
    pub jpeg_base64: String,
}

/// The media time shown for an alert: the middle of the last interval that raised it.
pub fn alert_time(a: &crate::message::AlertMessage) -> f64 {
    let n = a.intervals.len().max(1) as f64;
    (a.end_s - (a.end_s - a.start_s) / (2.0 * n)).max(a.start_s)
}

/// Cuts one frame at media time `t` from `recording` (ffmpeg), scaled to [`WIDTH`] pixels wide.
pub fn extract(recording: &Path, t: f64) -> Result<Thumbnail> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-ss", &format!("{t:.3}"), "-i"])
        .arg(recording)
        .args(["-frames:v", "1", "-vf", &format!("scale={WIDTH}:-2"), "-q:v", "6", "-f", "image2pipe"])
        .args(["-c:v", "mjpeg", "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ToolMissing {
                tool: "ffmpeg".into(),
                hint: "install it (Debian/Ubuntu: apt-get install ffmpeg)".into(),
            },
            _ => Error::stage("report", format!("cannot start ffmpeg: {e}")),
        })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::input(
            recording,
            format!(
                "no video frame at {t:.1} s for the report thumbnail: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(Thumbnail { t, jpeg_base64: base64(&out.stdout) })
}

/// One thumbnail per alert of each session (same nesting as the sessions' alerts).
pub fn for_alerts(recording: &Path, sessions: &[Session]) -> Result<Vec<Vec<Option<Thumbnail>>>> {
    sessions
        .iter()
        .map(|s| s.alerts.iter().map(|a| extract(recording, alert_time(a)).map(Some)).collect())
        .collect()
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                s.push(ABC[((n >> shift) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let v = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ];
        for (plain, enc) in v {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain}");
        }
        assert_eq!(base64("foobar".as_bytes()), "Zm9vYmFy");
    }
}
