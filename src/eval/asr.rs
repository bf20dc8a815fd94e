//! `affectd eval asr --data DIR`: DIR holds `transcripts.tsv` (columns path, duration_s,
//! reference_transcript, note; a header line) and the WAV files it names (any rate and channel
//! count). Each file is transcribed whole by the configured ASR model (in 30 s windows) and scored
//! after [`normalize`]. Prints per-file word errors, then, last, `wer=0.xxxx words=N`
//! (corpus-level: total edits / total reference words).

use super::metrics::word_errors;
use crate::audio::asr::{Asr, AsrParams};
use crate::audio::vad::SpeechSegment;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model;
use crate::source::wav::WavReader;
use crate::source::AudioSource;
use std::path::Path;

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

/// A cardinal number in words: 42 → "forty two".
pub fn int_words(n: u64) -> String {
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 => {
            let t = TENS[(n / 10) as usize];
            if n.is_multiple_of(10) {
                t.to_string()
            } else {
                format!("{t} {}", ONES[(n % 10) as usize])
            }
        }
        100..=999 => {
            let h = format!("{} hundred", ONES[(n / 100) as usize]);
            if n.is_multiple_of(100) {
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
                    return if n.is_multiple_of(div) {
                        head
                    } else {
                        format!("{head} {}", int_words(n % div))
                    };
                }
            }
            unreachable!("n >= 1000 has a divisor")
        }
    }
}

/// A year in words: 1813 → "eighteen thirteen", 1900 → "nineteen hundred", 1905 → "nineteen oh
/// five", 2005 → "two thousand five".
pub fn year_words(n: u64) -> String {
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

/// Words for a number token: digits with an optional decimal part or ordinal suffix.
fn number_words(digits: &str, frac: Option<&str>, suffix: Option<&str>) -> String {
    let Ok(n) = digits.parse::<u64>() else {
        // Too long for u64: read digit by digit.
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

/// WER normalisation (shared/MODEL-NOTES.md, the same as tools/asr/wer.py): lower-case; numbers
/// to words (4-digit years read as years); hyphens to spaces; apostrophes dropped; other
/// punctuation removed; mr/mrs/dr/st expanded.
pub fn normalize(text: &str) -> Vec<String> {
    let t = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let c: Vec<char> = t.chars().collect();
    let mut s = String::with_capacity(t.len() + 16);
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_ascii_digit() {
            // digits, thousands separators (1,000), decimal part, ordinal suffix
            let mut digits = String::new();
            while i < c.len() {
                if c[i].is_ascii_digit() {
                    digits.push(c[i]);
                    i += 1;
                } else if c[i] == ','
                    && i + 3 < c.len()
                    && c[i + 1..].iter().take(3).all(|d| d.is_ascii_digit())
                    && c.get(i + 4).is_none_or(|d| !d.is_ascii_digit())
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

/// Reads a whole WAV file as 16 kHz mono.
pub fn read_wav_16k(path: &Path) -> Result<Vec<f32>> {
    let mut r = WavReader::open(path)?;
    let mut all = Vec::new();
    while let Some(s) = r.next_samples()? {
        all.extend(s);
    }
    Ok(all)
}

/// Parses `transcripts.tsv` (`text` read from `tsv`, named in errors): a header line, then
/// rows of path, duration_s, reference_transcript[, note]; returns (path, reference) per row.
pub fn parse_transcripts(tsv: &Path, text: &str) -> Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    for (ln, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            return Err(Error::input(
                tsv,
                format!(
                    "line {}: {} columns, expected path, duration_s, reference_transcript[, note]",
                    ln + 1,
                    cols.len()
                ),
            ));
        }
        rows.push((cols[0].to_string(), cols[2].to_string()));
    }
    Ok(rows)
}

/// Runs the evaluation; returns the printed report.
pub fn run(data: &Path, cfg: &Config) -> Result<String> {
    let tsv = data.join("transcripts.tsv");
    let text = std::fs::read_to_string(&tsv)
        .map_err(|e| Error::input(&tsv, format!("cannot read the transcript list: {e}")))?;
    let rows = parse_transcripts(&tsv, &text)?;
    let (path, _entry) = model::locate(&cfg.models.dir, "asr", cfg.models.verify)?;
    let params = AsrParams::from_config(&cfg.speech, false);
    let mut asr = Asr::load(&path, params)?;
    let (mut busy, mut audio_s) = (0.0f64, 0.0f64);
    let mut report = format!("model {}\n", asr.version());
    let (mut errors, mut words) = (0usize, 0usize);
    for (file, reference) in rows {
        let wav = data.join(&file);
        let samples = read_wav_16k(&wav)?;
        let end = samples.len() as f64 / 16000.0;
        let seg = SpeechSegment { start: 0.0, end, samples };
        let t0 = std::time::Instant::now();
        let hyp = asr.transcribe(&seg)?.map(|t| t.text).unwrap_or_default();
        busy += t0.elapsed().as_secs_f64();
        audio_s += end;
        let r = normalize(&reference);
        let h = normalize(&hyp);
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let hh: Vec<&str> = h.iter().map(String::as_str).collect();
        let e = word_errors(&rr, &hh);
        errors += e;
        words += r.len();
        report += &format!("{file}\t{e}/{}\t{hyp}\n", r.len());
    }
    if words == 0 {
        return Err(Error::input(&tsv, "no reference words (the file lists no transcripts)"));
    }
    report += &format!(
        "wer={:.4} words={words} audio_s={audio_s:.1} asr_s={busy:.2} rtf={:.3} threads={} fit_audio_ctx={}\n",
        errors as f64 / words as f64,
        busy / audio_s.max(1e-9),
        cfg.speech.asr_threads,
        cfg.speech.fit_audio_ctx
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).join(" ")
    }

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
}
