//! A pure-Rust YUV4MPEG2 (`.y4m`) reader: 4:2:0, 4:2:2, 4:4:4 and mono, 8-bit, converted to RGB24.

use super::{RawFrame, VideoSource};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Chroma layout of a Y4M stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0 (any siting).
    C420,
    /// 4:2:2.
    C422,
    /// 4:4:4.
    C444,
    /// Luma only.
    Mono,
}

/// The parsed stream header.
#[derive(Debug, Clone, PartialEq)]
pub struct Y4mHeader {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate numerator.
    pub fps_num: u32,
    /// Frame rate denominator.
    pub fps_den: u32,
    /// Chroma layout.
    pub chroma: Chroma,
    /// Full-range (0-255) luma instead of studio range (16-235).
    pub full_range: bool,
}

impl Y4mHeader {
    /// Parses the header line (without the trailing newline).
    pub fn parse(line: &str) -> std::result::Result<Y4mHeader, String> {
        let mut parts = line.split(' ');
        if parts.next() != Some("YUV4MPEG2") {
            return Err("not a YUV4MPEG2 file (header must start with `YUV4MPEG2`)".into());
        }
        let (mut w, mut h, mut fps, mut chroma, mut full) = (None, None, None, Chroma::C420, false);
        for p in parts.filter(|p| !p.is_empty()) {
            if !p.is_ascii() {
                return Err(format!(
                    "header tag `{p}` is not ASCII (allowed: W<width> H<height> F<num>:<den> C<colour space> I, A and X tags)"
                ));
            }
            let (tag, val) = p.split_at(1);
            match tag {
                "W" => w = val.parse::<u32>().ok(),
                "H" => h = val.parse::<u32>().ok(),
                "F" => {
                    fps = val.split_once(':').and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)))
                }
                "C" => {
                    chroma = match val {
                        "420" | "420jpeg" | "420paldv" | "420mpeg2" => Chroma::C420,
                        "422" => Chroma::C422,
                        "444" => Chroma::C444,
                        "mono" => Chroma::Mono,
                        other => {
                            return Err(format!(
                                "colour space C{other} is not supported (allowed: 420, 420jpeg, 420paldv, 420mpeg2, 422, 444, mono; 8-bit only)"
                            ))
                        }
                    }
                }
                "X" if val == "COLORRANGE=FULL" => full = true,
                _ => {}
            }
        }
        let (width, height) = match (w, h) {
            (Some(w), Some(h)) if w > 0 && h > 0 && w <= 16384 && h <= 16384 => (w, h),
            _ => return Err("header lacks a valid W/H (1 to 16384)".into()),
        };
        let (fps_num, fps_den) = match fps {
            Some((n, d)) if n > 0 && d > 0 => (n, d),
            _ => return Err("header lacks a valid frame rate F<num>:<den>".into()),
        };
        Ok(Y4mHeader { width, height, fps_num, fps_den, chroma, full_range: full })
    }

    /// Bytes of one frame's planes.
    pub fn frame_bytes(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = self.chroma_size();
        w * h + if self.chroma == Chroma::Mono { 0 } else { 2 * cw * ch }
    }

    fn chroma_size(&self) -> (usize, usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.chroma {
            Chroma::C420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::C422 => (w.div_ceil(2), h),
            Chroma::C444 => (w, h),
            Chroma::Mono => (0, 0),
        }
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.fps_num as f64 / self.fps_den as f64
    }

    /// Converts one frame's planes to RGB24 (BT.601).
    pub fn to_rgb(&self, planes: &[u8]) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = self.chroma_size();
        let (y, rest) = planes.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        let mut out = vec![0u8; w * h * 3];
        for row in 0..h {
            let crow = match self.chroma {
                Chroma::C420 => row / 2,
                _ => row,
            };
            for col in 0..w {
                let ccol = match self.chroma {
                    Chroma::C444 => col,
                    _ => col / 2,
                };
                let yy = y[row * w + col] as f32;
                let (cb, cr) = if self.chroma == Chroma::Mono {
                    (128.0, 128.0)
                } else {
                    (u[crow * cw + ccol] as f32, v[crow * cw + ccol] as f32)
                };
                let px = yuv_to_rgb(yy, cb, cr, self.full_range);
                out[(row * w + col) * 3..][..3].copy_from_slice(&px);
            }
        }
        out
    }
}

/// BT.601 YCbCr → RGB, studio or full range.
pub fn yuv_to_rgb(y: f32, cb: f32, cr: f32, full_range: bool) -> [u8; 3] {
    let (y, scale_c) = if full_range { (y, 1.0) } else { ((y - 16.0) * 255.0 / 219.0, 255.0 / 224.0) };
    let (cb, cr) = ((cb - 128.0) * scale_c, (cr - 128.0) * scale_c);
    let r = y + 1.402 * cr;
    let g = y - 0.344_136 * cb - 0.714_136 * cr;
    let b = y + 1.772 * cb;
    [r.round().clamp(0.0, 255.0) as u8, g.round().clamp(0.0, 255.0) as u8, b.round().clamp(0.0, 255.0) as u8]
}

/// Reads frames from a `.y4m` file.
pub struct Y4mReader {
    path: PathBuf,
    reader: BufReader<File>,
    header: Y4mHeader,
    index: u64,
    duration: Option<f64>,
    planes: Vec<u8>,
}

impl Y4mReader {
    /// Opens `path` and parses its header.
    pub fn open(path: &Path) -> Result<Y4mReader> {
        let file = File::open(path).map_err(|e| Error::input(path, format!("cannot open: {e}")))?;
        let size = file.metadata().map(|m| m.len()).ok();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        reader.by_ref().take(4096).read_until(b'\n', &mut line).map_err(|e| Error::io(path, e))?;
        if line.last() != Some(&b'\n') {
            return Err(Error::input(path, "not a YUV4MPEG2 file (no header line)"));
        }
        let header_len = line.len();
        if let Some(at) = line.iter().position(|b| !b.is_ascii()) {
            return Err(Error::input(
                path,
                format!(
                    "header line: byte {at} (0x{:02x}) is not ASCII; a YUV4MPEG2 header is ASCII: `YUV4MPEG2 W<width> H<height> F<num>:<den> [C<colour space>] …`",
                    line[at]
                ),
            ));
        }
        let text = std::str::from_utf8(&line[..line.len() - 1]).expect("checked ASCII above");
        let header = Y4mHeader::parse(text).map_err(|m| Error::input(path, m))?;
        let duration = size.map(|s| {
            let per_frame = header.frame_bytes() as u64 + 6;
            let frames = s.saturating_sub(header_len as u64) / per_frame;
            frames as f64 / header.fps()
        });
        Ok(Y4mReader { path: path.to_path_buf(), reader, header, index: 0, duration, planes: Vec::new() })
    }

    /// The stream header.
    pub fn header(&self) -> &Y4mHeader {
        &self.header
    }
}

impl VideoSource for Y4mReader {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        let mut line = Vec::new();
        let n = self
            .reader
            .by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        if !line.starts_with(b"FRAME") || line.last() != Some(&b'\n') {
            return Err(Error::input(
                &self.path,
                format!(
                    "frame {}: expected a `FRAME` marker line, found {:?}",
                    self.index,
                    String::from_utf8_lossy(&line)
                ),
            ));
        }
        // Read what is there (the buffer grows with the data, up to one frame), so a header
        // claiming huge frames does not allocate them before the bytes exist.
        let want = self.header.frame_bytes();
        self.planes.clear();
        let got =
            self.reader.by_ref().take(want as u64).read_to_end(&mut self.planes).map_err(|e| {
                Error::input(&self.path, format!("frame {}: cannot read it: {e}", self.index))
            })?;
        if got < want {
            return Err(Error::input(
                &self.path,
                format!("frame {} is truncated ({got} of {want} bytes); the file ends mid-frame", self.index),
            ));
        }
        let t = self.index as f64 * self.header.fps_den as f64 / self.header.fps_num as f64;
        self.index += 1;
        Ok(Some(RawFrame {
            t,
            width: self.header.width,
            height: self.header.height,
            duration: 1.0 / self.header.fps(),
            rgb: self.header.to_rgb(&self.planes),
        }))
    }

    fn duration(&self) -> Option<f64> {
        self.duration
    }

    fn describe(&self) -> String {
        format!(
            "y4m:{} {}x{}@{:.3}",
            self.path.display(),
            self.header.width,
            self.header.height,
            self.header.fps()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_typical_ffmpeg_header() {
        let h = Y4mHeader::parse("YUV4MPEG2 W360 H288 F25:1 Ip A1:1 C420jpeg XYSCSS=420JPEG").unwrap();
        assert_eq!((h.width, h.height, h.fps_num, h.fps_den, h.chroma), (360, 288, 25, 1, Chroma::C420));
        assert_eq!(h.frame_bytes(), 360 * 288 * 3 / 2);
    }

    #[test]
    fn rejects_bad_headers_with_reasons() {
        assert!(Y4mHeader::parse("RIFF").unwrap_err().contains("YUV4MPEG2"));
        assert!(Y4mHeader::parse("YUV4MPEG2 W10 F25:1").unwrap_err().contains("W/H"));
        assert!(Y4mHeader::parse("YUV4MPEG2 W10 H10 C420p10 F25:1").unwrap_err().contains("not supported"));
        assert!(Y4mHeader::parse("YUV4MPEG2 W10 H10 F0:1").unwrap_err().contains("frame rate"));
    }

    #[test]
    fn studio_range_colours_convert() {
        assert_eq!(yuv_to_rgb(16.0, 128.0, 128.0, false), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235.0, 128.0, 128.0, false), [255, 255, 255]);
        // BT.601 studio-range pure red is Y=81 Cb=90 Cr=240.
        let [r, g, b] = yuv_to_rgb(81.0, 90.0, 240.0, false);
        assert!(r >= 253 && g <= 2 && b <= 2, "{r} {g} {b}");
    }

    #[test]
    fn reads_frames_and_reports_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.y4m");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"YUV4MPEG2 W4 H2 F5:1 C420jpeg\n").unwrap();
        for k in 0..3u8 {
            f.write_all(b"FRAME\n").unwrap();
            f.write_all(&[16 + k * 50; 8]).unwrap();
            f.write_all(&[128; 4]).unwrap();
        }
        f.write_all(b"FRAME\n\x10\x10").unwrap();
        drop(f);
        let mut r = Y4mReader::open(&p).unwrap();
        assert_eq!(r.duration(), Some(3.0 / 5.0));
        let mut times = vec![];
        for _ in 0..3 {
            let fr = r.next_frame().unwrap().unwrap();
            assert_eq!(fr.rgb.len(), 4 * 2 * 3);
            times.push(fr.t);
        }
        assert_eq!(times, vec![0.0, 0.2, 0.4]);
        let e = r.next_frame().unwrap_err().to_string();
        assert!(e.contains("t.y4m") && e.contains("frame 3") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn not_a_y4m_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.y4m");
        std::fs::write(&p, b"hello world\n").unwrap();
        let e = Y4mReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("bad.y4m") && e.contains("YUV4MPEG2"), "{e}");
    }
}
