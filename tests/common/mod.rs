//! Shared helpers for the integration tests: the shared data folder, recordings built from it
//! with ffmpeg, the message schema, and running the binary.
#![allow(dead_code)]

pub mod broker;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared data folder: `$AFFECTD_DATA`, else `../shared/data`. Panics (fails the test) when absent.
pub fn data_dir() -> PathBuf {
    let dir =
        std::env::var_os("AFFECTD_DATA").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/data"));
    assert!(
        dir.join("grid-av/clips").is_dir(),
        "shared test data not found at {} (set AFFECTD_DATA to the folder holding grid-av/, speech/, ...)",
        dir.display()
    );
    dir
}

/// A scratch folder under the target dir, kept between tests of one run.
pub fn scratch() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("affectd-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The eleven GRID clips joined into one 33 s MPEG-PS recording (stream copy, no re-encode):
/// the stand-in for the CMU-MOSI mp4 that could not be obtained.
pub fn grid_33s() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let clips = data_dir().join("grid-av/clips");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&clips)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mpg"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 11, "expected 11 GRID clips in {}", clips.display());
        let dir = scratch();
        let list = dir.join(format!("grid-list-{}.txt", std::process::id()));
        let body: String =
            names.iter().map(|p| format!("file '{}'\n", p.canonicalize().unwrap().display())).collect();
        std::fs::write(&list, body).unwrap();
        let out = dir.join(format!("grid-33s-{}.mpg", std::process::id()));
        ffmpeg(&[
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            list.to_str().unwrap(),
            "-c",
            "copy",
            out.to_str().unwrap(),
        ]);
        out
    })
    .clone()
}

/// Runs ffmpeg with `args` (overwriting outputs), panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The affectd binary under test.
pub fn affectd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_affectd"));
    c.current_dir(repo());
    c
}

/// Waits for `child` to exit; fails the test after `secs` seconds.
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(std::time::Instant::now() < deadline, "process did not exit within {secs} s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs affectd with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    affectd().args(args).output().expect("affectd runs")
}

/// The compiled message schema.
pub fn schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(repo().join("docs/message-schema.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::validator_for(&schema).expect("docs/message-schema.json is a valid JSON Schema")
    })
}

/// Parses JSON lines and validates each against the schema, with the line number on failure.
pub fn validated_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {}: not JSON ({e}): {line}", i + 1));
            let errors: Vec<String> =
                schema().iter_errors(&v).map(|e| format!("{} at {}", e, e.instance_path)).collect();
            assert!(
                errors.is_empty(),
                "line {} violates docs/message-schema.json: {errors:?}\n{line}",
                i + 1
            );
            v
        })
        .collect()
}

/// The interval messages among JSON lines (alerts sit between them).
pub fn intervals_only(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    lines.iter().filter(|l| l["schema"] == "affectd.interval/1").cloned().collect()
}

/// Checks the invariants every analyze run must hold: one session, seq 0.., contiguous intervals
/// of `interval` seconds from 0, only the last possibly partial; returns the (start, end) spans.
/// Alert lines (schema `affectd.alert/1`) are skipped: they sit between the intervals.
pub fn check_intervals(lines: &[serde_json::Value], interval: f64) -> Vec<(f64, f64)> {
    let lines: Vec<&serde_json::Value> = lines.iter().filter(|l| l["schema"] != "affectd.alert/1").collect();
    assert!(!lines.is_empty(), "no interval lines");
    let session = lines[0]["session_id"].as_str().unwrap();
    let mut spans = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["schema"], "affectd.interval/1");
        assert_eq!(l["session_id"], session, "one session per run");
        assert_eq!(l["seq"].as_u64(), Some(i as u64), "seq without gaps");
        let (s, e) = (l["interval"]["start_s"].as_f64().unwrap(), l["interval"]["end_s"].as_f64().unwrap());
        assert!((s - i as f64 * interval).abs() < 1e-9, "interval {i} starts at {s}");
        let last = i + 1 == lines.len();
        if !last {
            assert!((e - s - interval).abs() < 1e-9, "interval {i} is {s}..{e}");
            assert_eq!(l["interval"]["partial"], false);
        } else {
            assert!(e > s && e - s <= interval + 1e-9);
            assert_eq!(l["interval"]["partial"], (e - s) < interval - 1e-9);
        }
        spans.push((s, e));
    }
    spans
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A daemon config as the daemon tests write it: `rec` replayed as both sources into a JSON-lines
/// file and (optionally) an MQTT sink; the other fields are extra lines for `[pipeline]`,
/// `[sink.jsonl]` and `[sink.mqtt]`.
pub struct DaemonToml<'a> {
    pub device: &'a str,
    pub rec: &'a Path,
    pub realtime: bool,
    pub pipeline: &'a str,
    pub jsonl: &'a Path,
    pub jsonl_extra: &'a str,
    /// Broker URL and spool folder; `None` = no MQTT sink.
    pub mqtt: Option<(&'a str, &'a Path)>,
    pub mqtt_extra: &'a str,
}

impl Default for DaemonToml<'_> {
    fn default() -> Self {
        let none = Path::new("");
        DaemonToml {
            device: "affectd-test",
            rec: none,
            realtime: false,
            pipeline: "",
            jsonl: none,
            jsonl_extra: "",
            mqtt: None,
            mqtt_extra: "",
        }
    }
}

impl DaemonToml<'_> {
    /// The TOML text.
    pub fn render(&self) -> String {
        let mut t = format!("device_id = \"{}\"\n[pipeline]\n{}\n", self.device, self.pipeline);
        for kind in ["video", "audio"] {
            t += &format!(
                "[source.{kind}]\nkind = \"file\"\npath = \"{}\"\nrealtime = {}\n",
                self.rec.display(),
                self.realtime
            );
        }
        t += &format!(
            "[sink.stdout]\nenabled = false\n[sink.jsonl]\nenabled = true\npath = \"{}\"\nfsync = false\n{}\n",
            self.jsonl.display(),
            self.jsonl_extra
        );
        if let Some((url, spool)) = self.mqtt {
            t += &format!(
                "[sink.mqtt]\nenabled = true\nurl = \"{url}\"\nspool_dir = \"{}\"\n{}\n",
                spool.display(),
                self.mqtt_extra
            );
        }
        t
    }

    /// Writes the config to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.render()).unwrap();
        path.to_path_buf()
    }
}
