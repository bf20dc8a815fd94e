//! Float vs smaller storage variants of the vision models, run through tract (the daemon's
//! runtime), on real images: BlazeFace detections (count, IoU of the best box, score), FaceMesh
//! landmark drift, expression top-1 agreement and accuracy on FER2013 validation.
//!
//! The variant files are written outside the repository by `tools/vision/quantize.py`
//! (`../vision-runs/quant` or `$AFFECTD_VISION_VARIANTS`), with the GRID frames it used as PNGs
//! in `frames/`. Ignored by default (needs those files, ~1 min):
//! `cargo test --test vision_variants -- --ignored --nocapture`.

mod common;
use affectd::eval::expression::load_rgb;
use affectd::model::Manifest;
use affectd::vision::align::Roi;
use affectd::vision::detect::{iou, FaceDetector};
use affectd::vision::expression::ExpressionModel;
use affectd::vision::mesh::{self, FaceMesh};
use common::*;
use std::path::PathBuf;

const VARIANTS: [&str; 3] = ["int8w", "f16w", "qop"];

fn variants_dir() -> PathBuf {
    std::env::var_os("AFFECTD_VISION_VARIANTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../vision-runs/quant"))
}

fn frames() -> Vec<(String, usize, usize, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(variants_dir().join("frames"))
        .expect("frames/ (run tools/vision/quantize.py)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let (w, h, rgb) = load_rgb(&f).unwrap();
            (f.file_name().unwrap().to_string_lossy().into_owned(), w, h, rgb)
        })
        .collect()
}

#[test]
#[ignore = "needs tools/vision/quantize.py's variant files outside the repository"]
fn detector_and_mesh_variants_against_float_in_tract() {
    let dir = variants_dir();
    let frames = frames();
    let mut float_det = FaceDetector::load(&dir.join("face_detection_short_float.onnx"), 0.5).unwrap();
    let mut float_mesh = FaceMesh::load(&dir.join("face_landmark_float.onnx")).unwrap();
    // Float reference: detections per frame, and landmarks on the float detection's crop.
    let mut reference = Vec::new();
    for (_, w, h, rgb) in &frames {
        let dets = float_det.detect(rgb, *w, *h).unwrap();
        let lm =
            dets.first().map(|d| float_mesh.landmarks(rgb, *w, *h, mesh::roi_from_detection(d)).unwrap());
        reference.push((dets, lm));
    }
    for v in VARIANTS {
        let p = dir.join(format!("face_detection_short_{v}.onnx"));
        match FaceDetector::load(&p, 0.5) {
            Err(e) => println!("detector {v}: tract rejects it: {e}"),
            Ok(mut det) => {
                let (mut same, mut ious, mut dscore) = (0, Vec::new(), 0.0f32);
                for ((_, w, h, rgb), (fd, _)) in frames.iter().zip(&reference) {
                    let d = det.detect(rgb, *w, *h).unwrap();
                    same += (d.len() == fd.len()) as usize;
                    if let (Some(a), Some(b)) = (fd.first(), d.first()) {
                        ious.push(iou(a, b));
                        dscore = dscore.max((a.score - b.score).abs());
                    }
                }
                let mean = ious.iter().sum::<f32>() / ious.len().max(1) as f32;
                let min = ious.iter().cloned().fold(1.0f32, f32::min);
                println!(
                    "detector {v}: same detection count {same}/{}; best-box IoU mean {mean:.4} min {min:.4}; \
                     max |score - float| {dscore:.4}",
                    frames.len()
                );
                assert!(min > 0.5, "{v}: a box moved away from float's");
            }
        }
        let p = dir.join(format!("face_landmark_{v}.onnx"));
        match FaceMesh::load(&p) {
            Err(e) => println!("facemesh {v}: tract rejects it: {e}"),
            Ok(mut m) => {
                let (mut sum, mut n, mut max, mut dpres) = (0.0f64, 0usize, 0.0f32, 0.0f32);
                for ((_, w, h, rgb), (_, flm)) in frames.iter().zip(&reference) {
                    let Some(flm) = flm else { continue };
                    let lm = m.landmarks(rgb, *w, *h, flm.roi).unwrap();
                    // drift in pixels of the 192x192 model input (the crop is roi.size frame pixels)
                    let to_input = mesh::INPUT as f32 / flm.roi.size;
                    for (a, b) in flm.points.iter().zip(&lm.points) {
                        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt() * to_input;
                        sum += d as f64;
                        n += 1;
                        max = max.max(d);
                    }
                    dpres = dpres.max((flm.presence - lm.presence).abs());
                }
                println!(
                    "facemesh {v}: landmark drift (192-px input) mean {:.4} max {max:.4} over {} crops; \
                     max |presence - float| {dpres:.2e}",
                    sum / n.max(1) as f64,
                    n / mesh::LANDMARKS
                );
                assert!(max < 5.0, "{v}: landmarks moved {max} px");
            }
        }
    }
}

#[test]
#[ignore = "needs tools/vision/quantize.py's variant files outside the repository"]
fn expression_variants_against_float_in_tract() {
    let dir = variants_dir();
    let manifest = Manifest::load(&repo().join("models")).unwrap();
    let entry = manifest.get("expression_baseline").unwrap().clone();
    let root = data_dir().join("fer2013/validation");
    let mut images = Vec::new();
    for (truth, label) in
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"].iter().enumerate()
    {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(root.join(label)).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            images.push((truth, load_rgb(&f).unwrap()));
        }
    }
    let predict = |m: &mut ExpressionModel| -> Vec<usize> {
        images
            .iter()
            .map(|(_, (w, h, rgb))| {
                let roi =
                    Roi { cx: *w as f32 / 2.0, cy: *h as f32 / 2.0, size: *w.max(h) as f32, rotation: 0.0 };
                let p = m.classify(rgb, *w, *h, &roi).unwrap();
                p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
            })
            .collect()
    };
    let mut float =
        ExpressionModel::load(&dir.join("expression_fer_minixception_float.onnx"), &entry).unwrap();
    let reference = predict(&mut float);
    let acc =
        |p: &[usize]| p.iter().zip(&images).filter(|(a, (t, _))| *a == t).count() as f64 / p.len() as f64;
    println!("expression float: accuracy {:.4} (n {})", acc(&reference), images.len());
    for v in VARIANTS {
        match ExpressionModel::load(&dir.join(format!("expression_fer_minixception_{v}.onnx")), &entry) {
            Err(e) => println!("expression {v}: tract rejects it: {e}"),
            Ok(mut m) => {
                let p = predict(&mut m);
                let agree = p.iter().zip(&reference).filter(|(a, b)| a == b).count() as f64 / p.len() as f64;
                println!("expression {v}: top-1 agreement with float {agree:.4}, accuracy {:.4}", acc(&p));
                assert!(agree > 0.9, "{v}: agreement {agree}");
            }
        }
    }
}

/// Operator counts of the graph tract runs after `into_optimized` (fixed input shape).
fn optimised_ops(path: &std::path::Path, shape: &[usize]) -> std::collections::BTreeMap<String, usize> {
    use tract_onnx::prelude::*;
    let m = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .unwrap();
    let mut ops = std::collections::BTreeMap::new();
    for n in &m.nodes {
        *ops.entry(n.op.name().to_string()).or_insert(0) += 1;
    }
    ops
}

#[test]
#[ignore = "needs tools/vision/quantize.py's variant files outside the repository"]
fn weight_storage_variants_optimise_to_the_float_graph() {
    // int8w / f16w only change how weights are STORED: after tract's constant folding the graph
    // it runs must be the float graph (same operators, same counts), hence the same speed.
    let dir = variants_dir();
    for (stem, shape) in [
        ("face_detection_short", vec![1, 128, 128, 3]),
        ("face_landmark", vec![1, 192, 192, 3]),
        ("expression_fer_minixception", vec![1, 64, 64, 1]),
        ("expression_tta", vec![1, 64, 64, 1]),
    ] {
        let float = optimised_ops(&dir.join(format!("{stem}_float.onnx")), &shape);
        println!("{stem} float: {} nodes {float:?}", float.values().sum::<usize>());
        for v in ["int8w", "f16w", "qop"] {
            let p = dir.join(format!("{stem}_{v}.onnx"));
            if !p.is_file() {
                continue;
            }
            let ops = optimised_ops(&p, &shape);
            println!(
                "{stem} {v}: {} nodes{}",
                ops.values().sum::<usize>(),
                if ops == float { " = float".to_string() } else { format!(" {ops:?}") }
            );
            if v != "qop" {
                assert_eq!(ops, float, "{stem} {v}");
            }
        }
    }
}
