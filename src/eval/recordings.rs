//! `affectd eval recordings --labels FILE.csv`: runs the full `analyze` path (this very binary,
//! one child process per recording, so decoding, every model stage, fusion and the alert logic
//! are exactly what a user gets) over labelled recordings and scores the fused sentiment.
//!
//! The labels file is a CSV with a `path` column (relative to the CSV's folder, or absolute), a
//! label column (`label`, `sentiment` or `emotion`: negative/neutral/positive or an emotion
//! name, mapped by [`sentiment_of`]) and optionally `incongruent` (true/false). The shared
//! `grid-av/labels.csv` and `ravdess-av-actor05/labels.csv` can be given as they are.
//!
//! A recording's prediction is the label of its intervals' mean fused probabilities. Printed:
//! one row per recording, negative-vs-non-negative accuracy, per-class recall, flagged intervals
//! and alerts, and false flags per minute over the recordings labelled neutral; last line
//! `neg_accuracy=… accuracy=… flags_per_min_neutral=… n=N`.

use super::metrics::Confusion;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The three fused sentiment classes, in message order.
const CLASSES: [&str; 3] = ["negative", "neutral", "positive"];

/// Maps a label (a sentiment or an emotion name) to a sentiment class index. Surprise is not
/// dissatisfaction: it maps to neutral (as does calm); contempt, disgust, anger, fear and
/// sadness are negative.
pub fn sentiment_of(label: &str) -> Option<usize> {
    match label.trim().to_ascii_lowercase().as_str() {
        "negative" | "angry" | "anger" | "sad" | "sadness" | "fear" | "fearful" | "disgust" | "contempt" => {
            Some(0)
        }
        "neutral" | "calm" | "surprise" | "surprised" => Some(1),
        "positive" | "happy" | "happiness" => Some(2),
        _ => None,
    }
}

/// One labelled recording.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The recording file.
    pub path: PathBuf,
    /// The label as written.
    pub label: String,
    /// Its sentiment class index.
    pub class: usize,
    /// Expected incongruence, when the file says.
    pub incongruent: Option<bool>,
}

/// Reads a labels CSV (see the module doc).
pub fn read_labels(file: &Path) -> Result<Vec<Labelled>> {
    let mut rd = csv::Reader::from_path(file).map_err(|e| Error::input(file, format!("cannot read: {e}")))?;
    let h = rd.headers().map_err(|e| Error::input(file, format!("cannot read the header: {e}")))?.clone();
    let find = |n: &str| h.iter().position(|x| x == n);
    let path_col = find("path").ok_or_else(|| Error::input(file, "no `path` column"))?;
    let label_col = find("label")
        .or_else(|| find("sentiment"))
        .or_else(|| find("emotion"))
        .ok_or_else(|| Error::input(file, "no label column (allowed names: label, sentiment, emotion)"))?;
    let inc_col = find("incongruent");
    let base = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::input(file, format!("line {line}: {e}")))?;
        let p = PathBuf::from(rec.get(path_col).unwrap_or("").trim());
        if p.as_os_str().is_empty() {
            return Err(Error::input(file, format!("line {line}: empty `path`")));
        }
        let label = rec.get(label_col).unwrap_or("").trim().to_string();
        let class = sentiment_of(&label).ok_or_else(|| {
            Error::input(
                file,
                format!(
                    "line {line}: label `{label}`; allowed: negative, neutral, positive or an emotion \
                     (angry, sad, fearful, disgust, contempt, neutral, calm, surprised, happy)"
                ),
            )
        })?;
        let incongruent = match inc_col.map(|c| rec.get(c).unwrap_or("").trim().to_ascii_lowercase()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) if v == "true" || v == "1" => Some(true),
            Some(v) if v == "false" || v == "0" => Some(false),
            Some(v) => {
                return Err(Error::input(
                    file,
                    format!("line {line}: incongruent = `{v}`; allowed: true, false, 1, 0 or empty"),
                ))
            }
        };
        let path = if p.is_absolute() { p } else { base.join(p) };
        out.push(Labelled { path, label, class, incongruent });
    }
    if out.is_empty() {
        return Err(Error::input(file, "no recordings listed"));
    }
    Ok(out)
}

/// What `analyze` published for one recording.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Intervals published.
    pub intervals: usize,
    /// Intervals with a fused sentiment.
    pub scored: usize,
    /// Sum of the fused probabilities (negative, neutral, positive).
    pub probs: [f64; 3],
    /// Intervals whose incongruence flag was set.
    pub flagged: usize,
    /// Alerts raised.
    pub alerts: usize,
    /// Media seconds covered by the intervals.
    pub seconds: f64,
}

impl Outcome {
    /// The predicted class (argmax of the mean fused probabilities), if any interval was scored.
    pub fn predicted(&self) -> Option<usize> {
        if self.scored == 0 {
            return None;
        }
        (0..3).max_by(|&a, &b| self.probs[a].total_cmp(&self.probs[b]))
    }
}

/// Reads the JSON lines `analyze` wrote.
pub fn read_outcome(jsonl: &Path) -> Result<Outcome> {
    let text = std::fs::read_to_string(jsonl).map_err(|e| Error::input(jsonl, e.to_string()))?;
    let mut o = Outcome::default();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::input(jsonl, format!("line {}: not JSON: {e}", i + 1)))?;
        match v["schema"].as_str() {
            Some("affectd.interval/1") => {
                o.intervals += 1;
                let (s, e) = (v["interval"]["start_s"].as_f64(), v["interval"]["end_s"].as_f64());
                if let (Some(s), Some(e)) = (s, e) {
                    o.seconds += (e - s).max(0.0);
                }
                if let Some(p) = v["sentiment"]["probs"].as_object() {
                    o.scored += 1;
                    for (k, c) in CLASSES.iter().enumerate() {
                        o.probs[k] += p.get(*c).and_then(|x| x.as_f64()).unwrap_or(0.0);
                    }
                }
                if v["incongruence"]["flag"].as_bool() == Some(true) {
                    o.flagged += 1;
                }
            }
            Some("affectd.alert/1") => o.alerts += 1,
            _ => {}
        }
    }
    Ok(o)
}

/// Runs the evaluation: `exe analyze REC --out TMP --quiet [--interval S] [--config C]` per
/// recording; returns the printed report.
pub fn run(labels: &Path, interval_s: Option<f64>, config: Option<&Path>) -> Result<String> {
    let items = read_labels(labels)?;
    let exe =
        std::env::current_exe().map_err(|e| Error::input(labels, format!("cannot find this binary: {e}")))?;
    let tmp = std::env::temp_dir().join(format!("affectd-eval-rec-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::input(&tmp, e.to_string()))?;
    let mut conf = Confusion::new(&CLASSES.map(String::from));
    let mut neg = (0usize, 0usize);
    let (mut neutral_flags, mut neutral_alerts, mut neutral_s) = (0usize, 0usize, 0.0f64);
    let mut inc = (0usize, 0usize);
    let mut rows = format!(
        "{:<44} {:<9} {:<9} {:>5} {:>6} {:>6} {:>6} {:>7} {:>6}\n",
        "recording", "label", "predicted", "ivals", "p_neg", "p_neu", "p_pos", "flagged", "alerts"
    );
    for (i, it) in items.iter().enumerate() {
        if !it.path.is_file() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::input(&it.path, format!("listed in {} but not found", labels.display())));
        }
        let out = tmp.join(format!("{i}.jsonl"));
        let mut cmd = Command::new(&exe);
        cmd.arg("analyze").arg(&it.path).arg("--out").arg(&out).arg("--quiet");
        if let Some(s) = interval_s {
            cmd.arg("--interval").arg(format!("{s}s"));
        }
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let res = cmd.output().map_err(|e| Error::input(&exe, format!("cannot run analyze: {e}")))?;
        if !res.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::input(
                &it.path,
                format!("analyze failed ({}): {}", res.status, String::from_utf8_lossy(&res.stderr).trim()),
            ));
        }
        let o = read_outcome(&out)?;
        let pred = o.predicted();
        if let Some(p) = pred {
            conf.add(it.class, p);
            neg.1 += 1;
            if (p == 0) == (it.class == 0) {
                neg.0 += 1;
            }
        }
        if it.class == 1 {
            neutral_flags += o.flagged;
            neutral_alerts += o.alerts;
            neutral_s += o.seconds;
        }
        if let Some(want) = it.incongruent {
            inc.1 += 1;
            if want == (o.flagged > 0) {
                inc.0 += 1;
            }
        }
        let n = o.scored.max(1) as f64;
        let name = it.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        rows.push_str(&format!(
            "{:<44} {:<9} {:<9} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>7} {:>6}\n",
            name,
            it.label,
            pred.map(|p| CLASSES[p]).unwrap_or("-"),
            o.intervals,
            o.probs[0] / n,
            o.probs[1] / n,
            o.probs[2] / n,
            o.flagged,
            o.alerts
        ));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let neg_acc = neg.0 as f64 / neg.1.max(1) as f64;
    let per_min = if neutral_s > 0.0 { neutral_flags as f64 / (neutral_s / 60.0) } else { 0.0 };
    let inc_line =
        if inc.1 > 0 { format!("incongruence as expected: {}/{}\n", inc.0, inc.1) } else { String::new() };
    Ok(format!(
        "{rows}\n{}\nneutral recordings: {neutral_flags} flagged intervals, {neutral_alerts} alerts in {neutral_s:.1} s\n{inc_line}neg_accuracy={neg_acc:.4} accuracy={:.4} flags_per_min_neutral={per_min:.3} n={}\n",
        conf.report(),
        conf.accuracy(),
        neg.1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emotion_names_map_to_sentiment_and_surprise_is_not_negative() {
        assert_eq!(sentiment_of("Angry"), Some(0));
        assert_eq!(sentiment_of("fearful"), Some(0));
        assert_eq!(sentiment_of("surprised"), Some(1));
        assert_eq!(sentiment_of("calm"), Some(1));
        assert_eq!(sentiment_of("happy"), Some(2));
        assert_eq!(sentiment_of("bored"), None);
    }

    #[test]
    fn bad_labels_name_the_file_line_and_allowed_values() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("l.csv");
        std::fs::write(&f, "path,label\na.mp4,bored\n").unwrap();
        let e = read_labels(&f).unwrap_err().to_string();
        assert!(
            e.contains("l.csv") && e.contains("line 2") && e.contains("bored") && e.contains("allowed"),
            "{e}"
        );
        std::fs::write(&f, "file,label\na.mp4,neutral\n").unwrap();
        assert!(read_labels(&f).unwrap_err().to_string().contains("no `path` column"));
        std::fs::write(&f, "path,emotion,incongruent\na.mp4,angry,maybe\n").unwrap();
        assert!(read_labels(&f).unwrap_err().to_string().contains("maybe"));
        std::fs::write(&f, "path,emotion,incongruent\nsub/a.mp4,angry,true\n").unwrap();
        let l = read_labels(&f).unwrap();
        assert_eq!((l[0].class, l[0].incongruent), (0, Some(true)));
        assert_eq!(l[0].path, d.path().join("sub/a.mp4"));
    }

    #[test]
    fn outcome_counts_intervals_flags_and_alerts() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("o.jsonl");
        std::fs::write(
            &f,
            concat!(
                r#"{"schema":"affectd.interval/1","interval":{"start_s":0.0,"end_s":5.0},"sentiment":{"probs":{"negative":0.7,"neutral":0.2,"positive":0.1}},"incongruence":{"flag":true}}"#,
                "\n",
                r#"{"schema":"affectd.alert/1"}"#,
                "\n",
                r#"{"schema":"affectd.interval/1","interval":{"start_s":5.0,"end_s":7.0},"sentiment":null,"incongruence":null}"#,
                "\n"
            ),
        )
        .unwrap();
        let o = read_outcome(&f).unwrap();
        assert_eq!((o.intervals, o.scored, o.flagged, o.alerts), (2, 1, 1, 1));
        assert!((o.seconds - 7.0).abs() < 1e-9);
        assert_eq!(o.predicted(), Some(0));
    }
}
