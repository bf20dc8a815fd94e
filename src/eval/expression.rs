//! `affectd eval expression --data DIR`: DIR has one sub-folder per class (angry, disgust, fear,
//! happy, neutral, sad, surprise) of face images of any size (e.g. FER2013 validation). Each
//! image is taken as the face crop, converted to grey and classified by the configured
//! expression model. Prints per-class figures, the confusion matrix and, last,
//! `accuracy=… macro_f1=… n=N`.

use super::metrics::Confusion;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model;
use crate::vision::align::Roi;
use crate::vision::expression::ExpressionModel;
use std::path::{Path, PathBuf};

/// Decodes an image file to RGB24 (width, height, pixels).
pub fn load_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img =
        image::open(path).map_err(|e| Error::input(path, format!("cannot decode image: {e}")))?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok((w as usize, h as usize, img.into_raw()))
}

/// Runs the evaluation; returns the printed report.
pub fn run(data: &Path, cfg: &Config) -> Result<String> {
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
            let (w, h, rgb) = load_rgb(&f)?;
            let roi = Roi { cx: w as f32 / 2.0, cy: h as f32 / 2.0, size: w.max(h) as f32, rotation: 0.0 };
            let probs = m.classify(&rgb, w, h, &roi)?;
            let pred =
                probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
            conf.add(truth, pred);
        }
    }
    if conf.n() == 0 {
        return Err(Error::input(data, "no images found in the class folders"));
    }
    Ok(format!(
        "model: {} ({})\n{}\naccuracy={:.4} macro_f1={:.4} n={}\n",
        entry.name,
        entry.file,
        conf.report(),
        conf.accuracy(),
        conf.macro_f1(),
        conf.n()
    ))
}
