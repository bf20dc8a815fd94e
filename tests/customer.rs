//! Whose face is scored (`vision.customer`), on real faces: two speakers' frames of the bundled
//! sample (redistributable, tests/data/sample/ATTRIBUTION.md) composed at test time into one
//! frame at different scales, as a counter camera that also sees the clerk would.

mod common;
use affectd::config::{ModelsConfig, VisionConfig};
use affectd::message::{FaceObs, Frame};
use affectd::vision::customer::CustomerPolicy;
use affectd::vision::detect::FaceDetector;
use affectd::vision::{VisionModels, VisionStage};
use common::*;
use image::{imageops, Rgb, RgbImage};

/// Canvas size: both faces side by side, large enough for BlazeFace short-range.
const W: u32 = 480;
const H: u32 = 260;
/// Where the large face (left) and the small face (right) sit, and the small one's scale.
const BIG_AT: (i64, i64) = (10, 10);
const SMALL_AT: (i64, i64) = (300, 60);
const SMALL_SCALE: f32 = 0.7;

/// A 240×240 head-and-shoulders crop of the bundled sample at media second `t` (speakers change
/// every 3 s).
fn face_crop(t: f64) -> RgbImage {
    // One file per call: the tests run in parallel and each extracts the same frames, so a
    // shared name let one test read a PNG that another's ffmpeg was still writing.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = scratch().join(format!("customer-sample-{t}-{}-{n}.png", std::process::id()));
    let sample = repo().join("tests/data/sample/grid-call.mp4");
    ffmpeg(&["-ss", &t.to_string(), "-i", s(&sample), "-frames:v", "1", s(&out)]);
    let img = image::open(&out).unwrap().to_rgb8();
    let _ = std::fs::remove_file(&out);
    imageops::crop_imm(&img, 60, 30, 240, 240).to_image()
}

/// The two people: the customer-to-be on the left at full size, another speaker at 0.7 on the right.
fn people() -> (RgbImage, RgbImage) {
    let big = face_crop(1.0);
    let other = face_crop(4.5);
    let (w, h) = other.dimensions();
    let small = imageops::resize(
        &other,
        (w as f32 * SMALL_SCALE) as u32,
        (h as f32 * SMALL_SCALE) as u32,
        imageops::FilterType::Triangle,
    );
    (big, small)
}

/// A grey frame with the given faces placed on it.
fn frame(t: f64, big: Option<&RgbImage>, small: Option<&RgbImage>) -> Frame {
    frame_at(t, big, small, SMALL_AT)
}

/// [`frame`] with the small face's crop at `small_at`.
fn frame_at(t: f64, big: Option<&RgbImage>, small: Option<&RgbImage>, small_at: (i64, i64)) -> Frame {
    let mut canvas = RgbImage::from_pixel(W, H, Rgb([128, 128, 128]));
    if let Some(b) = big {
        imageops::overlay(&mut canvas, b, BIG_AT.0, BIG_AT.1);
    }
    if let Some(sm) = small {
        imageops::overlay(&mut canvas, sm, small_at.0, small_at.1);
    }
    Frame { seq: (t * 10.0).round() as u64, t, width: W, height: H, duration: 0.1, rgb: canvas.into_raw() }
}

fn stage(customer: CustomerPolicy) -> VisionStage {
    let models = ModelsConfig { dir: repo().join("models"), verify: false };
    let cfg = VisionConfig { customer, ..Default::default() };
    VisionStage::with_models(VisionModels::load(&models, &cfg).unwrap())
}

fn face(st: &mut VisionStage, f: &Frame) -> Option<FaceObs> {
    st.process(f).unwrap().face
}

fn centre_x(f: &FaceObs) -> f32 {
    f.bbox[0] + f.bbox[2] / 2.0
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_composed_frame_holds_two_real_faces() {
    let (big, small) = people();
    let f = frame(0.0, Some(&big), Some(&small));
    let model = affectd::model::Manifest::load(&repo().join("models")).unwrap();
    let file = &model.get("face_detection").unwrap().file;
    let mut d = FaceDetector::load(&repo().join("models").join(file), 0.5).unwrap();
    let faces = d.detect(&f.rgb, W as usize, H as usize).unwrap();
    assert_eq!(faces.len(), 2, "{faces:?}");
    let (left, right): (Vec<_>, Vec<_>) = faces.iter().partition(|d| d.center().0 < W as f32 / 2.0);
    assert_eq!((left.len(), right.len()), (1, 1), "{faces:?}");
    assert!(left[0].area() > right[0].area() * 1.5, "the left face is the larger: {faces:?}");
}

#[test]
fn largest_scores_only_the_larger_face() {
    let (big, small) = people();
    let mut st = stage(CustomerPolicy::Largest);
    let both = face(&mut st, &frame(0.0, Some(&big), Some(&small))).expect("a face");
    assert!(centre_x(&both) < W as f32 / 2.0, "the larger (left) face: {:?}", both.bbox);
    assert_eq!((both.customer, both.new_customer), (1, true));
    // Its scores are those of that face alone: the other face contributed nothing.
    let alone = face(&mut stage(CustomerPolicy::Largest), &frame(0.0, Some(&big), None)).unwrap();
    assert!(
        max_diff(&both.expression, &alone.expression) < 0.02,
        "{:?} vs {:?}",
        both.expression,
        alone.expression
    );
    assert!(max_diff(&both.bbox, &alone.bbox) < 2.0, "{:?} vs {:?}", both.bbox, alone.bbox);
}

#[test]
fn a_region_excluding_the_larger_face_scores_the_smaller_one() {
    let (big, small) = people();
    let right_side = CustomerPolicy::Region([0.55, 0.0, 1.0, 1.0]);
    let mut st = stage(right_side);
    let alone = face(&mut stage(right_side), &frame(0.0, None, Some(&small))).unwrap();
    for k in 0..5 {
        let f = face(&mut st, &frame(k as f64 * 0.1, Some(&big), Some(&small))).expect("the smaller face");
        assert!(centre_x(&f) > 0.55 * W as f32, "frame {k}: {:?}", f.bbox);
        assert_eq!(f.detector_ran, k == 0, "detected once, then tracked (frame {k})");
        assert_eq!(f.customer, 1);
        assert!(max_diff(&f.expression, &alone.expression) < 0.05, "frame {k}");
    }
    // The larger face alone, outside the region: nobody is scored.
    let mut st = stage(right_side);
    assert!(face(&mut st, &frame(0.0, Some(&big), None)).is_none());
    // Left of the region's edge, also while tracking: a region on the left keeps the big face only.
    let mut st = stage(CustomerPolicy::Region([0.0, 0.0, 0.5, 1.0]));
    let f = face(&mut st, &frame(0.0, Some(&big), Some(&small))).unwrap();
    assert!(centre_x(&f) < W as f32 / 2.0);
}

#[test]
fn most_central_picks_the_face_nearest_the_centre() {
    let (big, small) = people();
    // The small face's crop moved left, so that its face is near the frame centre; the big face
    // stays near the left edge.
    let f = frame_at(0.0, Some(&big), Some(&small), (200, 60));
    let largest = face(&mut stage(CustomerPolicy::Largest), &f).unwrap();
    assert!(centre_x(&largest) < 200.0, "largest: the big face, {:?}", largest.bbox);
    let central = face(&mut stage(CustomerPolicy::MostCentral), &f).unwrap();
    assert!(centre_x(&central) > 200.0, "most_central: the small face, {:?}", central.bbox);
    assert!((centre_x(&central) - W as f32 / 2.0).abs() < (centre_x(&largest) - W as f32 / 2.0).abs());
}

#[test]
fn redetection_keeps_to_the_customer_and_a_newcomer_is_a_new_customer() {
    let (big, small) = people();
    let mut st = stage(CustomerPolicy::Largest);
    // The customer (the smaller face) is alone at first.
    for k in 0..3 {
        let f = face(&mut st, &frame(k as f64 * 0.1, None, Some(&small))).unwrap();
        assert_eq!((f.customer, f.new_customer), (1, k == 0));
    }
    // Lost for a moment (a blank frame), then a larger face is in view too: re-detection stays
    // with the customer instead of jumping to the larger face.
    assert!(face(&mut st, &frame(0.3, None, None)).is_none());
    for k in 4..8 {
        let f = face(&mut st, &frame(k as f64 * 0.1, Some(&big), Some(&small))).unwrap();
        assert!(centre_x(&f) > W as f32 / 2.0, "frame {k}: still the customer, {:?}", f.bbox);
        assert_eq!((f.customer, f.new_customer), (1, false));
    }
    // The customer leaves; after more than customer_gap_s (2 s) without anyone, the larger
    // face arriving is a new customer.
    for k in 8..32 {
        assert!(face(&mut st, &frame(k as f64 * 0.1, None, None)).is_none());
    }
    let f = face(&mut st, &frame(3.2, Some(&big), Some(&small))).unwrap();
    assert!(centre_x(&f) < W as f32 / 2.0, "the policy's choice again: {:?}", f.bbox);
    assert_eq!((f.customer, f.new_customer), (2, true));
}

/// `vision.expression_every`: the model runs on the detection frame and then on every Nth
/// tracked frame, its output held in between; with 1 every frame gets its own output.
#[test]
fn expression_every_holds_the_output_between_runs() {
    // Six real frames of one speaker, 0.1 s apart (the face moves and talks).
    let frames: Vec<Frame> =
        (0..6).map(|k| 1.0 + k as f64 * 0.1).map(|t| frame(t, Some(&face_crop(t)), None)).collect();
    let run = |every: u32| -> Vec<FaceObs> {
        let models = ModelsConfig { dir: repo().join("models"), verify: false };
        let cfg = VisionConfig { expression_every: every, ..Default::default() };
        let mut st = VisionStage::with_models(VisionModels::load(&models, &cfg).unwrap());
        frames.iter().map(|f| face(&mut st, f).expect("a face")).collect()
    };
    let each = run(1);
    let held = run(3);
    assert!(held[0].detector_ran && !held[1].detector_ran);
    // Frames 0 and 3 run the model (the same inputs as with 1), 1-2 and 4-5 hold the last output.
    for k in [0, 3] {
        assert_eq!(held[k].expression, each[k].expression, "frame {k} runs the model");
    }
    for k in [1, 2, 4, 5] {
        let from = k / 3 * 3;
        assert_eq!(held[k].expression, held[from].expression, "frame {k} holds frame {from}'s output");
    }
    // The held frames really differ from what the model says there (so the test can fail).
    assert!((1..6).any(|k| k % 3 != 0 && max_diff(&each[k].expression, &each[k / 3 * 3].expression) > 1e-4));
    // Landmarks, box and cues are still computed on every frame.
    assert!(held.windows(2).all(|w| w[0].bbox != w[1].bbox));
}
