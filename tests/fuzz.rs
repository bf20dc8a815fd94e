//! Fuzzing of every parser of outside bytes, on stable Rust (issue 18): Y4M, WAV, the pipe
//! source's raw frames, webcam MJPEG frames, the TOML config, the eval CSV/TSV/JSONL readers and
//! the MQTT spool reader. See `tests/fuzz/harness.rs` for how it works and docs/RELIABILITY.md
//! for the measured runs.
//!
//! `AFFECTD_FUZZ_SECS` sets the run length per target (default 2 s); one target:
//! `AFFECTD_FUZZ_SECS=600 cargo test --test fuzz y4m -- --nocapture --test-threads 1`.
//! A crash (panic, or one allocation over 64 MiB) or a hang (one input over 2 s) fails the test
//! and leaves the input in `<target dir>/fuzz-findings/<target>/`.

#[path = "fuzz/harness.rs"]
mod harness;

use affectd::config::{AudioChannel, Config};
use affectd::source::pipe::read_frame;
use affectd::source::pixfmt::{decode_mjpeg, PixelFormat};
use affectd::source::wav::WavReader;
use affectd::source::y4m::Y4mReader;
use affectd::source::{AudioSource, VideoSource};
use harness::{fuzz, Outcome, Target};
use std::path::{Path, PathBuf};

#[global_allocator]
static GUARD: harness::Guard = harness::Guard;

/// A rejection must name the file it is about (the brief of every error in the crate).
fn named(e: affectd::Error, file: &Path) -> String {
    let msg = e.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "the error does not name the file {}: {msg}", file.display());
    msg
}

/// A private folder for one target's temporary files, kept for the whole run.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("affectd-fuzz-").tempdir().unwrap()
}

fn write(path: &Path, data: &[u8]) {
    // A failure here (a full disk) is the harness's, not the parser's: the run stops and says so.
    std::fs::write(path, data)
        .unwrap_or_else(|e| panic!("{} cannot write {}: {e}", harness::HARNESS_FAILURE, path.display()));
}

// ---------------------------------------------------------------------------------------------

/// Y4M: header and frames through `Y4mReader` (what `analyze call.y4m` and file sources use).
fn y4m_target(file: &Path, data: &[u8]) -> Outcome {
    write(file, data);
    let mut r = Y4mReader::open(file).map_err(|e| named(e, file))?;
    let h = r.header().clone();
    if let Some(d) = r.duration() {
        assert!(d.is_finite() && d >= 0.0, "duration {d}");
    }
    let mut frames = 0;
    while let Some(f) = r.next_frame().map_err(|e| named(e, file))? {
        assert_eq!((f.width, f.height), (h.width, h.height));
        assert_eq!(f.rgb.len(), h.width as usize * h.height as usize * 3, "RGB size");
        assert!(f.t.is_finite() && f.t >= 0.0 && f.duration > 0.0, "t {} duration {}", f.t, f.duration);
        frames += 1;
    }
    Ok(format!("{:?} full={} frames={}", h.chroma, h.full_range, frames.min(3)))
}

#[test]
fn fuzz_y4m() {
    const DICT: &[&[u8]] = &[
        b"YUV4MPEG2 ",
        b" W",
        b" H",
        b" F",
        b" C444",
        b" C422",
        b" Cmono",
        b" C420p10",
        b" XCOLORRANGE=FULL",
        b" Ip",
        b" A1:1",
        b"FRAME\n",
        b"FRAME Ixyz\n",
        b"W16384",
        b"H16384",
        b"F30000:1001",
        b"F1:0",
    ];
    let dir = scratch();
    let file = dir.path().join("input.y4m");
    fuzz(Target { name: "y4m", dict: DICT }, move |d| y4m_target(&file, d));
}

/// WAV: `hound` + our format checks, channel selection and the resampler to 16 kHz (what WAV
/// file sources and `eval asr` use). FLAC and other formats go to ffmpeg (a child process):
/// fuzzing that is ffmpeg's job.
fn wav_target(file: &Path, data: &[u8]) -> Outcome {
    write(file, data);
    let channel = [AudioChannel::Mix, AudioChannel::Left, AudioChannel::Right][data.len() % 3];
    let mut r = WavReader::open_channel(file, channel).map_err(|e| named(e, file))?;
    let spec = r.spec();
    if let Some(d) = r.duration() {
        assert!(d.is_finite() && d >= 0.0, "duration {d}");
    }
    let mut total = 0usize;
    while let Some(s) = r.next_samples().map_err(|e| named(e, file))? {
        assert!(s.iter().all(|x| x.is_finite() && (-1.0..=1.0).contains(x)), "samples out of [-1, 1]");
        total += s.len();
        // Input is at most 1 MiB: 16 kHz output of a 1 kHz, 8-bit input is at most 16 M samples.
        assert!(total <= 20_000_000, "{total} samples out of {} bytes", data.len());
    }
    Ok(format!(
        "{:?} {}-bit x{} {:?} {}",
        spec.sample_format,
        spec.bits_per_sample,
        spec.channels,
        channel,
        total.min(1)
    ))
}

#[test]
fn fuzz_wav() {
    const DICT: &[&[u8]] = &[
        b"RIFF",
        b"WAVE",
        b"fmt ",
        b"data",
        b"LIST",
        b"fact",
        b"\x01\x00",
        b"\x03\x00",
        b"\xfe\xff",
        b"\x10\x00\x00\x00",
        b"\x12\x00\x00\x00",
        b"\x28\x00\x00\x00",
        b"\x80\x3e\x00\x00",
        b"\x44\xac\x00\x00",
        b"\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71",
        b"\x03\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71",
    ];
    let dir = scratch();
    let file = dir.path().join("input.wav");
    fuzz(Target { name: "wav", dict: DICT }, move |d| wav_target(&file, d));
}

/// Raw frames of the pipe source: the stream is cut into frames by `pipe::read_frame` and each
/// whole frame converted by `PixelFormat::to_rgb`, exactly as `PipeVideo::next_frame` does. The
/// geometry comes from the (validated) config in the daemon; here from the input's first five
/// bytes (format index, width and height as u16 LE), kept within 16..=640 x 16..=480.
fn pipe_target(data: &[u8]) -> Outcome {
    const FORMATS: [PixelFormat; 5] =
        [PixelFormat::Rgb24, PixelFormat::Gray, PixelFormat::Yuv420p, PixelFormat::Nv12, PixelFormat::Yuyv];
    if data.len() < 5 {
        return Err("no geometry".into());
    }
    let fmt = FORMATS[data[0] as usize % FORMATS.len()];
    let w = 16 + u16::from_le_bytes([data[1], data[2]]) as u32 % 625;
    let h = 16 + u16::from_le_bytes([data[3], data[4]]) as u32 % 465;
    let Some(bytes) = fmt.frame_bytes(w, h) else {
        return Err(format!("{w}x{h} does not fit {fmt}"));
    };
    let mut stream = &data[5..];
    let mut buf = vec![0u8; bytes];
    let mut frames = 0;
    loop {
        let filled = read_frame(&mut stream, &mut buf).map_err(|e| e.to_string())?;
        if filled < bytes {
            return Ok(format!("{fmt} frames={} short={}", frames.min(2), filled > 0));
        }
        let rgb = fmt.to_rgb(&buf, w, h);
        assert_eq!(rgb.len(), (w * h * 3) as usize, "RGB size of {w}x{h} {fmt}");
        frames += 1;
    }
}

#[test]
fn fuzz_pipe_frames() {
    const DICT: &[&[u8]] = &[b"\x00\x10\x00\x10\x00", b"\x02\x11\x00\x10\x00", b"\x04\x11\x00\x11\x00"];
    fuzz(Target { name: "pipe_frames", dict: DICT }, pipe_target);
}

/// MJPEG frames of V4L2 webcams: `decode_mjpeg` (the `image` crate's JPEG decoder).
fn mjpeg_target(data: &[u8]) -> Outcome {
    // The camera negotiated 640x480 (frames may be smaller, never larger).
    let (w, h, rgb) = decode_mjpeg(data, 640, 480)?;
    assert_eq!(rgb.len(), w as usize * h as usize * 3, "RGB size of {w}x{h}");
    Ok(format!("{}x{}", w.min(2), h.min(2)))
}

#[test]
fn fuzz_mjpeg() {
    const DICT: &[&[u8]] = &[
        b"\xff\xd8",
        b"\xff\xd9",
        b"\xff\xc0\x00\x11\x08",
        b"\xff\xc2",
        b"\xff\xc4",
        b"\xff\xdb",
        b"\xff\xda",
        b"\xff\xdd\x00\x04\x00\x01",
        b"\xff\xe0\x00\x10JFIF\x00",
        b"\xff\xff\xff\xff",
    ];
    fuzz(Target { name: "mjpeg", dict: DICT }, mjpeg_target);
}

/// The TOML config: `Config::parse` + `validate` (`affectd config check`, daemon start); a valid
/// config's effective TOML (what `config check` prints) must parse and validate to the same
/// TOML. Input that is not UTF-8 goes through `Config::load` (the file path).
fn config_target(file: &Path, data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        write(file, data);
        return Err(named(Config::load(file).expect_err("a config that is not UTF-8 was accepted"), file));
    };
    let cfg = Config::parse(text, file).map_err(|e| named(e, file))?;
    cfg.validate(file).map_err(|e| named(e, file))?;
    let shown = cfg.to_toml();
    let again = Config::parse(&shown, file)
        .unwrap_or_else(|e| panic!("the effective config does not parse again: {e}\n{shown}"));
    again
        .validate(file)
        .unwrap_or_else(|e| panic!("the effective config does not validate again: {e}\n{shown}"));
    assert_eq!(again.to_toml(), shown, "the effective config changes when read back");
    Ok("valid".into())
}

#[test]
fn fuzz_config() {
    const DICT: &[&[u8]] = &[
        b"[pipeline]\n",
        b"[source.video]\n",
        b"[source.audio]\n",
        b"[sink.mqtt]\n",
        b"[sink.jsonl]\n",
        b"[vision]\n",
        b"[speech]\n",
        b"[fusion]\n",
        b"kind = \"pipe\"\n",
        b"kind = \"webcam\"\n",
        b"kind = \"mic\"\n",
        b"kind = \"file\"\n",
        b"enabled = true\n",
        b"url = \"mqtt://u:p@h:1883\"\n",
        b" = 1e20\n",
        b" = nan\n",
        b" = -1\n",
        b"\"\"\"",
        b"'''",
        b"[[",
        b"]]",
        b"{ a = 1 }",
        b"\\u00e9",
        b"\\U0010ffff",
        b"1979-05-27T07:32:00Z",
    ];
    let dir = scratch();
    let file = dir.path().join("input.toml");
    fuzz(Target { name: "config", dict: DICT }, move |d| config_target(&file, d));
}

/// Every reader of the eval commands' tables, each on the same bytes: `eval voice` labels.csv,
/// `eval text` CSV, `eval fusion` pairs CSV, FER+ votes, `eval recordings` labels CSV and the
/// JSON lines of `analyze`, `eval asr` transcripts.tsv (+ WER normalisation of the references),
/// and the shared data sets read by `eval pairs` (RAVDESS labels, airline tweets, MELD,
/// TweetEval). `Extractor::load_voice_features` (JSON lines) needs the models and is left out.
fn eval_target(dir: &Path, data: &[u8]) -> Outcome {
    use affectd::eval::{asr, expression, fusion, pairs, recordings, text, voice};
    let file = dir.join("table.csv");
    write(&file, data);
    let mut out = Vec::new();
    let mut note = |what: &str, r: Result<usize, affectd::Error>, f: &Path| {
        out.push(match r {
            Ok(n) => format!("{what}: ok {}", n.min(2)),
            Err(e) => format!("{what}: {}", named(e, f)),
        })
    };
    note("voice", voice::read_labels(&file).map(|v| v.len()), &file);
    note("text", text::read_csv(&file).map(|v| v.len()), &file);
    note("pairs", fusion::read_pairs(&file).map(|v| v.len()), &file);
    note("ferplus", expression::read_ferplus(&file).map(|v| v.len()), &file);
    note("recordings", recordings::read_labels(&file).map(|v| v.len()), &file);
    note("outcome", recordings::read_outcome(&file).map(|o| o.intervals), &file);
    let text = String::from_utf8_lossy(data);
    let rows = asr::parse_transcripts(&file, &text);
    if let Ok(rows) = &rows {
        for (_, reference) in rows {
            let words = asr::normalize(reference);
            assert!(words.iter().all(|w| !w.is_empty() && !w.contains(char::is_whitespace)), "{words:?}");
        }
    }
    note("transcripts", rows.map(|r| r.len()), &file);
    // The data sets `eval pairs` reads, all with these bytes.
    let data_dir = dir.join("data");
    let ravdess = data_dir.join("ravdess-speech-16k/labels.csv");
    for p in [
        &ravdess,
        &data_dir.join("twitter-airline-sentiment/Tweets.csv"),
        &data_dir.join("meld-text/train_sent_emo.csv"),
        &data_dir.join("meld-text/dev_sent_emo.csv"),
        &data_dir.join("tweeteval/test_text.txt"),
        &data_dir.join("tweeteval/test_labels.txt"),
    ] {
        write(p, data);
    }
    let r = pairs::voices(&data_dir, pairs::Split::Dev).map(|v| v.len());
    note("voices", r, &ravdess);
    for split in [pairs::Split::Train, pairs::Split::Dev] {
        out.push(match pairs::texts(&data_dir, split) {
            Ok(v) => format!("texts: ok {}", v.len().min(2)),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&*data_dir.to_string_lossy()), "the error names no data file: {msg}");
                format!("texts: {msg}")
            }
        });
    }
    Ok(out.join(" | "))
}

#[test]
fn fuzz_eval_tables() {
    const DICT: &[&[u8]] = &[
        b",",
        b"\"",
        b"\"\"",
        b"\r\n",
        b"\n",
        b"\t",
        b"\xef\xbb\xbf",
        b"path,emotion,actor\n",
        b"text,label\n",
        b"faces,text,wav,label,incongruent\n",
        b"row,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n",
        b"path,label,incongruent\n",
        b"tweet_id,airline_sentiment,text\n",
        b"Utterance,Sentiment\n",
        b"negative",
        b"angry",
        b"{\"schema\":\"affectd.interval/1\",\"interval\":{\"start_s\":1e308,\"end_s\":-1e308}}\n",
        b"{\"schema\":\"affectd.alert/1\"}\n",
        b"1st",
        b"2,000,000",
        b"3.14159",
        b"\xe2\x80\x99",
    ];
    let dir = scratch();
    for sub in ["ravdess-speech-16k", "twitter-airline-sentiment", "meld-text", "tweeteval"] {
        std::fs::create_dir_all(dir.path().join("data").join(sub)).unwrap();
    }
    let base: PathBuf = dir.path().to_path_buf();
    fuzz(Target { name: "eval_tables", dict: DICT }, move |d| {
        let _keep = &dir;
        eval_target(&base, d)
    });
}

/// The MQTT spool reader: what an earlier run (or a power cut) left in the spool folder, read by
/// `Spool::open`, `next_after`/`read` and `next_seq`, then one push, ack and reopen. The input
/// is a little container of files: parts separated by `\0--\0`, each `name\0contents` (a part
/// without a valid name becomes message `<index>.msg`). Re-point `spool_target` when the record
/// format changes; the container stays.
fn spool_target(root: &Path, data: &[u8]) -> Outcome {
    use affectd::sink::spool::Spool;
    let dir = root.join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = 0;
    for (i, part) in split(data, b"\0--\0").into_iter().enumerate().take(64) {
        let (name, contents) = match part.iter().position(|&b| b == 0) {
            Some(z) if valid_name(&part[..z]) => {
                (String::from_utf8_lossy(&part[..z]).into_owned(), &part[z + 1..])
            }
            _ => (format!("{i:020}.msg"), part),
        };
        write(&dir.join(name), contents);
        files += 1;
    }
    let dir_named = |e: affectd::Error| {
        let msg = e.to_string();
        assert!(msg.contains("spool"), "the error does not name the spool: {msg}");
        msg
    };
    let mut s = Spool::open(&dir, 1 << 20, false).map_err(dir_named)?;
    let queued = s.stats().queued;
    let mut read_ok = 0;
    let mut read_err = Vec::new();
    let mut after = None;
    let mut steps = 0;
    while let Some(id) = s.next_after(after) {
        steps += 1;
        assert!(steps <= 64, "next_after does not advance (id {id})");
        assert!(after.is_none_or(|a| id > a), "next_after({after:?}) went back to {id}");
        match s.read(id) {
            Ok(Some(rec)) => {
                assert_eq!(rec.id, id);
                read_ok += 1;
            }
            // Torn or corrupt: quarantined (moved aside and counted), never an error.
            Ok(None) => read_err.push("quarantined".to_string()),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("{id:020}")), "the error does not name the file: {msg}");
                read_err.push(harness::kind(&msg));
            }
        }
        after = Some(id);
    }
    let seq = s.next_seq();
    let id = s.push("affectd/fuzz/interval", b"{}").map_err(dir_named)?;
    assert!(after.is_none_or(|a| id > a), "a new message got id {id}, not after {after:?}");
    s.ack(id).map_err(dir_named)?;
    s.set_next_seq(seq.saturating_add(1)).map_err(dir_named)?;
    drop(s);
    let s = Spool::open(&dir, 1 << 20, false).map_err(dir_named)?;
    assert_eq!(s.next_seq(), seq.saturating_add(1));
    assert!(s.stats().queued <= queued, "{} queued after reopening, {queued} before", s.stats().queued);
    read_err.sort();
    read_err.dedup();
    Ok(format!("files={} queued={} read={} errors={read_err:?}", files.min(3), queued.min(3), read_ok.min(3)))
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            parts.push(&data[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name != b"."
        && name != b".."
        && name.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

#[test]
fn fuzz_spool() {
    const DICT: &[&[u8]] = &[
        b"\0--\0",
        b"00000000000000000009.msg\0",
        b"18446744073709551615.msg\0",
        b"00000000000000000002.tmp\0",
        b"next_seq\0",
        b"x.msg\0",
        b"affectd/d/interval\n",
        b"\n",
    ];
    let dir = scratch();
    let root = dir.path().to_path_buf();
    fuzz(Target { name: "spool", dict: DICT }, move |d| {
        let _keep = &dir;
        spool_target(&root, d)
    });
}

// ---------------------------------------------------------------------------------------------
// Regression tests: one per finding, each failing before its fix (the inputs are also in the
// seed corpus, so every fuzz run replays them).

/// Writes `data` to `name` in a fresh folder; returns the folder (kept alive) and the path.
fn file_with(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = scratch();
    let p = dir.path().join(name);
    write(&p, data);
    (dir, p)
}

#[test]
fn regression_y4m_header_that_is_not_ascii_is_a_clear_error() {
    // Invalid UTF-8 (was: a panic in `split_at` on the lossy string, exit 101), a BOM and a
    // multi-byte character in a tag's place (valid UTF-8, the same panic).
    for header in [
        &b"YUV4MPEG2 W16 H8 F5:1 \xff\xfeIp C420jpeg\n"[..],
        "YUV4MPEG2 \u{feff}W16 H8 F5:1\n".as_bytes(),
        "YUV4MPEG2 W16 H8 F5:1 é\n".as_bytes(),
    ] {
        let (_dir, p) = file_with("bad-header.y4m", header);
        let e = std::panic::catch_unwind(|| Y4mReader::open(&p).err().map(|e| e.to_string()))
            .unwrap_or_else(|_| panic!("Y4mReader::open panicked on {:?}", String::from_utf8_lossy(header)));
        let e = e.expect("a header that is not ASCII was accepted");
        assert!(e.contains("bad-header.y4m") && e.contains("not ASCII") && e.contains("byte"), "{e}");
    }
    let e = affectd::source::y4m::Y4mHeader::parse("YUV4MPEG2 W16 H8 F5:1 éX").unwrap_err();
    assert!(e.contains("`éX` is not ASCII"), "{e}");
}

#[test]
fn regression_y4m_huge_header_does_not_allocate_before_data_arrives() {
    // A 50-byte file claiming 16384x16384 4:4:4 frames (805 MB each) allocated the whole frame
    // buffer at open.
    let (_dir, p) = file_with("huge.y4m", b"YUV4MPEG2 W16384 H16384 F25:1 C444\nFRAME\n0123456789");
    let (r, peak) = harness::peak_alloc(|| {
        let mut r = Y4mReader::open(&p).unwrap();
        r.next_frame().map(|_| ()).unwrap_err().to_string()
    });
    assert!(r.contains("huge.y4m") && r.contains("truncated"), "{r}");
    assert!(peak < 1 << 20, "a 50-byte Y4M file made a {peak}-byte allocation");
}

#[test]
fn regression_spool_file_with_the_largest_id_is_not_an_overflow() {
    // `18446744073709551615.msg` (u64::MAX) panicked in `Spool::open` (next id = id + 1, debug
    // builds) and wrapped to id 0 in release builds, so new messages would sort before it.
    use affectd::sink::spool::Spool;
    for name in ["18446744073709551615.msg", "18446744073709551614.msg", "9223372036854775808.msg"] {
        let dir = scratch();
        write(&dir.path().join(name), b"t\n{}");
        write(&dir.path().join("00000000000000000004.msg"), b"affectd/d/interval\n{\"seq\":4}");
        let r = std::panic::catch_unwind(|| {
            let mut s = Spool::open(dir.path(), 1 << 20, false).unwrap();
            let first = s.next_after(None);
            let after = s.next_after(first);
            let id = s.push("t", b"x").unwrap();
            (first, after, id)
        });
        let (first, after, id) = r.unwrap_or_else(|_| panic!("{name}: the spool panicked"));
        assert_eq!(
            (first, after, id),
            (Some(4), None, 5),
            "{name}: ids out of the range affectd writes are ignored"
        );
    }
}

/// A canonical 44-byte-header WAV: PCM (format 1) or IEEE float (3).
fn wav_bytes(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = (channels as u32 * bits as u32 / 8) as u16;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate.wrapping_mul(block as u32)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn read_wav(p: &Path) -> affectd::Result<Vec<f32>> {
    let mut r = WavReader::open(p)?;
    let mut all = Vec::new();
    while let Some(s) = r.next_samples()? {
        all.extend(s);
    }
    Ok(all)
}

#[test]
fn regression_wav_float_samples_outside_full_scale_are_clamped() {
    // A float WAV at 16 kHz (no resampling) passed NaN, infinities and values beyond ±1 on to the
    // speech stages, which are promised samples in [-1, 1].
    let samples = [0.5f32, 2.0, -3.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.25, 1e30];
    let data: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
    for rate in [16000, 48000] {
        let (_dir, p) = file_with("float.wav", &wav_bytes(3, 1, rate, 32, &data));
        let out = read_wav(&p).unwrap();
        assert!(out.iter().all(|x| x.is_finite() && (-1.0..=1.0).contains(x)), "{rate} Hz: {out:?}");
    }
    let (_dir, p) = file_with("float.wav", &wav_bytes(3, 1, 16000, 32, &data));
    assert_eq!(read_wav(&p).unwrap(), vec![0.5, 1.0, -1.0, 0.0, 1.0, -1.0, -0.25, 1.0]);
}

#[test]
fn regression_wav_sample_rate_out_of_range_is_a_clear_error() {
    // A 48-byte WAV claiming 4294967295 Hz made the resampler plan an FFT of 858993459 points
    // (gigabytes, the process aborted); 1 Hz one of 8 M output points.
    for rate in [u32::MAX, 2_000_000, 1] {
        // 8-bit mono: the byte rate equals the sample rate, which hound checks.
        let (_dir, p) = file_with("rate.wav", &wav_bytes(1, 1, rate, 8, &[128, 129]));
        let (r, peak) = harness::peak_alloc(|| WavReader::open(&p).err().map(|e| e.to_string()));
        let e = r.unwrap_or_else(|| panic!("{rate} Hz was accepted"));
        assert!(e.contains("rate.wav") && e.contains(&format!("{rate} Hz")) && e.contains("allowed"), "{e}");
        assert!(peak < 1 << 20, "{rate} Hz: a {peak}-byte allocation");
    }
}

#[test]
fn regression_wav_many_channels_do_not_allocate_ahead_of_the_data() {
    // 65535 channels: each read reserved 4096 frames x 65535 channels of f32 (1 GiB) up front.
    let (_dir, p) = file_with("wide.wav", &wav_bytes(1, 65535, 16000, 8, &[128; 65535 * 2]));
    let (out, peak) = harness::peak_alloc(|| read_wav(&p));
    assert_eq!(out.unwrap().len(), 2);
    assert!(peak < 16 << 20, "a 131 kB WAV made a {peak}-byte allocation");
}

#[test]
fn regression_mjpeg_frame_larger_than_the_camera_is_refused_before_allocating() {
    // A 645-byte JPEG whose header claims 10000x10000 decoded "fine" into a 300 MB buffer
    // (the `image` crate's default limit is 512 MiB per allocation).
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/mjpeg/24x16-yuvj420p.jpg");
    let mut jpeg = std::fs::read(seed).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x27, 0x10, 0x27, 0x10]);
    let (r, peak) = harness::peak_alloc(|| decode_mjpeg(&jpeg, 1280, 720));
    let e = r.expect_err("a 10000x10000 frame from a 1280x720 camera was decoded");
    assert!(e.contains("larger than the camera's 1280x720"), "{e}");
    assert!(peak < 1 << 20, "a {}-byte frame made a {peak}-byte allocation", jpeg.len());
}
