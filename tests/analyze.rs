//! `affectd analyze` end to end on real recordings: the shared GRID talking faces (33 s), the
//! bundled sample, Y4M + WAV inputs, and bad inputs.

mod common;
use common::*;

fn analyze(args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let out = run(&[&["analyze"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "analyze {args:?} failed: {stderr}");
    (validated_lines(&String::from_utf8_lossy(&out.stdout)), stderr)
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn shared_grid_recording_gives_seven_valid_intervals() {
    let rec = grid_33s();
    let out = scratch().join("grid33.jsonl");
    let o = run(&["analyze", s(&rec), "--interval", "5s", "--out", s(&out), "--stats"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("7 intervals") && stderr.contains("branches->window"),
        "summary + stats: {stderr}"
    );
    let lines = validated_lines(&std::fs::read_to_string(&out).unwrap());
    assert!(lines.iter().all(|l| l["schema"] != "affectd.alert/1"), "false alarm on neutral GRID readings");
    let spans = check_intervals(&lines, 5.0);
    assert_eq!(spans.len(), 7, "{spans:?}");
    assert!((spans[6].1 - 33.0).abs() < 0.05, "media ends at 33 s: {spans:?}");
    for (i, l) in lines.iter().enumerate() {
        let v = &l["inputs"]["video"];
        let a = &l["inputs"]["audio"];
        let want_frames = if i < 6 { 50 } else { 30 };
        assert_eq!(v["frames"], want_frames, "10 fps analysed in interval {i}");
        assert_eq!(v["dropped"], 0, "analyze never drops frames");
        let secs = a["seconds"].as_f64().unwrap();
        if i < 6 {
            assert!((secs - 5.0).abs() < 0.06, "audio seconds {secs} in {:?}", spans[i]);
        }
        // Every interval holds speech (GRID sentences every 3 s), well above silence.
        assert!(a["rms_dbfs"].as_f64().unwrap() > -40.0, "interval {i}: {a}");
        // A face in every interval: fused sentiment and attention are always filled; incongruence
        // only where someone also spoke (an utterance overlapping the interval).
        // The voice stage runs with speech: `modalities.voice` is an object; the voice has attention
        // only with a head trained on layout v2, and `fusion.missing` says why when it has none.
        assert!(l["sentiment"]["label"].is_string(), "{l}");
        let att = &l["fusion"]["attention"];
        let (f, t, vo) =
            (att["face"].as_f64().unwrap(), att["text"].as_f64().unwrap(), att["voice"].as_f64().unwrap());
        assert!((f + t + vo - 1.0).abs() < 1e-3 && f > 0.0, "attention {att}");
        let spoke = l["fusion"]["tokens"]["text"].as_u64().unwrap() > 0;
        assert_eq!(spoke, t > 0.0, "{l}");
        assert_eq!(spoke, l["incongruence"]["probability"].is_number(), "{l}");
        assert_eq!(!spoke, l["fusion"]["missing"]["text"] == "nobody spoke", "{l}");
        assert!(l["modalities"]["voice"].is_object(), "{l}");
        assert_eq!(vo == 0.0, l["fusion"]["missing"]["voice"].is_string(), "{l}");
    }
    // GRID speakers read neutral commands: no interval is flagged (tests/calm_faces.rs checks
    // 1 s intervals too).
    let flagged = lines.iter().filter(|l| l["incongruence"]["flag"] == true).count();
    assert_eq!(flagged, 0, "{flagged} of 7 intervals flagged on neutral readings");
    // Each clip's MP2 track is ~22 ms shorter than its video, so the joined audio ends ~0.25 s early.
    let audio: f64 = lines.iter().map(|l| l["inputs"]["audio"]["seconds"].as_f64().unwrap()).sum();
    assert!((32.6..=33.05).contains(&audio), "total audio {audio} s");
    // Wall clock follows media time from the session start.
    let w0 = lines[0]["interval"]["wall_start"].as_str().unwrap();
    let w1 = lines[1]["interval"]["wall_start"].as_str().unwrap();
    let t = |w: &str| humantime::parse_rfc3339(w).unwrap();
    assert_eq!(t(w1).duration_since(t(w0)).unwrap().as_millis(), 5000);
}

#[test]
fn bundled_sample_runs_with_no_shared_data() {
    let (lines, stderr) = analyze(&["tests/data/sample/grid-call.mp4"]);
    let spans = check_intervals(&lines, 5.0);
    assert_eq!(spans.len(), 3, "12 s sample: {spans:?}");
    assert!((spans[2].1 - 12.0).abs() < 0.05);
    assert!(stderr.contains("3 intervals"), "{stderr}");
    assert_eq!(lines[2]["inputs"]["video"]["frames"], 20);
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn y4m_and_wav_inputs_match_the_ffmpeg_path() {
    let clip = data_dir().join("grid-av/clips/bbaf2n.mpg");
    let dir = scratch();
    let y4m = dir.join("bbaf2n.y4m");
    let wav = dir.join("bbaf2n-44k-stereo.wav");
    ffmpeg(&["-i", s(&clip), "-an", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", s(&y4m)]);
    ffmpeg(&["-i", s(&clip), "-vn", "-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le", s(&wav)]);
    let (native, _) = analyze(&[s(&y4m), "--audio", s(&wav), "--interval", "1s"]);
    let (viaff, _) = analyze(&[s(&clip), "--interval", "1s"]);
    check_intervals(&native, 1.0);
    check_intervals(&viaff, 1.0);
    assert_eq!(native.len(), 3);
    assert_eq!(viaff.len(), 3);
    for (a, b) in native.iter().zip(&viaff) {
        // Same frames sampled from 25 fps to 10 fps in both paths.
        assert_eq!(a["inputs"]["video"]["frames"], b["inputs"]["video"]["frames"]);
        // Our BT.601 conversion of the Y4M agrees with ffmpeg's RGB conversion.
        let (la, lb) = (
            a["inputs"]["video"]["luma_mean"].as_f64().unwrap(),
            b["inputs"]["video"]["luma_mean"].as_f64().unwrap(),
        );
        assert!((la - lb).abs() < 0.01, "luma {la} vs {lb}");
        // Our 44.1 kHz stereo → 16 kHz mono resampling agrees with ffmpeg's within 0.5 dB.
        let (ra, rb) = (
            a["inputs"]["audio"]["rms_dbfs"].as_f64().unwrap(),
            b["inputs"]["audio"]["rms_dbfs"].as_f64().unwrap(),
        );
        assert!((ra - rb).abs() < 0.5, "rms {ra} vs {rb}");
    }
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn wav_alone_gives_audio_only_intervals() {
    let wav = data_dir().join("speech/clean/jfk.wav");
    let (lines, _) = analyze(&[s(&wav), "--interval", "2.5s"]);
    let spans = check_intervals(&lines, 2.5);
    assert_eq!(spans.len(), 5, "11 s: {spans:?}");
    assert!((spans[4].1 - 11.0).abs() < 1e-6);
    for l in &intervals_only(&lines) {
        assert!(l["inputs"]["video"].is_null());
        assert!(l["inputs"]["audio"]["seconds"].as_f64().unwrap() > 0.0);
    }
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn every_grid_clip_decodes_to_three_seconds() {
    for entry in std::fs::read_dir(data_dir().join("grid-av/clips")).unwrap() {
        let p = entry.unwrap().path();
        let (lines, _) = analyze(&[s(&p), "--interval", "5s", "--fps", "5"]);
        let spans = check_intervals(&lines, 5.0);
        assert_eq!(spans.len(), 1, "{}", p.display());
        assert!((spans[0].1 - 3.0).abs() < 0.05, "{}: {spans:?}", p.display());
        assert_eq!(lines[0]["inputs"]["video"]["frames"], 15, "{}", p.display());
    }
}

#[test]
fn missing_recording_is_a_clear_error() {
    let o = run(&["analyze", "no/such/call.mp4"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no/such/call.mp4") && e.contains("cannot open"), "{e}");
}

#[test]
fn a_file_that_is_not_media_is_named() {
    let p = scratch().join("notes.mp4");
    std::fs::write(&p, "this is not a video").unwrap();
    let o = run(&["analyze", s(&p)]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("notes.mp4") && e.contains("ffprobe cannot read it"), "{e}");
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn truncated_y4m_reports_the_frame_and_keeps_completed_intervals() {
    let clip = data_dir().join("grid-av/clips/sbwe5n.mpg");
    let full = scratch().join("sbwe5n.y4m");
    ffmpeg(&["-i", s(&clip), "-an", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", s(&full)]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = scratch().join("sbwe5n-cut.y4m");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let out = scratch().join("cut.jsonl");
    let o = run(&["analyze", s(&cut), "--interval", "1s", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("sbwe5n-cut.y4m") && e.contains("truncated"), "{e}");
    // The intervals completed before the damage were still written.
    let lines = validated_lines(&std::fs::read_to_string(&out).unwrap());
    check_intervals(&lines, 1.0);
    assert!(lines.len() >= 2, "{} lines", lines.len());
}

#[test]
fn missing_ffmpeg_says_so_and_how_to_install_it() {
    let o = affectd()
        .env("PATH", "/nonexistent")
        .args(["analyze", "tests/data/sample/grid-call.mp4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("`ffprobe` was not found") && e.contains("apt-get install ffmpeg"), "{e}");
}

#[test]
fn bad_interval_flag_is_rejected_with_what_is_allowed() {
    let o = run(&["analyze", "tests/data/sample/grid-call.mp4", "--interval", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("allowed: e.g. 5s"));
    let o = run(&["analyze", "tests/data/sample/grid-call.mp4", "--fps", "500"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("pipeline.analysis_fps") && e.contains("at most 120"), "{e}");
}
