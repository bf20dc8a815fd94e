//! Raw pixel formats of live sources (camera pipes, V4L2 webcams) and their conversion to RGB24
//! (BT.601, studio range for YUV, as cameras and ffmpeg produce by default).

use super::y4m::yuv_to_rgb;
use serde::{Deserialize, Serialize};

/// A raw frame layout: how many bytes a `width`×`height` frame takes and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B (ffmpeg `rgb24`).
    Rgb24,
    /// 8-bit luma only (ffmpeg `gray`).
    Gray,
    /// Planar Y, then U and V at half width and half height (ffmpeg `yuv420p`, I420).
    Yuv420p,
    /// Planar Y, then interleaved UV at half width and half height (ffmpeg `nv12`).
    Nv12,
    /// Packed 4:2:2 Y0 U Y1 V (ffmpeg `yuyv422`, V4L2 YUYV).
    Yuyv,
}

impl PixelFormat {
    /// Every format, for error messages.
    pub const ALLOWED: &'static str = "rgb24, gray, yuv420p, nv12, yuyv";

    /// The ffmpeg `-pix_fmt` name of this format.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Gray => "gray",
            PixelFormat::Yuv420p => "yuv420p",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Yuyv => "yuyv422",
        }
    }

    /// Bytes of one `width`×`height` frame; `None` when the geometry does not fit the format
    /// (4:2:0 and 4:2:2 need even sizes).
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb24 => Some(w * h * 3),
            PixelFormat::Gray => Some(w * h),
            PixelFormat::Yuv420p | PixelFormat::Nv12 => {
                (w % 2 == 0 && h % 2 == 0).then_some(w * h + 2 * (w / 2) * (h / 2))
            }
            PixelFormat::Yuyv => (w % 2 == 0).then_some(w * h * 2),
        }
    }

    /// Converts one frame (exactly [`PixelFormat::frame_bytes`] long) to RGB24.
    pub fn to_rgb(self, data: &[u8], width: u32, height: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let mut out = vec![0u8; w * h * 3];
        match self {
            PixelFormat::Rgb24 => out.copy_from_slice(&data[..w * h * 3]),
            PixelFormat::Gray => {
                for (px, &y) in out.chunks_exact_mut(3).zip(data) {
                    px.copy_from_slice(&[y, y, y]);
                }
            }
            PixelFormat::Yuv420p | PixelFormat::Nv12 => {
                let (y, chroma) = data.split_at(w * h);
                let cw = w / 2;
                for row in 0..h {
                    for col in 0..w {
                        let c = (row / 2) * cw + col / 2;
                        let (u, v) = if self == PixelFormat::Yuv420p {
                            (chroma[c], chroma[cw * (h / 2) + c])
                        } else {
                            (chroma[2 * c], chroma[2 * c + 1])
                        };
                        let px = yuv_to_rgb(y[row * w + col] as f32, u as f32, v as f32, false);
                        out[(row * w + col) * 3..][..3].copy_from_slice(&px);
                    }
                }
            }
            PixelFormat::Yuyv => {
                for (i, quad) in data[..w * h * 2].chunks_exact(4).enumerate() {
                    let (u, v) = (quad[1] as f32, quad[3] as f32);
                    let a = yuv_to_rgb(quad[0] as f32, u, v, false);
                    let b = yuv_to_rgb(quad[2] as f32, u, v, false);
                    out[i * 6..][..3].copy_from_slice(&a);
                    out[i * 6 + 3..][..3].copy_from_slice(&b);
                }
            }
        }
        out
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Gray => "gray",
            PixelFormat::Yuv420p => "yuv420p",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Yuyv => "yuyv",
        })
    }
}

/// Decodes one MJPEG (JPEG) frame to RGB24 with its size; a frame claiming more than
/// `max_width`×`max_height` (the size negotiated with the camera) is refused before its pixels
/// are allocated.
pub fn decode_mjpeg(data: &[u8], max_width: u32, max_height: u32) -> Result<(u32, u32, Vec<u8>), String> {
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(data), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_width);
    limits.max_image_height = Some(max_height);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => format!(
            "MJPEG frame is larger than the camera's {max_width}x{max_height} (allowed: at most that size): {e}"
        ),
        e => format!("cannot decode MJPEG frame: {e}"),
    })?;
    let rgb = img.to_rgb8();
    Ok((rgb.width(), rgb.height(), rgb.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // BT.601 studio-range red (Y=81, Cb=90, Cr=240) in every YUV layout converts to red.
    const RED: [u8; 3] = [255, 0, 0];

    fn close(a: &[u8], b: &[u8; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| (*x as i32 - *y as i32).abs() <= 2)
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(PixelFormat::Rgb24.frame_bytes(4, 2), Some(24));
        assert_eq!(PixelFormat::Gray.frame_bytes(4, 2), Some(8));
        assert_eq!(PixelFormat::Yuv420p.frame_bytes(4, 2), Some(12));
        assert_eq!(PixelFormat::Nv12.frame_bytes(4, 2), Some(12));
        assert_eq!(PixelFormat::Yuyv.frame_bytes(4, 2), Some(16));
        assert_eq!(PixelFormat::Yuv420p.frame_bytes(5, 2), None);
        assert_eq!(PixelFormat::Yuyv.frame_bytes(3, 3), None);
    }

    #[test]
    fn yuv_layouts_convert_to_the_same_red() {
        let i420 = [81, 81, 81, 81, 90, 240];
        let nv12 = [81, 81, 81, 81, 90, 240];
        let yuyv = [81, 90, 81, 240, 81, 90, 81, 240];
        for (fmt, data) in [
            (PixelFormat::Yuv420p, &i420[..]),
            (PixelFormat::Nv12, &nv12[..]),
            (PixelFormat::Yuyv, &yuyv[..]),
        ] {
            let rgb = fmt.to_rgb(data, 2, 2);
            assert!(rgb.chunks(3).all(|p| close(p, &RED)), "{fmt}: {rgb:?}");
        }
        assert_eq!(PixelFormat::Gray.to_rgb(&[7, 9], 2, 1), vec![7, 7, 7, 9, 9, 9]);
    }

    #[test]
    fn chroma_is_indexed_per_column_pair() {
        // Left half red, right half blue (Y=41, Cb=240, Cr=110) on a 4x2 frame.
        let i420 = [81, 81, 41, 41, 81, 81, 41, 41, 90, 240, 240, 110];
        let nv12 = [81, 81, 41, 41, 81, 81, 41, 41, 90, 240, 240, 110];
        let a = PixelFormat::Yuv420p.to_rgb(&i420, 4, 2);
        assert!(close(&a[..3], &RED) && a[9 + 2] > 200, "{a:?}");
        let b = PixelFormat::Nv12.to_rgb(&nv12, 4, 2);
        assert!(close(&b[..3], &RED) && b[9 + 2] > 200, "{b:?}");
    }

    #[test]
    fn mjpeg_round_trip_and_garbage() {
        let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 30]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        let (w, h, rgb) = decode_mjpeg(&jpeg, 640, 480).unwrap();
        assert_eq!((w, h, rgb.len()), (16, 8, 16 * 8 * 3));
        assert!(close(&rgb[..3], &[200, 30, 30]));
        assert!(decode_mjpeg(b"not a jpeg", 640, 480).unwrap_err().contains("MJPEG"));
        let e = decode_mjpeg(&jpeg, 15, 8).unwrap_err();
        assert!(e.contains("larger than the camera's 15x8"), "{e}");
    }
}
