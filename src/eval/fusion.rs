//! `affectd eval fusion --pairs FILE.csv [--per-modality]`: runs the real stages on a pairs file
//! (header `faces,text,wav,label,incongruent`, docs/fusion.md) and prints sentiment accuracy,
//! macro-F1, per-class recall and incongruence F1; last line
//! `accuracy=… macro_f1=… incongruence_f1=… n=N` for the attention head. `--per-modality` adds
//! the baselines: the head fed one modality only, early fusion, late fusion.
//! `--dump-features FILE` writes each row's stage outputs as JSON lines (the training input of
//! `tools/fusion/train.py`), and needs no fusion model. A row's `wav` goes through the real
//! speech path (whisper.cpp, encoder features) and the voice head: one voice token.

use super::metrics::Confusion;
use super::pairs::SENTIMENTS;
use crate::audio::asr::{Asr, AsrParams};
use crate::audio::vad::SpeechSegment;
use crate::audio::voice::VoiceHead;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fusion::head::{EarlyFusion, Fused, FusionHead, EARLY, HEAD};
use crate::fusion::tokens::{face_quality, FaceToken, IntervalTokens, Modality, TextToken, VoiceToken};
use crate::message::Frame;
use crate::model;
use crate::text::TextModel;
use crate::vision::{VisionModels, VisionStage};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Images no larger than this on both sides are taken as tight face crops (FER-style); larger
/// ones go through detection and landmarks first.
pub const CROP_MAX_SIDE: usize = 96;

/// One row of a pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    /// Line in the CSV (for messages).
    pub line: u64,
    /// Face images, resolved (empty: no face in view).
    pub faces: Vec<PathBuf>,
    /// What was said (empty: nobody spoke).
    pub text: String,
    /// Speech file for the voice stage, resolved, when given.
    pub wav: Option<PathBuf>,
    /// Label index into [`SENTIMENTS`].
    pub label: usize,
    /// Unexpressed dissatisfaction.
    pub incongruent: bool,
}

/// Reads a pairs file; relative paths are relative to its folder. Errors name the file, the line
/// and the column.
pub fn read_pairs(path: &Path) -> Result<Vec<PairRow>> {
    let base = path.parent().unwrap_or(Path::new("."));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file);
    let header =
        rdr.headers().map_err(|e| Error::input(path, format!("line 1: cannot read the header: {e}")))?;
    let cols: Vec<&str> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}')).collect();
    const HEADER: [&str; 5] = ["faces", "text", "wav", "label", "incongruent"];
    if cols != HEADER {
        return Err(Error::input(
            path,
            format!("line 1: header is `{}`; allowed exactly `{}`", cols.join(","), HEADER.join(",")),
        ));
    }
    let resolve = |p: &str| {
        let p = Path::new(p.trim());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            Error::input(path, format!("line {line}: not a 5-column CSV row ({e})"))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let bad = |m: String| Error::input(path, format!("line {line}: {m}"));
        let faces: Vec<PathBuf> =
            rec[0].split(';').map(str::trim).filter(|s| !s.is_empty()).map(resolve).collect();
        for f in &faces {
            if !f.is_file() {
                return Err(bad(format!("column `faces`: image {} does not exist", f.display())));
            }
        }
        let wav = (!rec[2].trim().is_empty()).then(|| resolve(&rec[2]));
        if let Some(w) = &wav {
            if !w.is_file() {
                return Err(bad(format!("column `wav`: {} does not exist", w.display())));
            }
        }
        let label =
            SENTIMENTS.iter().position(|l| l.eq_ignore_ascii_case(rec[3].trim())).ok_or_else(|| {
                bad(format!(
                    "column `label`: `{}` is not allowed (allowed: {})",
                    &rec[3],
                    SENTIMENTS.join(", ")
                ))
            })?;
        let incongruent = match rec[4].trim() {
            "0" => false,
            "1" => true,
            other => {
                return Err(bad(format!("column `incongruent`: `{other}` is not allowed (allowed: 0, 1)")))
            }
        };
        let text = rec[1].trim().to_string();
        if faces.is_empty() && text.is_empty() && wav.is_none() {
            return Err(bad("no faces, no text and no wav: nothing to fuse".into()));
        }
        out.push(PairRow { line, faces, text, wav, label, incongruent });
    }
    if out.is_empty() {
        return Err(Error::input(path, "no rows after the header"));
    }
    Ok(out)
}

/// Runs the vision and text stages on pairs, caching by image path and by text.
pub struct Extractor {
    vision: VisionStage,
    text: TextModel,
    faces: HashMap<PathBuf, Option<(Vec<f32>, f32)>>,
    texts: HashMap<String, ([f32; 3], Vec<f32>)>,
    voice: Option<(Asr, VoiceHead)>,
    voices: HashMap<PathBuf, Option<VoiceToken>>,
    /// Pooled encoder features by the recording's last two path components (`Actor_01/x.flac`),
    /// from `affectd eval voice --dump-features` (skips whisper; the head still runs in tract).
    voice_features: HashMap<String, Vec<f32>>,
    models_dir: PathBuf,
    verify: bool,
    /// Images in which no face was found.
    pub faceless: u64,
    /// Recordings in which no speech was recognised.
    pub voiceless: u64,
}

impl Extractor {
    /// Loads the vision and text models of `cfg`.
    pub fn load(cfg: &Config) -> Result<Extractor> {
        Ok(Extractor {
            vision: VisionStage::with_models(VisionModels::load(&cfg.models, &cfg.vision)?),
            text: TextModel::load(&cfg.models)?,
            faces: HashMap::new(),
            texts: HashMap::new(),
            voice: None,
            voices: HashMap::new(),
            voice_features: HashMap::new(),
            models_dir: cfg.models.dir.clone(),
            verify: cfg.models.verify,
            faceless: 0,
            voiceless: 0,
        })
    }

    /// Reads pooled encoder features dumped by `affectd eval voice --dump-features` (JSON lines
    /// with `path` and `features`), used instead of running whisper for those recordings.
    pub fn load_voice_features(&mut self, path: &Path) -> Result<usize> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::input(path, format!("line {}: not JSON ({e})", i + 1)))?;
            let (Some(p), Some(f)) = (v["path"].as_str(), v["features"].as_array()) else {
                return Err(Error::input(path, format!("line {}: needs `path` and `features`", i + 1)));
            };
            let f: Vec<f32> = f.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect();
            self.voice_features.insert(tail2(Path::new(p)), f);
        }
        Ok(self.voice_features.len())
    }

    /// The voice token of a recording (whisper.cpp encoder features → voice head), loading the
    /// speech models on first use; `None` when no speech is recognised.
    pub fn voice(&mut self, path: &Path) -> Result<Option<VoiceToken>> {
        if let Some(v) = self.voices.get(path) {
            return Ok(v.clone());
        }
        if let Some(f) = self.voice_features.get(&tail2(path)).cloned() {
            if self.voice.is_none() {
                let (asr_path, _) = model::locate(&self.models_dir, "asr", self.verify)?;
                let asr = Asr::load(&asr_path, AsrParams { encoder_features: true, ..AsrParams::default() })?;
                self.voice = Some((asr, VoiceHead::load_from(&self.models_dir, self.verify)?));
            }
            let (_, head) = self.voice.as_mut().expect("loaded above");
            let est = head.predict(&f)?;
            let secs = crate::source::open_audio(path)?.duration().unwrap_or(1.5);
            let tok =
                Some(VoiceToken { probs: est.probs, quality: (secs / 1.5).clamp(0.1, 1.0) as f32, t: 0.5 });
            self.voices.insert(path.to_path_buf(), tok.clone());
            return Ok(tok);
        }
        if self.voice.is_none() {
            let (asr_path, _) = model::locate(&self.models_dir, "asr", self.verify)?;
            let asr = Asr::load(&asr_path, AsrParams { encoder_features: true, ..AsrParams::default() })?;
            self.voice = Some((asr, VoiceHead::load_from(&self.models_dir, self.verify)?));
        }
        let (asr, head) = self.voice.as_mut().expect("loaded above");
        let samples = super::voice::read_audio_16k(path)?;
        let end = samples.len() as f64 / 16000.0;
        let seg = SpeechSegment { start: 0.0, end, samples };
        let tok = match asr.transcribe(&seg)?.and_then(|t| t.encoder) {
            Some(pool) => {
                let est = head.predict(&pool.features)?;
                Some(VoiceToken { probs: est.probs, quality: (end / 1.5).clamp(0.1, 1.0) as f32, t: 0.5 })
            }
            None => None,
        };
        if tok.is_none() {
            self.voiceless += 1;
        }
        self.voices.insert(path.to_path_buf(), tok.clone());
        Ok(tok)
    }

    /// Expression labels of the vision models.
    pub fn face_labels(&self) -> Vec<String> {
        self.vision.labels()
    }

    /// Model name → version of every stage model.
    pub fn versions(&self) -> std::collections::BTreeMap<String, String> {
        let mut v = self.vision.versions();
        v.extend(self.text.versions());
        v
    }

    fn face(&mut self, path: &Path) -> Result<Option<(Vec<f32>, f32)>> {
        if let Some(f) = self.faces.get(path) {
            return Ok(f.clone());
        }
        let (w, h, rgb) = super::expression::load_rgb(path)?;
        let found = if w <= CROP_MAX_SIDE && h <= CROP_MAX_SIDE {
            let m = self
                .vision
                .models_mut()
                .ok_or_else(|| Error::stage("eval fusion", "vision models not loaded"))?;
            Some((m.classify_face_crop(&rgb, w, h)?, 1.0))
        } else {
            self.vision.reset_tracking();
            let frame = Frame { seq: 0, t: 0.0, width: w as u32, height: h as u32, duration: 0.1, rgb };
            self.vision.process(&frame)?.face.map(|f| {
                let q = face_quality(f.presence, f.cues.face_size, f.cues.yaw_deg, f.cues.pitch_deg);
                (f.expression, q)
            })
        };
        if found.is_none() {
            self.faceless += 1;
        }
        self.faces.insert(path.to_path_buf(), found.clone());
        Ok(found)
    }

    /// The tokens of one row (faces spread over the interval in file order, words in the middle).
    pub fn tokens(&mut self, row: &PairRow) -> Result<IntervalTokens> {
        let mut toks = IntervalTokens::default();
        let k = row.faces.len();
        for (i, p) in row.faces.iter().enumerate() {
            if let Some((probs, quality)) = self.face(p)? {
                toks.faces.push(FaceToken { probs, quality, t: (i as f32 + 0.5) / k as f32 });
            }
        }
        if !row.text.is_empty() {
            let (probs, embedding) = match self.texts.get(&row.text) {
                Some(t) => t.clone(),
                None => {
                    let s = self.text.analyze(&row.text)?;
                    let v = (s.probs, s.embedding);
                    self.texts.insert(row.text.clone(), v.clone());
                    v
                }
            };
            toks.texts.push(TextToken { probs, embedding, t: 0.5 });
        }
        if let Some(w) = &row.wav {
            if let Some(v) = self.voice(w)? {
                toks.voices.push(v);
            }
        }
        Ok(toks)
    }
}

/// The last two components of a path (`Actor_01/x.flac`): the key of the voice feature cache.
fn tail2(p: &Path) -> String {
    let parts: Vec<String> =
        p.components().rev().take(2).map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// One row's features as a JSON line (the trainer's input).
pub fn feature_line(row: &PairRow, toks: &IntervalTokens) -> String {
    let r = |v: f32| (v as f64 * 1e5).round() / 1e5;
    let faces: Vec<serde_json::Value> = toks
        .faces
        .iter()
        .map(|f| serde_json::json!({"p": f.probs.iter().map(|&v| r(v)).collect::<Vec<_>>(), "q": r(f.quality), "t": r(f.t)}))
        .collect();
    let text = toks.texts.first().map(|t| {
        serde_json::json!({"p": t.probs.iter().map(|&v| r(v)).collect::<Vec<_>>(),
                           "e": t.embedding.iter().map(|&v| r(v)).collect::<Vec<_>>()})
    });
    let voice = toks.voices.first().map(
        |v| serde_json::json!({"p": v.probs.iter().map(|&x| r(x)).collect::<Vec<_>>(), "q": r(v.quality)}),
    );
    serde_json::json!({"line": row.line, "label": row.label, "incongruent": row.incongruent as u8,
                       "faces": faces, "text": text, "voice": voice})
    .to_string()
}

/// Metrics of one model over the pairs.
struct Score {
    name: String,
    conf: Confusion,
    inc: [u64; 4], // tp, fp, fn, tn
}

impl Score {
    fn new(name: &str) -> Score {
        let labels: Vec<String> = SENTIMENTS.iter().map(|s| s.to_string()).collect();
        Score { name: name.into(), conf: Confusion::new(&labels), inc: [0; 4] }
    }

    /// Counts one prediction; no prediction (no usable input) counts as neutral, not incongruent.
    fn add(&mut self, row: &PairRow, fused: Option<&Fused>, threshold: f32) {
        let (pred, flag) = fused.map(|f| (f.label(), f.incongruence >= threshold)).unwrap_or((1, false));
        self.conf.add(row.label, pred);
        let i = match (row.incongruent, flag) {
            (true, true) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (false, false) => 3,
        };
        self.inc[i] += 1;
    }

    fn incongruence_f1(&self) -> f64 {
        let [tp, fp, fneg, _] = self.inc.map(|v| v as f64);
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fneg)
        }
    }

    fn row(&self) -> String {
        let rec: Vec<String> = (0..3).map(|k| format!("{:.3}", self.conf.class(k).1)).collect();
        format!(
            "| {} | {:.4} | {:.4} | {} | {:.4} |",
            self.name,
            self.conf.accuracy(),
            self.conf.macro_f1(),
            rec.join(" | "),
            self.incongruence_f1()
        )
    }
}

/// Runs the evaluation; returns the printed report.
pub fn run(
    pairs: &Path,
    cfg: &Config,
    per_modality: bool,
    dump: Option<&Path>,
    voice_features: Option<&Path>,
) -> Result<String> {
    let rows = read_pairs(pairs)?;
    let mut ex = Extractor::load(cfg)?;
    if let Some(vf) = voice_features {
        ex.load_voice_features(vf)?;
    }
    let labels = ex.face_labels();
    let mut dump_file = match dump {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| Error::io(p, e))?)),
        None => None,
    };
    let load = |name: &str| model::locate(&cfg.models.dir, name, cfg.models.verify);
    let mut head = match (dump, load(HEAD)) {
        (_, Ok((p, e))) => Some(FusionHead::load(&p, &e, Some(&labels))?),
        (Some(_), Err(_)) => None,
        (None, Err(e)) => return Err(e),
    };
    let mut early = match (&head, per_modality) {
        (Some(_), true) => {
            let (p, e) = load(EARLY)?;
            Some(EarlyFusion::load(&p, &e)?)
        }
        _ => None,
    };
    let threshold = cfg.fusion.incongruence_threshold;
    let mut scores: Vec<Score> = [
        "attention head (all modalities)",
        "head, face only",
        "head, text only",
        "head, voice only",
        "head, voice + text (audio-only call)",
        "early fusion",
        "late fusion",
    ]
    .iter()
    .map(|n| Score::new(n))
    .collect();
    let (mut head_calls, mut head_time) = (0u64, 0.0f64);
    let mut attention = [0.0f64; 3];
    let started = Instant::now();
    for (i, row) in rows.iter().enumerate() {
        let toks = ex.tokens(row)?;
        if let Some(f) = dump_file.as_mut() {
            writeln!(f, "{}", feature_line(row, &toks)).map_err(|e| Error::io(dump.unwrap_or(pairs), e))?;
        }
        if i > 0 && i % 2000 == 0 {
            log::info!("eval fusion: {i}/{} rows, {:.0} s", rows.len(), started.elapsed().as_secs_f64());
        }
        let Some(h) = head.as_mut() else { continue };
        let t0 = Instant::now();
        let all = h.predict(&toks)?;
        head_time += t0.elapsed().as_secs_f64();
        head_calls += 1;
        if let Some(f) = &all {
            for (k, m) in Modality::ALL.iter().enumerate() {
                attention[k] += f.attention.get(m).copied().unwrap_or(0.0) as f64;
            }
        }
        scores[0].add(row, all.as_ref(), threshold);
        if per_modality {
            scores[1].add(row, h.predict(&toks.only(Modality::Face))?.as_ref(), threshold);
            scores[2].add(row, h.predict(&toks.only(Modality::Text))?.as_ref(), threshold);
            scores[3].add(row, h.predict(&toks.only(Modality::Voice))?.as_ref(), threshold);
            let audio_only = toks.keep(&[Modality::Voice, Modality::Text]);
            scores[4].add(row, h.predict(&audio_only)?.as_ref(), threshold);
            if let Some(e) = early.as_mut() {
                scores[5].add(row, e.predict(&toks)?.as_ref(), threshold);
            }
            scores[6].add(row, h.late(&toks).as_ref(), threshold);
        }
    }
    if let Some(mut f) = dump_file {
        f.flush().map_err(|e| Error::io(dump.unwrap_or(pairs), e))?;
    }
    let mut out = String::new();
    out.push_str(&format!(
        "pairs: {} ({} rows, {} images without a face found, {} recordings without speech, {:.1} s)\n",
        pairs.display(),
        rows.len(),
        ex.faceless,
        ex.voiceless,
        started.elapsed().as_secs_f64()
    ));
    if let Some(p) = dump {
        out.push_str(&format!("features: {} ({} lines)\n", p.display(), rows.len()));
    }
    if head.is_none() {
        out.push_str("no fusion model in the manifest: features only\n");
        return Ok(out);
    }
    let n = rows.len() as f64;
    out.push_str(&format!(
        "head latency (tract, this build): {:.3} ms mean over {head_calls} calls\nmean attention mass: face {:.3}, voice {:.3}, text {:.3}\nincongruence threshold: {threshold}\n\n",
        head_time * 1000.0 / head_calls.max(1) as f64,
        attention[0] / n,
        attention[1] / n,
        attention[2] / n
    ));
    out.push_str("| model | accuracy | macro-F1 | recall negative | recall neutral | recall positive | incongruence F1 |\n|---|---|---|---|---|---|---|\n");
    let shown = if per_modality { &scores[..] } else { &scores[..1] };
    for s in shown {
        out.push_str(&s.row());
        out.push('\n');
    }
    let s = &scores[0];
    out.push_str(&format!("\nattention head:\n{}\n", s.conf.report()));
    out.push_str(&format!(
        "accuracy={:.4} macro_f1={:.4} incongruence_f1={:.4} n={}\n",
        s.conf.accuracy(),
        s.conf.macro_f1(),
        s.incongruence_f1(),
        s.conf.n()
    ));
    Ok(out)
}
