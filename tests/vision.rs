//! Vision end to end with the real models: detection on still images, faces in every frame of
//! the GRID recordings, the expression accuracy floor on FER2013 validation, and model errors.

mod common;
use affectd::config::{ModelsConfig, VisionConfig};
use affectd::eval::expression::load_rgb;
use affectd::model::Manifest;
use affectd::vision::detect::FaceDetector;
use affectd::vision::VisionModels;
use common::*;

/// The file of manifest entry `name` in models/ (file names change with the storage variant).
fn model_file(name: &str) -> String {
    Manifest::load(&repo().join("models")).unwrap().get(name).unwrap().file.clone()
}

fn detector() -> FaceDetector {
    FaceDetector::load(&repo().join("models").join(model_file("face_detection")), 0.5).unwrap()
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn one_face_on_the_astronaut_none_on_cat_or_coffee() {
    let mut d = detector();
    let (w, h, rgb) = load_rgb(&data_dir().join("images/astronaut.png")).unwrap();
    let faces = d.detect(&rgb, w, h).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = &faces[0];
    assert!(f.score > 0.85, "{f:?}");
    // The face is in the upper middle of the 512x512 portrait: hand-checked region.
    let (cx, cy) = f.center();
    assert!((150.0..300.0).contains(&cx) && (50.0..200.0).contains(&cy), "centre {cx},{cy}");
    assert!((60.0..200.0).contains(&f.w), "width {}", f.w);
    for name in ["chelsea.png", "coffee.png"] {
        let (w, h, rgb) = load_rgb(&data_dir().join("images").join(name)).unwrap();
        assert!(d.detect(&rgb, w, h).unwrap().is_empty(), "no face on {name}");
    }
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn every_grid_frame_has_a_face_with_landmarks_cues_and_expression() {
    let out = scratch().join("grid33-vision.jsonl");
    let o = run(&["analyze", s(&grid_33s()), "--interval", "5s", "--out", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = validated_lines(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(lines.len(), 7);
    for l in &lines {
        let f = &l["modalities"]["face"];
        assert_eq!(f["present"], true);
        assert_eq!(f["face_frames"], f["frames"], "a face in every analysed frame: {f}");
        assert_eq!(f["frames"], l["inputs"]["video"]["frames"]);
        let probs = f["expression"].as_object().unwrap();
        assert_eq!(probs.len(), 7);
        let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 0.01, "{probs:?}");
        let c = &f["cues"];
        // Frontal speakers reading to the camera: small head angles, open eyes, sane size.
        assert!(
            c["yaw_deg"].as_f64().unwrap().abs() < 20.0 && c["roll_deg"].as_f64().unwrap().abs() < 15.0,
            "{c}"
        );
        assert!((0.15..0.6).contains(&c["eye_open"].as_f64().unwrap()), "{c}");
        assert!((0.2..0.9).contains(&c["face_size"].as_f64().unwrap()), "{c}");
        let landmark_file = format!("{}@", model_file("face_landmark"));
        assert!(l["models"]["face_landmark"].as_str().unwrap().starts_with(&landmark_file));
    }
    // Tracking: the detector runs on a few frames only, not on all 330.
    let runs: u64 = lines.iter().map(|l| l["modalities"]["face"]["detector_runs"].as_u64().unwrap()).sum();
    assert!(runs <= 20, "detector ran {runs} times");
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn expression_accuracy_floor_on_fer2013_validation() {
    let o = run(&["eval", "expression", "--data", s(&data_dir().join("fer2013/validation"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap();
    let get = |k: &str| -> f64 {
        last.split(' ').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().parse().unwrap()
    };
    // Against FER2013's own (single-annotator) labels. The default model is trained on FER+ votes,
    // which move many FER2013 sad/fear images to neutral, so it measures 0.6038 / 0.5293 here in
    // tract (its FER+ floors, 0.83 accuracy and 0.85 neutral recall, are in tests/calm_faces.rs);
    // a broken crop, channel order or normalisation drops it far below these floors.
    assert!(get("accuracy") >= 0.58, "{last}");
    assert!(get("macro_f1") >= 0.50, "{last}");
    assert_eq!(get("n"), 3589.0);
}

#[test]
fn missing_and_corrupt_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lm = model_file("face_landmark");
    let expression = model_file(&VisionConfig::default().expression_model);
    for f in ["manifest.toml".to_string(), model_file("face_detection"), expression] {
        std::fs::copy(repo().join("models").join(&f), dir.path().join(&f)).unwrap();
    }
    let models = ModelsConfig { dir: dir.path().to_path_buf(), verify: false };
    let e = VisionModels::load(&models, &VisionConfig::default()).unwrap_err().to_string();
    assert!(e.contains(&lm) && e.contains("missing"), "{e}");
    std::fs::write(dir.path().join(&lm), b"\x08\x07garbage that is not protobuf").unwrap();
    let e = VisionModels::load(&models, &VisionConfig::default()).unwrap_err().to_string();
    assert!(e.contains(&lm) && e.contains("not a loadable ONNX model"), "{e}");
    // With verification on, a damaged file is caught by its sha256 before loading.
    let checked = ModelsConfig { verify: true, ..models };
    let e = VisionModels::load(&checked, &VisionConfig::default()).unwrap_err().to_string();
    assert!(e.contains(&lm) && e.contains("manifest says"), "{e}");
    // And through the CLI: exit 1 with the file named.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[models]\ndir = \"{}\"\n", dir.path().display())).unwrap();
    let o = run(&["analyze", "tests/data/sample/grid-call.mp4", "--config", s(&cfg)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&lm));
}
