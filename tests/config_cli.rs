//! `affectd config check` and `affectd models`: valid configs pass, bad ones name the file, the
//! key and what is allowed; model files are checked against the manifest.

mod common;
use affectd::config::Config;
use common::*;

#[test]
fn default_toml_writes_down_every_default() {
    let path = repo().join("configs/default.toml");
    let parsed = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn every_shipped_config_is_valid() {
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let p = entry.unwrap().path();
        let o = run(&["config", "check", s(&p)]);
        assert!(o.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
        let effective = String::from_utf8_lossy(&o.stdout);
        assert!(effective.contains("[pipeline]") && effective.contains("interval_s"), "{effective}");
    }
}

#[test]
fn bad_configs_name_file_key_and_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[pipeline]\ninterval = 5\n", "key `pipeline.interval`", "interval_s"),
        ("[source.video]\nkind = \"camera\"\n", "key `source.video.kind`", "`none`, `file`, `webcam`, `pipe`"),
        ("[source.audio]\nkind = \"mic\"\nrate = 48000\n", "key `source.audio.rate`", "sample_rate"),
        ("[source.video]\nkind = \"pipe\"\ncommand = [\"x\"]\nwidth = 64\nheight = 48\nfps = 10.0\npixel_format = \"rgb\"\n", "key `source.video.pixel_format`", "yuv420p"),
        ("[pipeline]\nvideo_queue = 0\n", "pipeline.video_queue", "1 to 1000"),
        ("device_id = \"a/b\"\n", "device_id", "A-Z a-z 0-9"),
        ("[sink.jsonl]\nenabled = true\npath = \"\"\n", "sink.jsonl.path", "a file path"),
        ("[pipeline\n", "line 1", "invalid"),
        ("[vision]\ncustomer = \"clerk\"\n", "key `vision.customer`", "`largest`, `most_central`, `region`"),
        ("[vision]\ncustomer = { region = [0, 0, 2, 1] }\n", "key `vision.customer`", "0 <= x0 < x1 <= 1"),
    ];
    for (i, (body, key, allowed)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, body).unwrap();
        let o = run(&["config", "check", s(&p)]);
        assert_eq!(o.status.code(), Some(2), "{body}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(&format!("bad{i}.toml")), "names the file: {e}");
        assert!(e.contains(key), "names the key {key}: {e}");
        assert!(e.contains(allowed), "says what is allowed ({allowed}): {e}");
    }
}

#[test]
fn environment_overrides_the_device_id() {
    let o = affectd()
        .env("AFFECTD_DEVICE_ID", "kiosk-9")
        .args(["config", "check", "configs/default.toml"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("device_id = \"kiosk-9\""));
    let o = affectd()
        .env("AFFECTD_DEVICE_ID", "bad id")
        .args(["config", "check", "configs/default.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn models_verify_passes_on_the_repo_and_catches_corruption() {
    let o = run(&["models", "verify"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let listing = String::from_utf8_lossy(&o.stdout);
    let manifest = affectd::model::Manifest::load(&repo().join("models")).unwrap();
    for m in &manifest.models {
        assert!(listing.contains(&m.file) && listing.contains(&m.sha256), "{listing}");
    }
    // A copy of the models folder with one file damaged fails verification, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(repo().join("models/manifest.toml"), models.join("manifest.toml")).unwrap();
    for m in &manifest.models {
        std::fs::copy(repo().join("models").join(&m.file), models.join(&m.file)).unwrap();
    }
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, format!("[models]\ndir = \"{}\"\n", models.display())).unwrap();
    if let Some(first) = manifest.models.first() {
        let f = models.join(&first.file);
        let mut bytes = std::fs::read(&f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&f, bytes).unwrap();
        let o = run(&["models", "verify", "--config", s(&cfg)]);
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(&first.file) && e.contains("corrupt"), "{e}");
    }
}
