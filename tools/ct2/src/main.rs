//! Issue 20: transcribe `$AFFECTD_DATA/speech/transcripts.tsv` with CTranslate2 (ct2rs) and score it
//! with the project's WER rules, in the same output format as `affectd eval asr`.
//!
//! usage: ct2-bench [--mel ct2rs|whisper] [--prompt lang|en-only] [MODEL_DIR] [DATA_DIR]
//!
//! * `--mel ct2rs --prompt lang` (default): ct2rs's own `Whisper::generate(samples, Some("en"),
//!   false, opts)` — the wrapper as shipped. Its prompt is `<|startoftranscript|><|en|>
//!   <|transcribe|><|notimestamps|>`, and its log-mel is normalised per 10 ms frame (mel_spec's
//!   `norm_mel` on each frame) with the unused part of the 30 s window left at 0.
//! * `--mel whisper`: a log-mel computed as OpenAI Whisper / faster-whisper do (centred STFT with
//!   reflect padding, audio padded with 30 s of zeros, clamp at the window's max - 8 dB·10).
//! * `--prompt en-only`: the prompt English-only models (`*.en`) are trained with:
//!   `<|startoftranscript|><|notimestamps|>` (what whisper.cpp and faster-whisper send to tiny.en).
//!
//! Always greedy (beam 1), 1 intra-op thread, int8 compute, no timestamps. `asr_s` sums the wall
//! time of the transcribe calls (log-mel + encoder + decoder + detokenise), model load excluded.

use anyhow::{anyhow, bail, Context, Result};
use ct2rs::sys::{StorageView, Whisper as RawWhisper};
use ct2rs::tokenizers::hf;
use ct2rs::{ComputeType, Config, Device, Tokenizer as _, Whisper, WhisperOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const SR: usize = 16000;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const N_SAMPLES: usize = 30 * SR;
const N_FRAMES: usize = N_SAMPLES / HOP; // 3000

// ---------------------------------------------------------------------------------------------
// WER normalisation: a port of affectd's src/eval/asr.rs `normalize` (itself the rule of
// tools/asr/wer.py and shared/MODEL-NOTES.md) and src/eval/metrics.rs `word_errors`, copied
// rule for rule.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] =
    ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

fn int_words(n: u64) -> String {
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 => {
            let t = TENS[(n / 10) as usize];
            if n % 10 == 0 {
                t.to_string()
            } else {
                format!("{t} {}", ONES[(n % 10) as usize])
            }
        }
        100..=999 => {
            let h = format!("{} hundred", ONES[(n / 100) as usize]);
            if n % 100 == 0 {
                h
            } else {
                format!("{h} {}", int_words(n % 100))
            }
        }
        _ => {
            for (div, word) in [
                (1_000_000_000_000u64, "trillion"),
                (1_000_000_000, "billion"),
                (1_000_000, "million"),
                (1000, "thousand"),
            ] {
                if n >= div {
                    let head = format!("{} {word}", int_words(n / div));
                    return if n % div == 0 { head } else { format!("{head} {}", int_words(n % div)) };
                }
            }
            unreachable!("n >= 1000 has a divisor")
        }
    }
}

fn year_words(n: u64) -> String {
    let (hi, lo) = (n / 100, n % 100);
    if (2000..=2009).contains(&n) {
        int_words(n)
    } else if lo == 0 {
        format!("{} hundred", int_words(hi))
    } else if lo < 10 {
        format!("{} oh {}", int_words(hi), ONES[lo as usize])
    } else {
        format!("{} {}", int_words(hi), int_words(lo))
    }
}

fn ordinal_words(n: u64) -> String {
    let mut w: Vec<String> = int_words(n).split(' ').map(str::to_string).collect();
    let last = w.pop().unwrap_or_default();
    let ord = match last.as_str() {
        "one" => "first".to_string(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    w.push(ord);
    w.join(" ")
}

fn number_words(digits: &str, frac: Option<&str>, suffix: Option<&str>) -> String {
    let Ok(n) = digits.parse::<u64>() else {
        return digits.chars().map(|c| ONES[c as usize - '0' as usize]).collect::<Vec<_>>().join(" ");
    };
    if suffix.is_some() {
        return ordinal_words(n);
    }
    if let Some(f) = frac {
        let fw: Vec<&str> = f.chars().map(|c| ONES[c as usize - '0' as usize]).collect();
        return format!("{} point {}", int_words(n), fw.join(" "));
    }
    if digits.len() == 4 && (1100..=2099).contains(&n) {
        return year_words(n);
    }
    int_words(n)
}

/// Lower-case; numbers to words (4-digit years read as years); hyphens to spaces; apostrophes
/// dropped; other punctuation removed; mr/mrs/dr/st expanded.
fn normalize(text: &str) -> Vec<String> {
    let t = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let c: Vec<char> = t.chars().collect();
    let mut s = String::with_capacity(t.len() + 16);
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_ascii_digit() {
            let mut digits = String::new();
            while i < c.len() {
                if c[i].is_ascii_digit() {
                    digits.push(c[i]);
                    i += 1;
                } else if c[i] == ','
                    && i + 3 < c.len()
                    && c[i + 1..].iter().take(3).all(|d| d.is_ascii_digit())
                    && c.get(i + 4).map_or(true, |d| !d.is_ascii_digit())
                {
                    i += 1;
                } else {
                    break;
                }
            }
            let mut frac = None;
            if i + 1 < c.len() && c[i] == '.' && c[i + 1].is_ascii_digit() {
                let mut f = String::new();
                i += 1;
                while i < c.len() && c[i].is_ascii_digit() {
                    f.push(c[i]);
                    i += 1;
                }
                frac = Some(f);
            }
            let mut suffix = None;
            if frac.is_none() && i + 1 < c.len() {
                let two: String = c[i..i + 2].iter().collect();
                if ["st", "nd", "rd", "th"].contains(&two.as_str()) {
                    suffix = Some(two);
                    i += 2;
                }
            }
            s.push(' ');
            s.push_str(&number_words(&digits, frac.as_deref(), suffix.as_deref()));
            s.push(' ');
            continue;
        }
        match ch {
            '%' => s.push_str(" percent "),
            '-' | '\u{2010}'..='\u{2015}' => s.push(' '),
            '\'' => {}
            c if c.is_ascii_alphanumeric() => s.push(c),
            _ => s.push(' '),
        }
        i += 1;
    }
    s.split_whitespace()
        .map(|w| match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "dr" => "doctor".to_string(),
            "st" => "saint".to_string(),
            w => w.to_string(),
        })
        .collect()
}

fn word_errors(reference: &[&str], hypothesis: &[&str]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j] + (r != h) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

// ---------------------------------------------------------------------------------------------
// Audio

/// A WAV file as 16 kHz mono f32 in [-1, 1]: channels averaged, other rates linearly resampled
/// (every corpus file is already 16 kHz mono s16, so the resampler is not exercised here).
fn read_wav_16k(path: &Path) -> Result<Vec<f32>> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let spec = r.spec();
    let raw: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>().map(|s| s.map(|v| v as f32 / scale)).collect::<Result<_, _>>()?
        }
    };
    let ch = spec.channels as usize;
    let mono: Vec<f32> = raw.chunks(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect();
    if spec.sample_rate as usize == SR {
        return Ok(mono);
    }
    let ratio = spec.sample_rate as f64 / SR as f64;
    let n_out = (mono.len() as f64 / ratio).floor() as usize;
    Ok((0..n_out)
        .map(|k| {
            let x = k as f64 * ratio;
            let i = x.floor() as usize;
            let f = (x - i as f64) as f32;
            let a = mono[i];
            let b = *mono.get(i + 1).unwrap_or(&a);
            a + (b - a) * f
        })
        .collect())
}

/// Whisper's log-mel of one ≤ 30 s window, as openai-whisper `log_mel_spectrogram(audio,
/// padding=N_SAMPLES)[:, :3000]`: periodic Hann window, centred frames with reflect padding,
/// power spectrum, Slaney mel filters, log10 clamped at 1e-10, floor at max - 8, (x + 4) / 4.
struct WhisperMel {
    fft: Arc<dyn rustfft::Fft<f32>>,
    window: Vec<f32>,
    filters: Vec<f32>, // N_MELS x (N_FFT/2+1), row-major
}

impl WhisperMel {
    fn new() -> Self {
        let fft = rustfft::FftPlanner::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        // The same filter bank ct2rs builds when preprocessor_config.json has no mel_filters.
        let m = mel_spec::mel::mel(SR as f64, N_FFT, N_MELS, None, None, false, true);
        assert_eq!(m.shape(), &[N_MELS, N_FFT / 2 + 1]);
        let filters = m.iter().map(|&v| v as f32).collect();
        WhisperMel { fft, window, filters }
    }

    /// Returns N_MELS x N_FRAMES, row-major.
    fn compute(&self, chunk: &[f32]) -> Vec<f32> {
        use rustfft::num_complex::Complex;
        let n_bins = N_FFT / 2 + 1;
        let half = (N_FFT / 2) as isize;
        let n = chunk.len() as isize;
        // The signal is `chunk` followed by N_SAMPLES zeros, reflect-padded by N_FFT/2 each side.
        let total = n + N_SAMPLES as isize;
        let at = |i: isize| -> f32 {
            let j = if i < 0 {
                -i
            } else if i >= total {
                2 * (total - 1) - i
            } else {
                i
            };
            if j < n {
                chunk[j as usize]
            } else {
                0.0
            }
        };
        let mut out = vec![0f32; N_MELS * N_FRAMES];
        let mut buf = vec![Complex { re: 0f32, im: 0f32 }; N_FFT];
        let mut power = vec![0f32; n_bins];
        let mut max = f32::NEG_INFINITY;
        for t in 0..N_FRAMES {
            let start = (t * HOP) as isize - half;
            for k in 0..N_FFT {
                buf[k] = Complex { re: at(start + k as isize) * self.window[k], im: 0.0 };
            }
            self.fft.process(&mut buf);
            for k in 0..n_bins {
                power[k] = buf[k].norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * n_bins..(m + 1) * n_bins];
                let e: f32 = row.iter().zip(&power).map(|(a, b)| a * b).sum();
                let v = e.max(1e-10).log10();
                max = max.max(v);
                out[m * N_FRAMES + t] = v;
            }
        }
        let floor = max - 8.0;
        for v in &mut out {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------

enum Engine {
    /// ct2rs's high-level wrapper (its own log-mel and prompt).
    Wrapper(Whisper),
    /// ct2rs's raw CTranslate2 Whisper binding with our log-mel and/or prompt.
    Raw { model: RawWhisper, tok: hf::Tokenizer, mel: Option<WhisperMel>, prompt: Vec<&'static str> },
}

fn main() -> Result<()> {
    let mut mel_mode = "ct2rs".to_string();
    let mut prompt_mode = "lang".to_string();
    let mut pos = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mel" => mel_mode = args.next().ok_or_else(|| anyhow!("--mel needs a value"))?,
            "--prompt" => prompt_mode = args.next().ok_or_else(|| anyhow!("--prompt needs a value"))?,
            "-h" | "--help" => {
                println!(
                    "usage: ct2-bench [--mel ct2rs|whisper] [--prompt lang|en-only] [MODEL_DIR] [DATA_DIR]"
                );
                return Ok(());
            }
            _ => pos.push(a),
        }
    }
    let model_dir = PathBuf::from(pos.first().cloned().unwrap_or_else(|| "/work/ct2-model".into()));
    let data = match pos.get(1) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("AFFECTD_DATA").context("AFFECTD_DATA unset")?).join("speech"),
    };
    if !["ct2rs", "whisper"].contains(&mel_mode.as_str())
        || !["lang", "en-only"].contains(&prompt_mode.as_str())
    {
        bail!("--mel ct2rs|whisper, --prompt lang|en-only");
    }

    let config = Config {
        device: Device::CPU,
        compute_type: ComputeType::INT8,
        num_threads_per_replica: 1,
        ..Default::default()
    };
    let opts = WhisperOptions { beam_size: 1, ..Default::default() };

    let t_load = Instant::now();
    let engine = if mel_mode == "ct2rs" && prompt_mode == "lang" {
        Engine::Wrapper(Whisper::new(&model_dir, config)?)
    } else {
        let model = RawWhisper::new(&model_dir, config)?;
        let tok = hf::Tokenizer::new(&model_dir)?;
        let prompt = if prompt_mode == "lang" {
            vec!["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
        } else {
            vec!["<|startoftranscript|>", "<|notimestamps|>"]
        };
        if mel_mode == "ct2rs" {
            bail!("--mel ct2rs is only available with --prompt lang (the wrapper's own path)");
        }
        Engine::Raw { model, tok, mel: Some(WhisperMel::new()), prompt }
    };
    let load_s = t_load.elapsed().as_secs_f64();

    let tsv = data.join("transcripts.tsv");
    let text = std::fs::read_to_string(&tsv).with_context(|| format!("{}", tsv.display()))?;
    println!(
        "model {} (CTranslate2 via ct2rs 0.10.3, int8, ruy, 1 thread, beam 1) mel={mel_mode} prompt={prompt_mode} load_s={load_s:.2}",
        model_dir.display()
    );
    let (mut errors, mut words, mut busy, mut audio_s) = (0usize, 0usize, 0f64, 0f64);
    for (ln, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            bail!("{}: line {}: {} columns", tsv.display(), ln + 1, cols.len());
        }
        let (file, reference) = (cols[0], cols[2]);
        let samples = read_wav_16k(&data.join(file))?;
        let dur = samples.len() as f64 / SR as f64;

        let t0 = Instant::now();
        let hyp = match &engine {
            Engine::Wrapper(w) => w.generate(&samples, Some("en"), false, &opts)?.join(" "),
            Engine::Raw { model, tok, mel, prompt } => {
                let mel = mel.as_ref().expect("raw path has a mel");
                let mut parts = Vec::new();
                for chunk in samples.chunks(N_SAMPLES) {
                    let mut feats = mel.compute(chunk);
                    let sv = StorageView::new(&[1, N_MELS, N_FRAMES], &mut feats, Device::CPU)?;
                    let res = model.generate(&sv, &[prompt.clone()], &opts)?;
                    let seq = res
                        .into_iter()
                        .next()
                        .and_then(|r| r.sequences.into_iter().next())
                        .ok_or_else(|| anyhow!("no sequence"))?;
                    parts.push(tok.decode(seq)?);
                }
                parts.join(" ")
            }
        };
        busy += t0.elapsed().as_secs_f64();
        audio_s += dur;

        let hyp = hyp.trim().to_string();
        let r = normalize(reference);
        let h = normalize(&hyp);
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let hh: Vec<&str> = h.iter().map(String::as_str).collect();
        let e = word_errors(&rr, &hh);
        errors += e;
        words += r.len();
        println!("{file}\t{e}/{}\t{hyp}", r.len());
    }
    if words == 0 {
        bail!("no reference words");
    }
    println!(
        "wer={:.4} words={words} audio_s={audio_s:.1} asr_s={busy:.2} rtf={:.3} threads=1 load_s={load_s:.2}",
        errors as f64 / words as f64,
        busy / audio_s.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).join(" ")
    }

    // The cases of affectd's src/eval/asr.rs tests, verbatim.
    #[test]
    fn numbers_become_words() {
        assert_eq!(n("In 1813."), "in eighteen thirteen");
        assert_eq!(n("4. Queen of Clothes"), "four queen of clothes");
        assert_eq!(
            n("1900 1905 2005 1961"),
            "nineteen hundred nineteen oh five two thousand five nineteen sixty one"
        );
        assert_eq!(n("10 meters, 3.5%"), "ten meters three point five percent");
        assert_eq!(n("the 21st and 3rd"), "the twenty first and third");
        assert_eq!(n("1,000 people, 250"), "one thousand people two hundred fifty");
        assert_eq!(n("5 5"), "five five");
    }

    #[test]
    fn punctuation_hyphens_apostrophes_abbreviations() {
        assert_eq!(n("Mr. Quilter, it's ill-disposed!"), "mister quilter its ill disposed");
        assert_eq!(n("Dr. Who and Mrs. St. John"), "doctor who and missus saint john");
        assert_eq!(n("And so, my fellow Americans—ask"), "and so my fellow americans ask");
        assert_eq!(n("IF THE READER"), "if the reader");
        assert_eq!(n("don\u{2019}t"), "dont");
        assert!(normalize("  ... ").is_empty());
    }

    #[test]
    fn edit_distance() {
        assert_eq!(word_errors(&["a", "b", "c"], &["a", "x", "c", "d"]), 2);
        assert_eq!(word_errors(&[], &["a"]), 1);
    }

    #[test]
    fn mel_of_silence_is_flat() {
        let m = WhisperMel::new().compute(&vec![0.0; 16000]);
        assert_eq!(m.len(), N_MELS * N_FRAMES);
        assert!(m.iter().all(|&v| (v - (-10.0 + 4.0) / 4.0).abs() < 1e-6));
    }
}
