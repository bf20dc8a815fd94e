//! Speech stage: the converted whisper model file, VAD on real and synthetic audio, whisper-rs
//! transcription, bad model files, and the WER of `eval asr` on shared/data/speech.

mod common;
use common::*;

use affectd::audio::asr::{Asr, AsrParams};
use affectd::audio::vad::{SpeechSegment, Vad, VadParams};
use affectd::config::Config;
use affectd::message::AudioChunk;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn model() -> PathBuf {
    repo().join("models/ggml-tiny.en-q8_0.bin")
}

/// One loaded recogniser shared by the tests of this binary (loading costs ~0.3 s and 100+ MB).
fn asr() -> &'static Mutex<Asr> {
    static A: OnceLock<Mutex<Asr>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(Asr::load(&model(), AsrParams::default()).expect("load whisper model")))
}

fn jfk() -> Vec<f32> {
    affectd::eval::asr::read_wav_16k(&data_dir().join("speech/clean/jfk.wav")).unwrap()
}

fn vad_all(samples: &[f32]) -> Vec<SpeechSegment> {
    let mut v = Vad::new(VadParams::default());
    let mut out = Vec::new();
    for (i, c) in samples.chunks(1600).enumerate() {
        out.extend(v.push(&AudioChunk { seq: i as u64, t: i as f64 * 0.1, samples: c.to_vec() }));
    }
    out.extend(v.finish());
    out
}

fn white_noise(n: usize, rms: f32) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let amp = rms * 3f32.sqrt(); // uniform in [-a, a] has RMS a/sqrt(3)
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

struct Rd<R: Read>(R);
impl<R: Read> Rd<R> {
    fn i32(&mut self) -> i32 {
        let mut b = [0u8; 4];
        self.0.read_exact(&mut b).unwrap();
        i32::from_le_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.0.read_exact(&mut b).unwrap();
        b
    }
}

#[test]
fn converted_ggml_file_has_whisper_tiny_en_layout() {
    let f = std::fs::File::open(model()).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let mut r = Rd(std::io::BufReader::new(f));
    assert_eq!(r.i32() as u32, 0x6767_6d6c, "magic");
    let hp: Vec<i32> = (0..11).map(|_| r.i32()).collect();
    // n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
    // n_text_head, n_text_layer, n_mels, ftype
    assert_eq!(hp, vec![51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 2007]);
    let (n_mel, n_fft) = (r.i32(), r.i32());
    assert_eq!((n_mel, n_fft), (80, 201));
    let mel: Vec<f32> =
        r.bytes(80 * 201 * 4).chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert!(mel.iter().all(|v| v.is_finite() && *v >= 0.0) && mel.iter().any(|v| *v > 0.0));
    let n_tok = r.i32();
    assert!(n_tok > 50000 && n_tok <= 51864, "{n_tok}");
    let mut pos = 4 + 44 + 8 + 80 * 201 * 4 + 4;
    for _ in 0..n_tok {
        let l = r.i32() as usize;
        r.bytes(l);
        pos += 4 + l;
    }
    let mut seen = std::collections::HashMap::new();
    while pos < len {
        let (n_dims, name_len, ttype) = (r.i32(), r.i32() as usize, r.i32());
        let ne: Vec<usize> = (0..n_dims).map(|_| r.i32() as usize).collect();
        let name = String::from_utf8(r.bytes(name_len)).unwrap();
        let n: usize = ne.iter().product();
        let bytes = match ttype {
            0 => n * 4,
            1 => n * 2,
            8 => n / 32 * 34,
            t => panic!("{name}: unexpected type {t}"),
        };
        r.bytes(bytes);
        pos += 12 + 4 * n_dims as usize + name_len + bytes;
        seen.insert(name, (ne, ttype));
    }
    assert_eq!(pos, len, "tensors end exactly at the end of the file");
    assert_eq!(seen["encoder.conv1.weight"], (vec![3, 80, 384], 1), "conv weight f16, ggml order");
    assert_eq!(seen["encoder.conv1.bias"].1, 0);
    assert_eq!(seen["decoder.token_embedding.weight"], (vec![384, 51864], 8), "q8_0");
    assert_eq!(seen["decoder.positional_embedding"], (vec![384, 448], 0));
    assert_eq!(seen["encoder.positional_embedding"], (vec![384, 1500], 0));
    assert!(seen.contains_key("decoder.blocks.3.cross_attn.value.weight"));
    assert!(seen.contains_key("encoder.ln_post.weight"));
    let info = affectd::audio::asr::check_ggml(&model()).unwrap();
    assert_eq!((info.n_tensors, info.ftype()), (seen.len(), 2007));
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn jfk_is_transcribed() {
    let x = jfk();
    let seg = SpeechSegment { start: 2.0, end: 2.0 + x.len() as f64 / 16000.0, samples: x };
    let t = asr().lock().unwrap().transcribe(&seg).unwrap().expect("speech gives a transcript");
    let words = affectd::eval::asr::normalize(&t.text).join(" ");
    assert!(words.contains("ask not what your country can do for you"), "{}", t.text);
    assert!(t.start >= 2.0 && t.end <= seg.end + 1e-9 && t.start < t.end, "{t:?}");
    assert!(t.segments.iter().all(|s| s.no_speech_prob <= 0.6));
    assert!(asr().lock().unwrap().version().contains("ggml-tiny.en-q8_0.bin"));
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn vad_finds_the_speech_in_jfk_and_asr_reads_it() {
    let x = jfk();
    let segs = vad_all(&x);
    assert!(!segs.is_empty());
    let covered: f64 = segs.iter().map(|s| s.end - s.start).sum();
    assert!(covered > 6.0 && covered < 11.0, "speech covered {covered:.2} s of 11 s: {segs:?}");
    for s in &segs {
        assert_eq!(s.samples.len(), ((s.end - s.start) * 16000.0).round() as usize);
        assert!(s.end - s.start <= VadParams::default().max_utterance_s + 1e-9);
    }
    for w in segs.windows(2) {
        assert!(w[0].end <= w[1].start);
    }
    // The loudest 100 ms block lies inside a segment.
    let loud = x.chunks(1600).enumerate().max_by(|a, b| rms(a.1).total_cmp(&rms(b.1))).unwrap().0;
    let t = loud as f64 * 0.1 + 0.05;
    assert!(segs.iter().any(|s| s.start <= t && t <= s.end), "{t} not in {segs:?}");
    let mut a = asr().lock().unwrap();
    let text: Vec<String> = segs.iter().filter_map(|s| a.transcribe(s).unwrap()).map(|t| t.text).collect();
    let words = affectd::eval::asr::normalize(&text.join(" ")).join(" ");
    assert!(words.contains("ask not what your country can do"), "{words}");
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn silence_and_white_noise_give_no_segments_and_no_text() {
    assert!(vad_all(&[0.0; 48000]).is_empty());
    // White noise at the RMS of jfk's speech (about -22 dBFS).
    let level = rms(&jfk());
    let noise = white_noise(48000, level);
    assert!(vad_all(&noise).is_empty());
    // Noise that starts after a second of silence, louder than the speech.
    let mut late = vec![0.0; 16000];
    late.extend(white_noise(48000, 2.0 * level));
    assert!(vad_all(&late).is_empty());
    let seg = SpeechSegment { start: 0.0, end: 3.0, samples: vec![0.0; 48000] };
    assert_eq!(asr().lock().unwrap().transcribe(&seg).unwrap(), None, "no text from silence");
    let short = SpeechSegment { start: 0.0, end: 0.05, samples: vec![0.0; 800] };
    assert_eq!(asr().lock().unwrap().transcribe(&short).unwrap(), None);
}

#[test]
fn missing_and_corrupt_model_files_are_errors_naming_them() {
    let dir = scratch().join(format!("asr-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("nope.bin");
    let e = Asr::load(&missing, AsrParams::default()).unwrap_err();
    assert!(matches!(e, affectd::Error::Model { .. }));
    assert!(e.to_string().contains("nope.bin"), "{e}");
    let random = dir.join("random.bin");
    std::fs::write(
        &random,
        white_noise(100_000, 0.5).iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let e = Asr::load(&random, AsrParams::default()).unwrap_err().to_string();
    assert!(e.contains("random.bin") && e.contains("magic"), "{e}");
    // A truncated copy: the header is intact, the weights stop half way.
    let bytes = std::fs::read(model()).unwrap();
    for (name, cut) in [("half.bin", bytes.len() / 2), ("header.bin", 100), ("last.bin", bytes.len() - 1)] {
        let p = dir.join(name);
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = Asr::load(&p, AsrParams::default()).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("truncated"), "{e}");
    }
    let e = Asr::load(&model(), AsrParams { threads: 0, ..AsrParams::default() }).unwrap_err().to_string();
    assert!(e.contains("threads = 0"), "{e}");
}

#[test]
#[ignore = "needs AFFECTD_DATA"]
fn eval_asr_wer_on_shared_speech_is_at_most_ten_percent() {
    let t = std::time::Instant::now();
    let report = affectd::eval::asr::run(&data_dir().join("speech"), &Config::default()).unwrap();
    eprintln!("{report}({:.1} s)", t.elapsed().as_secs_f64());
    let last = report.lines().last().unwrap();
    let wer: f64 = last.strip_prefix("wer=").unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(last.contains(" words=329 ") && last.contains(" rtf="), "{last}");
    assert!(wer <= 0.10, "{report}");
}
