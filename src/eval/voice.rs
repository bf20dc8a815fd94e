//! `affectd eval voice --data DIR`: DIR holds `labels.csv` (a header with at least `path` and
//! `emotion`; `actor` optional, used by `--actors`) and the audio files it names (FLAC, WAV or
//! anything ffmpeg decodes). Each file goes through the real speech path (16 kHz mono decoding,
//! whisper.cpp with the configured model) as one utterance; the Whisper encoder output is pooled
//! ([`crate::audio::asr::EncoderPool`]) and scored by the shipped voice head. Prints the
//! confusion matrix, the 3-class sentiment table, negative-vs-not accuracy, the per-utterance
//! cost of the voice features and, last, `accuracy=… macro_f1=… n=N` (8-class accuracy, 3-class
//! sentiment macro-F1). `--dump-features FILE` writes each file's features as JSON lines
//! (the input of `tools/voice/train.py`); it works before any voice head exists.

use super::metrics::Confusion;
use crate::audio::asr::{Asr, AsrParams};
use crate::audio::vad::SpeechSegment;
use crate::audio::voice::{sentiment_of_class, VoiceHead, LABELS};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model;
use crate::text::LABELS as SENTIMENT;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Audio file, relative to the data folder.
    pub path: String,
    /// Index into [`LABELS`].
    pub emotion: usize,
    /// Speaker id (the `actor` column), empty when absent.
    pub actor: String,
}

/// Parses an actor filter: `21-24`, `1,2,5` or a mix (`1-3,7`); ids compare as integers.
pub fn parse_actors(spec: &str) -> Result<Vec<u32>> {
    let bad = |part: &str| {
        Error::config(
            "--actors",
            format!("`{part}` is not an actor id or range (allowed e.g. `21-24` or `1,2,5`)"),
        )
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.trim().parse().map_err(|_| bad(part))?, b.trim().parse().map_err(|_| bad(part))?);
                if a > b {
                    return Err(bad(part));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad(part))?),
        }
    }
    if out.is_empty() {
        return Err(bad(spec));
    }
    Ok(out)
}

/// Reads `labels.csv`; a missing column, bad row or unknown emotion is an error naming the file
/// and line.
pub fn read_labels(path: &Path) -> Result<Vec<Row>> {
    let (mut rdr, cols) = super::open_csv(path)?;
    let cols: Vec<String> = cols.iter().map(|c| c.to_ascii_lowercase()).collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(pi), Some(ei)) = (col("path"), col("emotion")) else {
        return Err(Error::input(
            path,
            format!("line 1: header is `{}`; it needs at least `path` and `emotion` columns", cols.join(",")),
        ));
    };
    let ai = col("actor");
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Error::input(path, format!("line {line}: not a {}-column CSV row ({e})", cols.len()))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let label = rec.get(ei).unwrap_or("").trim();
        let emotion = LABELS.iter().position(|l| l.eq_ignore_ascii_case(label)).ok_or_else(|| {
            Error::input(
                path,
                format!("line {line}: emotion `{label}` is not allowed (allowed: {})", LABELS.join(", ")),
            )
        })?;
        let file = rec.get(pi).unwrap_or("").trim();
        if file.is_empty() {
            return Err(Error::input(path, format!("line {line}: empty path")));
        }
        let actor = ai.and_then(|i| rec.get(i)).unwrap_or("").trim().to_string();
        out.push(Row { path: file.to_string(), emotion, actor });
    }
    if out.is_empty() {
        return Err(Error::input(path, "no rows after the header"));
    }
    Ok(out)
}

/// Reads a whole audio file (WAV natively, else ffmpeg) as 16 kHz mono.
pub fn read_audio_16k(path: &Path) -> Result<Vec<f32>> {
    let mut src = crate::source::open_audio(path)?;
    let mut all = Vec::new();
    while let Some(s) = src.next_samples()? {
        all.extend(s);
    }
    Ok(all)
}

/// Runs the evaluation; returns the printed report.
pub fn run(data: &Path, actors: Option<&str>, dump: Option<&Path>, cfg: &Config) -> Result<String> {
    let csv_path = data.join("labels.csv");
    let mut rows = read_labels(&csv_path)?;
    if let Some(spec) = actors {
        let keep = parse_actors(spec)?;
        if rows.iter().any(|r| r.actor.is_empty()) {
            return Err(Error::input(
                &csv_path,
                "--actors needs an `actor` column with a value on every row",
            ));
        }
        rows.retain(|r| r.actor.parse::<u32>().map(|a| keep.contains(&a)).unwrap_or(false));
        if rows.is_empty() {
            return Err(Error::input(&csv_path, format!("no rows for actors `{spec}`")));
        }
    }
    let (asr_path, _) = model::locate(&cfg.models.dir, "asr", cfg.models.verify)?;
    let params = AsrParams::from_config(&cfg.speech, true);
    let mut asr = Asr::load(&asr_path, params)?;
    let mut head = match VoiceHead::load_from(&cfg.models.dir, cfg.models.verify) {
        Ok(h) => Some(h),
        Err(e) if dump.is_some() => {
            log::warn!("eval voice: no voice head ({e}); dumping features only");
            None
        }
        Err(e) => return Err(e),
    };
    let mut out = match dump {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?)),
        None => None,
    };
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let sent_labels: Vec<String> = SENTIMENT.iter().map(|s| s.to_string()).collect();
    let mut conf = Confusion::new(&labels);
    let mut conf3 = Confusion::new(&sent_labels);
    let (mut neg_ok, mut scored, mut silent, mut reencoded) = (0usize, 0usize, 0usize, 0usize);
    let (mut asr_s, mut extra): (f64, Vec<f64>) = (0.0, Vec::new());
    let mut report = format!("model {}\n", asr.version());
    if let Some(h) = &head {
        report += &format!("voice head {}\n", h.path().display());
    }
    for row in &rows {
        let file = data.join(&row.path);
        let samples = read_audio_16k(&file)?;
        let end = samples.len() as f64 / 16000.0;
        let seg = SpeechSegment { start: 0.0, end, samples };
        let t0 = Instant::now();
        let t = asr.transcribe(&seg)?;
        asr_s += t0.elapsed().as_secs_f64();
        let Some((text, pool)) = t.and_then(|t| t.encoder.map(|p| (t.text, p))) else {
            silent += 1;
            report += &format!("{}\t(no speech recognised: skipped)\n", row.path);
            continue;
        };
        reencoded += pool.reencoded as usize;
        if let Some(w) = out.as_mut() {
            let line = serde_json::json!({
                "path": row.path, "emotion": LABELS[row.emotion], "actor": row.actor,
                "text": text, "frames": pool.frames, "features": pool.features,
            });
            writeln!(w, "{line}").map_err(|e| Error::io(dump.unwrap_or(Path::new("-")), e))?;
        }
        let mut cost = pool.pool_s;
        if let Some(h) = head.as_mut() {
            let est = h.predict(&pool.features)?;
            cost += est.head_s;
            let pred =
                est.probs.iter().enumerate().fold(0, |b, (i, p)| if *p > est.probs[b] { i } else { b });
            conf.add(row.emotion, pred);
            let s3 = est
                .sentiment
                .iter()
                .enumerate()
                .fold(0, |b, (i, p)| if *p > est.sentiment[b] { i } else { b });
            conf3.add(sentiment_of_class(row.emotion), s3);
            let truth_neg = sentiment_of_class(row.emotion) == 0;
            neg_ok += ((est.negative >= 0.5) == truth_neg) as usize;
            scored += 1;
        }
        extra.push(cost);
    }
    if let Some(mut w) = out {
        w.flush().map_err(|e| Error::io(dump.unwrap_or(Path::new("-")), e))?;
    }
    let n_utt = extra.len().max(1);
    extra.sort_by(|a, b| a.total_cmp(b));
    let mean_ms = extra.iter().sum::<f64>() / n_utt as f64 * 1e3;
    let p95_ms =
        extra.get((extra.len() * 95 / 100).min(extra.len().saturating_sub(1))).copied().unwrap_or(0.0) * 1e3;
    report += &format!(
        "files {} (no speech: {silent}); ASR mean {:.1} ms/utterance; voice features + head: mean {mean_ms:.3} ms, p95 {p95_ms:.3} ms/utterance; encoder re-runs {reencoded}\n",
        rows.len(),
        asr_s / rows.len().max(1) as f64 * 1e3,
    );
    if head.is_none() {
        report += &format!("features written: {} (no voice head to score)\n", extra.len());
        return Ok(report);
    }
    if scored == 0 {
        return Err(Error::input(&csv_path, "no file gave recognisable speech; nothing to score"));
    }
    report += "8-class voice emotion\n";
    report += &conf.report();
    report += "3-class sentiment (angry/fearful/sad/disgust → negative; happy → positive; neutral/calm/surprised → neutral)\n";
    report += &conf3.report();
    report += &format!("negative_vs_not_accuracy={:.4}\n", neg_ok as f64 / scored as f64);
    report += &format!("accuracy={:.4} macro_f1={:.4} n={scored}\n", conf.accuracy(), conf3.macro_f1());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_filters_parse_and_bad_ones_are_named() {
        assert_eq!(parse_actors("21-24").unwrap(), vec![21, 22, 23, 24]);
        assert_eq!(parse_actors("1, 3-4,9").unwrap(), vec![1, 3, 4, 9]);
        let e = parse_actors("4-2").unwrap_err().to_string();
        assert!(e.contains("4-2"), "{e}");
        assert!(parse_actors("x").unwrap_err().to_string().contains("`x`"));
    }

    #[test]
    fn labels_need_path_and_emotion_and_known_emotions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, "path,emotion,actor\na.flac,angry,01\nb.wav,Calm,02\n").unwrap();
        let rows = read_labels(&p).unwrap();
        assert_eq!(rows[0], Row { path: "a.flac".into(), emotion: 4, actor: "01".into() });
        assert_eq!(rows[1].emotion, 1);
        std::fs::write(&p, "path,label\na.flac,angry\n").unwrap();
        assert!(read_labels(&p).unwrap_err().to_string().contains("emotion"));
        std::fs::write(&p, "path,emotion\na.flac,furious\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("furious") && e.contains("line 2") && e.contains("labels.csv"), "{e}");
    }
}
