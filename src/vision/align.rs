//! Image geometry for the vision stages: letterboxing, rotated square crops sampled bilinearly,
//! and mapping points between crop and frame coordinates.

/// A rotated square region of a frame: centre, side length (pixels) and rotation (radians,
/// counter-clockwise positive in image coordinates with y down, as mediapipe defines it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    /// Centre x in frame pixels.
    pub cx: f32,
    /// Centre y in frame pixels.
    pub cy: f32,
    /// Side length in frame pixels.
    pub size: f32,
    /// Rotation in radians.
    pub rotation: f32,
}

impl Roi {
    /// Maps a point in crop coordinates normalised to [0, 1] to frame pixels.
    pub fn to_frame(&self, u: f32, v: f32) -> (f32, f32) {
        let (dx, dy) = ((u - 0.5) * self.size, (v - 0.5) * self.size);
        let (s, c) = self.rotation.sin_cos();
        (self.cx + dx * c - dy * s, self.cy + dx * s + dy * c)
    }

    /// Maps a frame pixel to crop coordinates normalised to [0, 1].
    pub fn to_crop(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (s, c) = self.rotation.sin_cos();
        ((dx * c + dy * s) / self.size + 0.5, (-dx * s + dy * c) / self.size + 0.5)
    }
}

/// Angle that makes the line from `a` to `b` horizontal (mediapipe's rotation convention).
pub fn rotation_from(a: (f32, f32), b: (f32, f32)) -> f32 {
    normalize_angle((b.1 - a.1).atan2(b.0 - a.0))
}

/// Wraps an angle to [-π, π).
pub fn normalize_angle(a: f32) -> f32 {
    use std::f32::consts::PI;
    a - 2.0 * PI * ((a + PI) / (2.0 * PI)).floor()
}

/// Bilinear sample of channel `ch` of an RGB24 image at (x, y); outside the image is black.
#[inline]
fn sample(rgb: &[u8], w: usize, h: usize, x: f32, y: f32, ch: usize) -> f32 {
    let x = x - 0.5;
    let y = y - 0.5;
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = (x - x0, y - y0);
    let px = |xi: f32, yi: f32| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= w as f32 || yi >= h as f32 {
            0.0
        } else {
            rgb[(yi as usize * w + xi as usize) * 3 + ch] as f32
        }
    };
    let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1.0, y0) * fx;
    let bottom = px(x0, y0 + 1.0) * (1.0 - fx) + px(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// What a crop holds per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropColor {
    /// Three values, R G B (NHWC).
    Rgb,
    /// One value, BT.601 luma.
    Gray,
}

/// Samples `roi` of an RGB24 frame into an `out`×`out` crop in `dst` (`out * out` pixels of
/// `color`, row by row, e.g. a reused model input), each value mapped by `norm`
/// (e.g. `|v| v / 255.0`).
#[allow(clippy::too_many_arguments)]
pub fn crop_into(
    color: CropColor,
    rgb: &[u8],
    w: usize,
    h: usize,
    roi: &Roi,
    out: usize,
    norm: impl Fn(f32) -> f32,
    dst: &mut [f32],
) {
    match color {
        CropColor::Rgb => crop_map(rgb, w, h, roi, out, dst, |[r, g, b]| [norm(r), norm(g), norm(b)]),
        CropColor::Gray => {
            crop_map(rgb, w, h, roi, out, dst, |[r, g, b]| [norm(0.299 * r + 0.587 * g + 0.114 * b)])
        }
    }
}

/// The one crop loop: samples every pixel centre of an `out`×`out` crop of `roi` (bilinear RGB)
/// and writes `map` of it, `C` values per pixel, row by row into `dst`.
///
/// Each row runs in two passes so that the arithmetic vectorises (on x86 and ARM alike): the
/// first, per pixel, finds the four neighbours and gathers their bytes into per-channel rows
/// ([`RowTaps`]); the second interpolates the whole row with [`sample`]'s arithmetic, in its
/// order of operations. A pixel near or outside the border is sampled by [`sample`] in the first
/// pass and its values written over the second pass's.
fn crop_map<const C: usize>(
    rgb: &[u8],
    w: usize,
    h: usize,
    roi: &Roi,
    out: usize,
    dst: &mut [f32],
    map: impl Fn([f32; 3]) -> [f32; C],
) {
    assert_eq!(dst.len(), out * out * C, "crop buffer size");
    let grid = Grid::new(roi, out);
    let mut taps = Box::new(RowTaps::default());
    for (row, &(dys, dyc)) in dst.chunks_exact_mut(out * C).zip(&grid.rows) {
        for (cols, part) in grid.cols.chunks(TAPS).zip(row.chunks_mut(TAPS * C)) {
            for (u, &(dxc, dxs)) in cols.iter().enumerate() {
                taps.gather(u, rgb, w, h, roi.cx + dxc - dys, roi.cy + dxs + dyc);
            }
            taps.interpolate(part, &map);
        }
    }
}

/// Crop columns per [`RowTaps`] pass (a fixed size, so every tap row sits at a constant offset).
const TAPS: usize = 256;

/// One crop row's (or [`TAPS`] columns of it) bilinear inputs, channel by channel: the four
/// neighbours' bytes (top-left R G B, top-right R G B, bottom-left, bottom-right) and the
/// fractional offsets; border pixels (zero taps) and the values [`sample`] gave them.
struct RowTaps {
    taps: [[u8; TAPS]; 12],
    fx: [f32; TAPS],
    fy: [f32; TAPS],
    value: [[f32; TAPS]; 3],
    border: Vec<(usize, [f32; 3])>,
}

impl Default for RowTaps {
    fn default() -> RowTaps {
        RowTaps {
            taps: [[0; TAPS]; 12],
            fx: [0.0; TAPS],
            fy: [0.0; TAPS],
            value: [[0.0; TAPS]; 3],
            border: Vec::new(),
        }
    }
}

impl RowTaps {
    /// Fills column `u` for a sample at frame position (x, y): its four neighbours and offsets
    /// when all four lie inside the frame (one bounds test, no per-tap checks), else
    /// [`sample`]'s values (outside is black).
    #[inline(always)]
    fn gather(&mut self, u: usize, rgb: &[u8], w: usize, h: usize, x: f32, y: f32) {
        let (xs, ys) = (x - 0.5, y - 0.5);
        if xs >= 0.0 && ys >= 0.0 {
            // Non-negative: truncation is `floor` (without a libm call on baseline x86_64).
            let (x0, y0) = (xs as u32 as usize, ys as u32 as usize);
            if x0 + 1 < w && y0 + 1 < h {
                let i = (y0 * w + x0) * 3;
                let j = i + w * 3;
                let (a, b) = (&rgb[i..i + 6], &rgb[j..j + 6]);
                for k in 0..6 {
                    self.taps[k][u] = a[k];
                    self.taps[6 + k][u] = b[k];
                }
                self.fx[u] = xs - x0 as f32;
                self.fy[u] = ys - y0 as f32;
                return;
            }
        }
        for t in &mut self.taps {
            t[u] = 0;
        }
        self.border.push((u, [0, 1, 2].map(|ch| sample(rgb, w, h, x, y, ch))));
        self.fx[u] = 0.0;
        self.fy[u] = 0.0;
    }

    /// Interpolates the first `part.len() / C` gathered columns and writes `map` of each pixel
    /// into `part`.
    #[inline(always)]
    fn interpolate<const C: usize>(&mut self, part: &mut [f32], map: &impl Fn([f32; 3]) -> [f32; C]) {
        let n = part.len() / C;
        for (c, value) in self.value.iter_mut().enumerate() {
            let [tl, tr, bl, br] = [c, c + 3, c + 6, c + 9].map(|k| &self.taps[k][..n]);
            let taps = tl.iter().zip(tr).zip(bl.iter().zip(br));
            let weights = self.fx[..n].iter().zip(&self.fy[..n]);
            for ((((&tl, &tr), (&bl, &br)), (&fx, &fy)), v) in taps.zip(weights).zip(value[..n].iter_mut()) {
                let top = tl as f32 * (1.0 - fx) + tr as f32 * fx;
                let bottom = bl as f32 * (1.0 - fx) + br as f32 * fx;
                *v = top * (1.0 - fy) + bottom * fy;
            }
        }
        for (u, px) in self.border.drain(..) {
            for (v, p) in self.value.iter_mut().zip(px) {
                v[u] = p;
            }
        }
        let [r, g, b] = &self.value;
        for (px, ((&r, &g), &b)) in part.chunks_exact_mut(C).zip(r.iter().zip(g).zip(b)) {
            px.copy_from_slice(&map([r, g, b]));
        }
    }
}

/// The frame offsets of the pixel centres of an `out`×`out` crop of `roi`, per crop column and
/// per row: the products [`Roi::to_frame`] forms for each pixel, formed once per column and row
/// (one `sin_cos` per crop). `cx + dx·cos − dy·sin` and `cy + dx·sin + dy·cos` from them are the
/// same operations in the same order as `to_frame`, so the sampled positions are bit-identical.
struct Grid {
    /// Per column: (dx·cos, dx·sin).
    cols: Vec<(f32, f32)>,
    /// Per row: (dy·sin, dy·cos).
    rows: Vec<(f32, f32)>,
}

impl Grid {
    fn new(roi: &Roi, out: usize) -> Grid {
        let (s, c) = roi.rotation.sin_cos();
        let d = |i: usize| ((i as f32 + 0.5) / out as f32 - 0.5) * roi.size;
        Grid {
            cols: (0..out).map(|u| (d(u) * c, d(u) * s)).collect(),
            rows: (0..out).map(|v| (d(v) * s, d(v) * c)).collect(),
        }
    }
}

/// Letterboxing of a frame into a square model input: scale and padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Frame pixels per model pixel.
    pub scale: f32,
    /// Padding on the left, in frame pixels.
    pub pad_x: f32,
    /// Padding on the top, in frame pixels.
    pub pad_y: f32,
    /// Side of the padded square, in frame pixels.
    pub side: f32,
}

impl Letterbox {
    /// The letterbox of a `w`×`h` frame (centred, keep aspect).
    pub fn new(w: usize, h: usize) -> Letterbox {
        let side = w.max(h) as f32;
        Letterbox { scale: side, pad_x: (side - w as f32) / 2.0, pad_y: (side - h as f32) / 2.0, side }
    }

    /// The whole padded square as a [`Roi`] (no rotation).
    pub fn roi(&self) -> Roi {
        Roi {
            cx: self.side / 2.0 - self.pad_x,
            cy: self.side / 2.0 - self.pad_y,
            size: self.side,
            rotation: 0.0,
        }
    }

    /// Maps normalised letterboxed coordinates to frame pixels.
    pub fn to_frame(&self, u: f32, v: f32) -> (f32, f32) {
        (u * self.side - self.pad_x, v * self.side - self.pad_y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop(color: CropColor, rgb: &[u8], w: usize, h: usize, roi: &Roi, out: usize) -> Vec<f32> {
        let per_pixel = if color == CropColor::Rgb { 3 } else { 1 };
        let mut dst = vec![0.0; out * out * per_pixel];
        crop_into(color, rgb, w, h, roi, out, |v| v, &mut dst);
        dst
    }

    #[test]
    fn roi_round_trip_with_rotation() {
        let r = Roi { cx: 100.0, cy: 80.0, size: 50.0, rotation: 0.3 };
        let (x, y) = r.to_frame(0.2, 0.9);
        let (u, v) = r.to_crop(x, y);
        assert!((u - 0.2).abs() < 1e-5 && (v - 0.9).abs() < 1e-5);
        assert_eq!(r.to_frame(0.5, 0.5), (100.0, 80.0));
        // Rotation by +90°: the crop's +u axis points down the frame (+y).
        let q = Roi { rotation: std::f32::consts::FRAC_PI_2, ..r };
        let (x, y) = q.to_frame(1.0, 0.5);
        assert!((x - 100.0).abs() < 1e-4 && (y - 105.0).abs() < 1e-4, "{x} {y}");
    }

    #[test]
    fn eye_line_rotation() {
        assert_eq!(rotation_from((0.0, 0.0), (10.0, 0.0)), 0.0);
        let a = rotation_from((0.0, 0.0), (10.0, 10.0));
        assert!((a - std::f32::consts::FRAC_PI_4).abs() < 1e-6);
    }

    #[test]
    fn crop_of_an_unrotated_roi_copies_pixels() {
        // 4x4 image whose red channel is x*10 + y.
        let mut img = vec![0u8; 4 * 4 * 3];
        for y in 0..4 {
            for x in 0..4 {
                img[(y * 4 + x) * 3] = (x * 10 + y) as u8;
            }
        }
        let roi = Roi { cx: 2.0, cy: 2.0, size: 4.0, rotation: 0.0 };
        let c = crop(CropColor::Rgb, &img, 4, 4, &roi, 4);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(c[(y * 4 + x) * 3], (x * 10 + y) as f32);
            }
        }
    }

    /// The per-pixel formulation the crops were first written as: `to_frame` of each pixel
    /// centre, then `sample` per channel.
    fn reference_crop(rgb: &[u8], w: usize, h: usize, roi: &Roi, out: usize) -> (Vec<f32>, Vec<f32>) {
        let (mut c, mut g) = (Vec::new(), Vec::new());
        for v in 0..out {
            for u in 0..out {
                let (x, y) = roi.to_frame((u as f32 + 0.5) / out as f32, (v as f32 + 0.5) / out as f32);
                let s = |ch| sample(rgb, w, h, x, y, ch);
                c.extend([s(0), s(1), s(2)]);
                g.push(0.299 * s(0) + 0.587 * s(1) + 0.114 * s(2));
            }
        }
        (c, g)
    }

    #[test]
    fn fast_crops_are_bit_identical_to_the_per_pixel_reference() {
        let (w, h) = (37, 29);
        let img: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        for roi in [
            Roi { cx: 18.0, cy: 14.0, size: 20.0, rotation: 0.0 },
            Roi { cx: 17.3, cy: 12.9, size: 23.7, rotation: 0.37 },
            Roi { cx: 3.0, cy: 25.0, size: 30.0, rotation: -2.1 }, // crosses the border
            Roi { cx: -40.0, cy: 5.0, size: 10.0, rotation: 1.0 }, // wholly outside
        ] {
            for out in [1, 7, 16, 300] {
                let (c, g) = reference_crop(&img, w, h, &roi, out);
                assert_eq!(crop(CropColor::Rgb, &img, w, h, &roi, out), c, "{roi:?} {out}");
                assert_eq!(crop(CropColor::Gray, &img, w, h, &roi, out), g, "{roi:?} {out}");
            }
        }
    }

    #[test]
    fn letterbox_maps_corners() {
        let lb = Letterbox::new(360, 288);
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 36.0));
        assert_eq!(lb.to_frame(0.0, 0.1), (0.0, 0.0));
        assert_eq!(lb.to_frame(1.0, 0.9), (360.0, 288.0));
    }
}
