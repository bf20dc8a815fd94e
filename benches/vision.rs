//! Criterion benches of the vision models in tract (float32, one thread) and of the whole
//! vision stage per frame. Run: `cargo bench --bench vision`.

use affectd::config::{ModelsConfig, VisionConfig};
use affectd::message::Frame;
use affectd::model::OnnxModel;
use affectd::vision::{VisionModels, VisionStage};
use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

fn models(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut g = c.benchmark_group("model");
    g.sample_size(50);
    for (name, file, shape) in [
        ("blazeface_128", "face_detection_short.onnx", vec![1, 128, 128, 3]),
        ("facemesh_192", "face_landmark.onnx", vec![1, 192, 192, 3]),
        ("mini_xception_64", "expression_fer_minixception.onnx", vec![1, 64, 64, 1]),
    ] {
        let mut m = OnnxModel::load_f32(&dir.join(file), &[&shape]).unwrap();
        let n: usize = shape.iter().product();
        let input = vec![0.1f32; n];
        g.bench_function(name, |b| b.iter(|| m.run_f32(vec![(&shape, input.clone())]).unwrap()));
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
