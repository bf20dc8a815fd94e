//! `affectd eval expression --data DIR`: DIR has one sub-folder per class (angry, disgust, fear,
//! happy, neutral, sad, surprise) of face images of any size (e.g. FER2013 validation). Each
//! image is taken as the face crop, converted to grey and classified by the configured
//! expression model. Prints per-class figures, the confusion matrix and, last,
//! `accuracy=… macro_f1=… n=N`.
//!
//! With `--ferplus FILE` the truth of each image is its FER+ label instead of its folder: the
//! file stem is the FER2013 row, the row's ten crowd votes are cleaned as in the FER+ reference
//! code (votes of 1 are dropped as noise) and the label is the strict majority (more than half
//! of the remaining votes). Rows without one, or whose majority is contempt, unknown or not a
//! face (no such class in the 7-class model), are left out and counted.

use super::metrics::Confusion;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model;
use crate::vision::align::Roi;
use crate::vision::expression::ExpressionModel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// FER+ vote columns, in file order.
const FERPLUS_COLUMNS: [&str; 10] =
    ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"];
/// The 7-class label each FER+ column stands for (`None`: no such class in the model).
const FERPLUS_AS: [Option<&str>; 10] = [
    Some("neutral"),
    Some("happy"),
    Some("surprise"),
    Some("sad"),
    Some("angry"),
    Some("disgust"),
    Some("fear"),
    None,
    None,
    None,
];

/// The FER+ strict-majority label of one row's ten votes: `Ok(Some(label))`, or `Ok(None)`
/// when there is no strict majority or it is contempt / unknown / not a face.
pub fn ferplus_majority(votes: &[u32; 10]) -> Option<&'static str> {
    let any_above_one = votes.iter().any(|&v| v > 1);
    let cleaned: Vec<u32> = votes.iter().map(|&v| if any_above_one && v <= 1 { 0 } else { v }).collect();
    // In u64: ten votes of up to u32::MAX each (a malformed file) must not overflow the sum.
    let total: u64 = cleaned.iter().map(|&v| u64::from(v)).sum();
    let (top, &max) = cleaned.iter().enumerate().max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))?;
    if total == 0 || 2 * u64::from(max) <= total {
        return None;
    }
    FERPLUS_AS[top]
}

/// Reads a FER+ vote file into row → strict-majority label (rows without one map to `None`).
pub fn read_ferplus(path: &Path) -> Result<HashMap<u64, Option<&'static str>>> {
    let mut rd = csv::Reader::from_path(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    let headers =
        rd.headers().map_err(|e| Error::input(path, format!("cannot read the header: {e}")))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::input(path, format!("no `{name}` column (needed: row, {})", FERPLUS_COLUMNS.join(", ")))
        })
    };
    let row_col = col("row")?;
    let cols: Vec<usize> = FERPLUS_COLUMNS.iter().map(|&c| col(c)).collect::<Result<_>>()?;
    let mut out = HashMap::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::input(path, format!("line {line}: {e}")))?;
        let num = |c: usize, what: &str| -> Result<u64> {
            let v = rec.get(c).unwrap_or("");
            v.trim().parse::<u64>().map_err(|_| {
                Error::input(path, format!("line {line}: `{what}` = `{v}`; allowed: a non-negative integer"))
            })
        };
        let row = num(row_col, "row")?;
        let mut votes = [0u32; 10];
        for (k, &c) in cols.iter().enumerate() {
            votes[k] = num(c, FERPLUS_COLUMNS[k])?.min(u32::MAX as u64) as u32;
        }
        out.insert(row, ferplus_majority(&votes));
    }
    Ok(out)
}

/// Decodes an image file to RGB24 (width, height, pixels).
pub fn load_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img =
        image::open(path).map_err(|e| Error::input(path, format!("cannot decode image: {e}")))?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok((w as usize, h as usize, img.into_raw()))
}

/// Runs the evaluation (truth from the folder names, or from FER+ votes when `ferplus` is given);
/// returns the printed report.
pub fn run(data: &Path, ferplus: Option<&Path>, cfg: &Config) -> Result<String> {
    let fp = ferplus.map(read_ferplus).transpose()?;
    let mut left_out = 0usize;
    let mut classify_s = 0.0f64;
    let (path, entry) = model::locate(&cfg.models.dir, &cfg.vision.expression_model, cfg.models.verify)?;
    let mut m = ExpressionModel::load(&path, &entry)?;
    let labels = m.labels.clone();
    let rd = std::fs::read_dir(data)
        .map_err(|e| Error::input(data, format!("cannot read the data folder: {e}")))?;
    let mut dirs: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(Error::input(
            data,
            format!("no class sub-folders (allowed names: {})", labels.join(", ")),
        ));
    }
    let mut conf = Confusion::new(&labels);
    for dir in dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let truth = labels.iter().position(|l| *l == name).ok_or_else(|| {
            Error::input(
                &dir,
                format!("folder name `{name}` is not a class (allowed: {})", labels.join(", ")),
            )
        })?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::input(&dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let truth = match &fp {
                None => truth,
                Some(map) => {
                    let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    let row: u64 = stem.parse().map_err(|_| {
                        Error::input(
                            &f,
                            "with --ferplus the file name must be the FER2013 row number (e.g. 00042.png)",
                        )
                    })?;
                    let label = map
                        .get(&row)
                        .ok_or_else(|| Error::input(&f, format!("row {row} is not in the FER+ vote file")))?;
                    match label.and_then(|l| labels.iter().position(|x| x == l)) {
                        Some(t) => t,
                        None => {
                            left_out += 1;
                            continue;
                        }
                    }
                }
            };
            let (w, h, rgb) = load_rgb(&f)?;
            let roi = Roi { cx: w as f32 / 2.0, cy: h as f32 / 2.0, size: w.max(h) as f32, rotation: 0.0 };
            let t0 = std::time::Instant::now();
            let probs = m.classify(&rgb, w, h, &roi)?;
            classify_s += t0.elapsed().as_secs_f64();
            let pred =
                probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
            conf.add(truth, pred);
        }
    }
    if conf.n() == 0 {
        return Err(Error::input(data, "no images found in the class folders"));
    }
    let truth_note = match ferplus {
        Some(p) => format!(
            "truth: FER+ strict majority from {} ({left_out} images without a 7-class majority left out)\n",
            p.display()
        ),
        None => "truth: folder names\n".to_string(),
    };
    Ok(format!(
        "model: {} ({})\n{truth_note}crop + model: {:.3} ms per face (mean wall time on this thread)\n{}\naccuracy={:.4} macro_f1={:.4} n={}\n",
        entry.name,
        entry.file,
        classify_s * 1000.0 / conf.n().max(1) as f64,
        conf.report(),
        conf.accuracy(),
        conf.macro_f1(),
        conf.n()
    ))
}

#[cfg(test)]
mod tests {
    use super::ferplus_majority;

    #[test]
    fn huge_vote_counts_do_not_overflow() {
        // Found by the eval_tables fuzzer: a vote of 18446744073709551615 (clamped to u32::MAX).
        let mut votes = [0u32; 10];
        votes[0] = u32::MAX;
        votes[3] = u32::MAX;
        assert_eq!(ferplus_majority(&votes), None);
        votes[3] = 1;
        assert_eq!(ferplus_majority(&votes), Some("neutral"));
    }

    #[test]
    fn ferplus_majority_follows_the_reference_rules() {
        // row 0 of FER+: neutral 4, sadness 1, anger 3, disgust 2 -> single vote dropped, 4 of 9 is no majority
        assert_eq!(ferplus_majority(&[4, 0, 0, 1, 3, 2, 0, 0, 0, 0]), None);
        // neutral 6 of 8 after dropping the single votes
        assert_eq!(ferplus_majority(&[6, 0, 1, 1, 0, 0, 0, 0, 2, 0]), Some("neutral"));
        assert_eq!(ferplus_majority(&[0, 0, 0, 0, 7, 0, 0, 3, 0, 0]), Some("angry"));
        // majority contempt or not-a-face: no 7-class label
        assert_eq!(ferplus_majority(&[2, 0, 0, 0, 0, 0, 0, 8, 0, 0]), None);
        assert_eq!(ferplus_majority(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 10]), None);
        // exactly half is not a strict majority
        assert_eq!(ferplus_majority(&[5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
