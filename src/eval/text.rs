//! `affectd eval text --data FILE.csv`: a CSV with header `text,label` (label `negative`,
//! `neutral` or `positive`; RFC 4180 quoting, so texts may hold commas, quotes and newlines).
//! Each text goes through the configured text model. Prints per-class figures, the confusion
//! matrix and, last, `accuracy=… macro_f1=… macro_recall=… n=N`.
//! `tools/text/to_csv.py` writes such files from the shared data sets.

use super::metrics::Confusion;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::text::{TextModel, LABELS};
use std::path::Path;
use std::time::Instant;

/// One labelled example: the text and the index of its label in [`LABELS`].
pub type Example = (String, usize);

/// Reads a `text,label` CSV; a bad header, row or label is an error naming the file and line.
pub fn read_csv(path: &Path) -> Result<Vec<Example>> {
    let (mut rdr, cols) = super::open_csv(path)?;
    if cols != ["text", "label"] {
        return Err(Error::input(
            path,
            format!("line 1: header is `{}`; allowed exactly `text,label`", cols.join(",")),
        ));
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Error::input(path, format!("line {line}: not a 2-column CSV row ({e})"))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let label = rec.get(1).unwrap_or("").trim();
        let idx = LABELS.iter().position(|l| l.eq_ignore_ascii_case(label)).ok_or_else(|| {
            Error::input(
                path,
                format!("line {line}: label `{label}` is not allowed (allowed: {})", LABELS.join(", ")),
            )
        })?;
        out.push((rec.get(0).unwrap_or("").to_string(), idx));
    }
    if out.is_empty() {
        return Err(Error::input(path, "no rows after the `text,label` header"));
    }
    Ok(out)
}

/// Runs the evaluation on the CSV at `data`; returns the printed report.
pub fn run(data: &Path, cfg: &Config) -> Result<String> {
    let examples = read_csv(data)?;
    let mut model = TextModel::load(&cfg.models)?;
    let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
    let mut conf = Confusion::new(&labels);
    let (mut tokens, start) = (0usize, Instant::now());
    for (text, truth) in &examples {
        let s = model.analyze(text)?;
        let pred = LABELS.iter().position(|l| *l == s.label).unwrap_or(1);
        conf.add(*truth, pred);
        tokens += s.tokens;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = examples.len();
    let versions: Vec<String> = model.versions().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!(
        "data: {}\nmodels: {}\ntexts: {n}, tokens mean {:.1}, {:.2} ms/text\n{}\naccuracy={:.4} macro_f1={:.4} macro_recall={:.4} n={}\n",
        data.display(),
        versions.join(" "),
        tokens as f64 / n as f64,
        secs * 1000.0 / n as f64,
        conf.report(),
        conf.accuracy(),
        conf.macro_f1(),
        conf.macro_recall(),
        conf.n()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("t.csv");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn parses_quoted_fields() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "text,label\n\"Hello, world\",positive\n\"She said \"\"no\"\", twice\",negative\nplain,Neutral\n\"multi\nline\",neutral\n",
        );
        let rows = read_csv(&p).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0], ("Hello, world".to_string(), 2));
        assert_eq!(rows[1], ("She said \"no\", twice".to_string(), 0));
        assert_eq!(rows[2].1, 1);
        assert_eq!(rows[3].0, "multi\nline");
    }

    #[test]
    fn bad_header_and_label_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "sentence,label\nx,positive\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("line 1") && e.contains("text,label"), "{e}");
        let p = write(d.path(), "text,label\nfine,positive\nbad,happy\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("line 3") && e.contains("happy"), "{e}");
        assert!(e.contains("negative, neutral, positive"), "{e}");
        let p = write(d.path(), "text,label\nthree,neutral,cols\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let p = write(d.path(), "text,label\n");
        assert!(read_csv(&p).unwrap_err().to_string().contains("no rows"));
    }
}
