//! Live sources end to end with real parts: `affectd run` with a webcam and no camera present, the
//! pipe source fed by a real `ffmpeg -f rawvideo` command, and the microphone source reading
//! speech through ALSA's `file` plugin (a pcm whose capture side reads a raw file; no sound card).

mod common;
use affectd::source::pipe::{PipeSpec, PipeVideo};
use affectd::source::pixfmt::PixelFormat;
use affectd::source::VideoSource;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SAMPLE: &str = "tests/data/sample/grid-call.mp4";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn toml_list(args: &[&str]) -> String {
    format!("[{}]", args.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "))
}

fn sample_abs() -> String {
    repo().join(SAMPLE).display().to_string()
}

/// The ffmpeg command that writes the bundled sample's frames as raw `pix_fmt` to stdout.
fn ffmpeg_raw(pix_fmt: &str, extra: &[&str]) -> Vec<String> {
    let sample = sample_abs();
    let mut v = vec!["ffmpeg", "-nostdin", "-v", "error", "-i", &sample, "-an"];
    v.extend_from_slice(extra);
    v.extend_from_slice(&["-pix_fmt", pix_fmt, "-f", "rawvideo", "-"]);
    v.into_iter().map(String::from).collect()
}

#[test]
fn webcam_without_a_camera_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let has_nodes = std::fs::read_dir("/dev")
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("video"));
    // On a machine with cameras, ask for one that cannot exist: the same "no camera" path.
    let device = if has_nodes { "no-such-camera-affectd-test" } else { "" };
    let cfg = write(
        dir.path(),
        "webcam.toml",
        &format!(
            "[source.video]\nkind = \"webcam\"\ndevice = \"{device}\"\n[sink.stdout]\nenabled = false\n[sink.jsonl]\nenabled = true\npath = \"{}\"\n",
            out.display()
        ),
    );
    let started = Instant::now();
    let o = run(&["run", "--config", s(&cfg)]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "fails at start-up, without retrying");
    if has_nodes {
        assert!(e.contains("no camera") && e.contains("no-such-camera-affectd-test"), "{e}");
    } else {
        assert!(e.contains("no camera found") && e.contains("no /dev/video* device exists"), "{e}");
        assert!(e.contains("ls -l /dev/video*") && e.contains("kind = \"pipe\""), "hint: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn pipe_source_runs_ffmpeg_raw_frames_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pipe.jsonl");
    let cmd = ffmpeg_raw("yuv420p", &[]);
    let cfg = write(
        dir.path(),
        "pipe.toml",
        &format!(
            "device_id = \"pipe-test\"\n[pipeline]\ninterval_s = 5.0\nanalysis_fps = 10.0\nvideo_overflow = \"block\"\n\
             [source.video]\nkind = \"pipe\"\ncommand = {}\nwidth = 360\nheight = 288\nfps = 25.0\npixel_format = \"yuv420p\"\n\
             [sink.stdout]\nenabled = false\n[sink.jsonl]\nenabled = true\npath = \"{}\"\n",
            toml_list(&cmd.iter().map(String::as_str).collect::<Vec<_>>()),
            out.display()
        ),
    );
    let o = run(&["run", "--config", s(&cfg)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("pipe:`ffmpeg") && stderr.contains("stopped (end of input)"), "{stderr}");
    let live = validated_lines(&std::fs::read_to_string(&out).unwrap());
    let spans = check_intervals(&live, 5.0);
    assert_eq!(spans.len(), 3, "12 s at 25 fps: {spans:?}");
    assert!((spans[2].1 - 12.0).abs() < 0.05, "{spans:?}");

    // The same frames decoded by `affectd analyze` (ffmpeg's own RGB conversion) agree.
    let a = run(&["analyze", SAMPLE, "-q"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let replay = validated_lines(&String::from_utf8_lossy(&a.stdout));
    assert_eq!(replay.len(), live.len());
    for (i, (l, r)) in live.iter().zip(&replay).enumerate() {
        let (lv, rv) = (&l["inputs"]["video"], &r["inputs"]["video"]);
        assert_eq!(lv["frames"], rv["frames"], "interval {i}");
        let (la, lb) = (lv["luma_mean"].as_f64().unwrap(), rv["luma_mean"].as_f64().unwrap());
        assert!((la - lb).abs() < 0.01, "interval {i}: luma {la} vs {lb}");
        let (lf, rf) = (&l["modalities"]["face"], &r["modalities"]["face"]);
        assert_eq!(lf["present"], true, "interval {i}: a face in the GRID sample");
        assert_eq!(lf["face_frames"], rf["face_frames"], "interval {i}");
        for (k, p) in rf["expression"].as_object().unwrap() {
            let q = lf["expression"][k].as_f64().unwrap();
            assert!((q - p.as_f64().unwrap()).abs() < 0.05, "interval {i} {k}: {q} vs {p}");
        }
        assert!(l["inputs"]["audio"].is_null(), "no audio source configured");
    }
}

#[test]
fn every_pipe_pixel_format_converts_like_ffmpeg() {
    // One frame of the sample in each raw layout, against ffmpeg's own rgb24 of the same frame.
    let stop = Arc::new(AtomicBool::new(false));
    let frame = |pf: PixelFormat| {
        let spec = PipeSpec {
            command: ffmpeg_raw(pf.ffmpeg_name(), &["-frames:v", "1"]),
            width: 360,
            height: 288,
            fps: 25.0,
            pixel_format: pf,
        };
        let mut p = PipeVideo::spawn(spec, stop.clone()).unwrap();
        let f = p.next_frame().unwrap().expect("one frame");
        assert!(p.next_frame().unwrap().is_none(), "{pf}: exactly one frame");
        f.rgb
    };
    let reference = frame(PixelFormat::Rgb24);
    assert_eq!(reference.len(), 360 * 288 * 3);
    for pf in [PixelFormat::Yuv420p, PixelFormat::Nv12, PixelFormat::Yuyv] {
        let rgb = frame(pf);
        let mad = rgb.iter().zip(&reference).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            / rgb.len() as f64;
        assert!(mad < 3.0, "{pf}: mean absolute difference {mad:.2} from ffmpeg's rgb24");
    }
    // Gray: every pixel is grey, and as bright as the colour frame's luma on average.
    let gray = frame(PixelFormat::Gray);
    assert!(gray.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let mean = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    assert!((mean(&gray) - mean(&reference)).abs() < 12.0, "{} vs {}", mean(&gray), mean(&reference));
}

fn pipe_config(dir: &Path, command: &[&str], width: u32) -> PathBuf {
    write(
        dir,
        "pipe-bad.toml",
        &format!(
            "[source.video]\nkind = \"pipe\"\ncommand = {}\nwidth = {width}\nheight = 288\nfps = 25.0\npixel_format = \"rgb24\"\n\
             [vision]\nenabled = false\n[sink.stdout]\nenabled = false\n[sink.jsonl]\nenabled = true\npath = \"{}\"\n",
            toml_list(command),
            dir.join("bad.jsonl").display()
        ),
    )
}

#[test]
fn pipe_failures_name_the_command_and_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = pipe_config(dir.path(), &["affectd-no-such-camera-tool", "-o", "-"], 360);
    let o = run(&["run", "--config", s(&cfg)]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("affectd-no-such-camera-tool") && e.contains("not found") && e.contains("full path"),
        "{e}"
    );

    let cfg = pipe_config(
        dir.path(),
        &["ffmpeg", "-nostdin", "-v", "error", "-i", "/no/such/camera.mp4", "-f", "rawvideo", "-"],
        360,
    );
    let o = run(&["run", "--config", s(&cfg)]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("command `ffmpeg -nostdin") && e.contains("exited before its first frame"), "{e}");
    assert!(e.contains("/no/such/camera.mp4: No such file"), "the command's own stderr: {e}");

    // 3 frames of 360x288 read as 352x288: three frames, then a short one.
    let sample = sample_abs();
    let cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-i",
        &sample,
        "-frames:v",
        "3",
        "-pix_fmt",
        "rgb24",
        "-f",
        "rawvideo",
        "-",
    ];
    let cfg = pipe_config(dir.path(), &cmd, 352);
    let o = run(&["run", "--config", s(&cfg)]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("ended mid-frame after 3 frames") && e.contains("short frame of 20736 of 304128 bytes"),
        "{e}"
    );
    assert!(e.contains("command `ffmpeg") && e.contains("source.video.width"), "{e}");
}

/// An ALSA configuration with a capture pcm `affectd_speech` whose data comes from `raw` through
/// the `file` plugin (over the `null` pcm), listed by name hints so cpal enumerates it.
///
/// The pcm serves the raw file in the format cpal opens it with (f32, 48 kHz, mono: what
/// `sample_rate = 48000` selects). No `plug` in front: with a format or rate conversion ALSA's
/// file plugin (alsa-lib 1.2.8) reads its infile about twice per period on the mmap path, and the
/// speech arrives shortened and garbled (checked with arecord).
fn asoundrc(raw: &Path) -> String {
    format!(
        r#"pcm.affectd_speech {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{}"
    format "raw"
    hint {{
        show on
        description "affectd test: speech served from a file"
    }}
}}
"#,
        raw.display()
    )
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn microphone_through_alsa_file_plugin_is_heard_and_transcribed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // JFK's "ask not" (11 s) as 48 kHz float, then silence: the null pcm runs faster than real
    // time, and once the file ends the plugin repeats the last data it read, which is then silence.
    let raw = dir.path().join("speech.f32");
    let wav = data_dir().join("speech/clean/jfk.wav");
    ffmpeg(&["-i", s(&wav), "-af", "apad=pad_dur=20", "-ac", "1", "-ar", "48000", "-f", "f32le", s(&raw)]);
    std::fs::write(home.join(".asoundrc"), asoundrc(&raw)).unwrap();
    let out = dir.path().join("mic.jsonl");
    let cfg = write(
        dir.path(),
        "mic.toml",
        &format!(
            "device_id = \"mic-test\"\n[pipeline]\ninterval_s = 2.0\n\
             [source.audio]\nkind = \"mic\"\ndevice = \"affectd_speech\"\nsample_rate = 48000\n\
             [privacy]\npublish_transcripts = true\n\
             [sink.stdout]\nenabled = false\n[sink.jsonl]\nenabled = true\npath = \"{}\"\nfsync = false\n",
            out.display()
        ),
    );
    let mut child = affectd()
        .args(["run", "--config", s(&cfg)])
        .env("HOME", &home)
        .env_remove("ALSA_CONFIG_PATH")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let heard = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default().to_lowercase();
        if text.contains("country") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(heard, "no transcript with \"country\" within 240 s: {stderr}");
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM: {stderr}");
    assert!(
        stderr.contains("mic:\"affectd_speech\" 48000 Hz x1 f32"),
        "asked-for rate through cpal: {stderr}"
    );
    assert!(
        stderr.contains(" overruns, ") && stderr.contains(" restarts"),
        "capture statistics logged: {stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines = validated_lines(&text);
    check_intervals(&lines, 2.0);
    // Speech is loud in the first intervals (resampled 48 kHz → 16 kHz), silence after the file.
    let rms: Vec<f64> =
        lines.iter().map(|l| l["inputs"]["audio"]["rms_dbfs"].as_f64().unwrap_or(-120.0)).collect();
    // Under CPU starvation the device's capture clock can jump (counted as an overrun and filled
    // with silence, docs/RELIABILITY.md), so one early interval may be silent: most are speech.
    assert!(rms[..5].iter().filter(|&&r| r > -35.0).count() >= 4, "speech levels: {rms:?}");
    assert!(rms.iter().skip(7).any(|&r| r < -90.0), "silence after the speech: {rms:?}");
    let words: u64 = lines.iter().map(|l| l["modalities"]["text"]["words"].as_u64().unwrap_or(0)).sum();
    assert!(words >= 15, "JFK's sentence is ~22 words, got {words}");
}
