//! Model files: the manifest (`models/manifest.toml`) and sha256 verification. Every model the
//! binary loads has a manifest entry saying where it came from, its licence and its accuracy.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

mod direct;
mod ops;

/// The file name of the manifest inside the models folder.
pub const MANIFEST: &str = "manifest.toml";

/// One model file's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Role of the model (`face_detection`, `expression`, `asr`, `text_encoder`, ...).
    pub name: String,
    /// File name inside the models folder.
    pub file: String,
    /// Expected sha256 of the file, hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub bytes: u64,
    /// Source package and version, and the path inside it.
    pub source: String,
    /// Licence of the weights.
    pub licence: String,
    /// How the file was produced (script and tool versions).
    pub conversion: String,
    /// Measured accuracy, in words.
    #[serde(default)]
    pub accuracy: String,
    /// Every other key (inputs, outputs, labels, temperature, ...).
    #[serde(flatten)]
    pub extra: toml::Table,
}

impl ModelEntry {
    /// The version string published in messages: `file@` and the first 12 hex digits of its sha256.
    pub fn version(&self) -> String {
        format!("{}@{}", self.file, &self.sha256[..12.min(self.sha256.len())])
    }

    /// The entry's `labels` list (strings only; empty when absent).
    pub fn labels(&self) -> Vec<String> {
        self.extra
            .get("labels")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// Checks that the entry's `labels` are exactly `expected`; the error names the model file
    /// at `path`, the entry and both lists.
    pub fn require_labels(&self, path: &Path, expected: &[&str]) -> Result<()> {
        if self.labels().iter().map(String::as_str).eq(expected.iter().copied()) {
            return Ok(());
        }
        Err(Error::Model {
            path: path.to_path_buf(),
            message: format!(
                "manifest entry `{}` has labels {:?}; allowed exactly {:?}",
                self.name,
                self.extra.get("labels").map(|v| v.to_string()),
                expected
            ),
        })
    }
}

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Every model entry.
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// Result of checking one file against its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// The entry checked.
    pub entry: ModelEntry,
    /// Full path of the file.
    pub path: PathBuf,
    /// Size on disk, if the file exists.
    pub actual_bytes: Option<u64>,
    /// sha256 on disk, if the file exists.
    pub actual_sha256: Option<String>,
}

impl Verification {
    /// True when the file exists with the expected size and hash.
    pub fn ok(&self) -> bool {
        self.actual_bytes == Some(self.entry.bytes)
            && self.actual_sha256.as_deref() == Some(self.entry.sha256.as_str())
    }

    /// What is wrong, in words (empty when ok).
    pub fn problem(&self) -> String {
        match (&self.actual_bytes, &self.actual_sha256) {
            (None, _) | (_, None) => "file is missing".into(),
            (Some(b), _) if *b != self.entry.bytes => {
                format!("size {b} bytes, manifest says {} (truncated or replaced?)", self.entry.bytes)
            }
            (_, Some(h)) if *h != self.entry.sha256 => {
                format!("sha256 {h}, manifest says {} (corrupt or replaced)", self.entry.sha256)
            }
            _ => String::new(),
        }
    }
}

impl Manifest {
    /// Reads `dir/manifest.toml`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Model {
            path: path.clone(),
            message: format!("cannot read manifest: {e}"),
        })?;
        toml::from_str(&text)
            .map_err(|e| Error::Model { path, message: format!("invalid manifest: {}", e.message()) })
    }

    /// The entry for model `name`.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Hashes every file and compares it with its entry.
    pub fn verify(&self, dir: &Path) -> Vec<Verification> {
        self.models
            .iter()
            .map(|entry| {
                let path = dir.join(&entry.file);
                let (actual_bytes, actual_sha256) = match sha256_file(&path) {
                    Ok((b, h)) => (Some(b), Some(h)),
                    Err(_) => (None, None),
                };
                Verification { entry: entry.clone(), path, actual_bytes, actual_sha256 }
            })
            .collect()
    }
}

/// Size and hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, hex))
}

/// Locates model `name` in `dir`, checking it against the manifest when `verify` is set.
/// The error says which file is missing or corrupt and how to regenerate it.
pub fn locate(dir: &Path, name: &str, verify: bool) -> Result<(PathBuf, ModelEntry)> {
    let manifest = Manifest::load(dir)?;
    let entry = manifest.get(name).cloned().ok_or_else(|| Error::Model {
        path: dir.join(MANIFEST),
        message: format!(
            "no entry named `{name}` (entries: {})",
            manifest.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })?;
    let path = dir.join(&entry.file);
    if !path.is_file() {
        return Err(Error::Model {
            path,
            message: format!("file is missing; regenerate it with {}", entry.conversion),
        });
    }
    if verify {
        let v = Manifest { models: vec![entry.clone()] }.verify(dir).remove(0);
        if !v.ok() {
            return Err(Error::Model { path, message: v.problem() });
        }
    }
    Ok((path, entry))
}

/// A loaded, optimised tract model with one reusable run state (one per thread), and the output
/// shapes tract inferred at load (checked against what the caller expects with
/// [`OnnxModel::expect_outputs`], so a wrong model file fails at load, not with an index panic).
pub struct OnnxModel {
    path: PathBuf,
    state: tract_onnx::prelude::TypedSimpleState,
    outputs: Vec<Option<Vec<usize>>>,
    /// The input tensor of [`OnnxModel::run_f32_filled`], kept between runs (tract drops its
    /// reference at the end of a run, so it is refilled in place).
    input: Option<std::sync::Arc<tract_onnx::prelude::Tensor>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OnnxModel({})", self.path.display())
    }
}

/// tract's phases for one file: ONNX model with the input facts `inputs` gives (from the loaded
/// model, whose symbol scope they must use) → optimised → runnable → run state; with the output
/// shapes (concrete ones) of the optimised model. Every failure is an error naming the file and
/// `hint` (how to regenerate it).
pub fn load_plan(
    path: &Path,
    inputs: impl FnOnce(&tract_onnx::prelude::InferenceModel) -> Vec<tract_onnx::prelude::InferenceFact>,
    hint: &str,
) -> Result<(tract_onnx::prelude::TypedSimpleState, Vec<Option<Vec<usize>>>)> {
    use tract_onnx::prelude::*;
    let err = |stage: &str, e: TractError| Error::Model {
        path: path.to_path_buf(),
        message: format!("{stage}: {e:#} (regenerate it with {hint})"),
    };
    if !path.is_file() {
        return Err(Error::Model { path: path.to_path_buf(), message: "file is missing".into() });
    }
    let mut onnx = tract_onnx::onnx();
    // FaceMesh's PRelu layers as one in-place pass (see `Prelu` below; other slopes fall back).
    onnx.op_register.insert("PRelu", ops::prelu_builder);
    let mut model = onnx
        .with_ignore_value_info(true)
        .model_for_path(path)
        .map_err(|e| err("not a loadable ONNX model", e))?;
    for (i, fact) in inputs(&model).into_iter().enumerate() {
        model = model.with_input_fact(i, fact).map_err(|e| err("input shape", e))?;
    }
    // tract's into_optimized (typed → decluttered → optimised), with affectd's max pool,
    // first-layer convolution (see `ops`) and direct convolutions (see `direct`) put in between.
    let mut typed = model.into_typed().map_err(|e| err("cannot optimise", e))?;
    typed.declutter().map_err(|e| err("cannot optimise", e))?;
    ops::fast_max_pools(&mut typed).map_err(|e| err("cannot optimise", e))?;
    ops::direct_nhwc_convs(&mut typed).map_err(|e| err("cannot optimise", e))?;
    direct::direct_convs(&mut typed).map_err(|e| err("cannot optimise", e))?;
    typed.optimize().map_err(|e| err("cannot optimise", e))?;
    let outputs = (0..typed.outputs.len())
        .map(|i| typed.output_fact(i).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec())))
        .collect();
    let plan = typed.into_runnable().map_err(|e| err("cannot optimise", e))?;
    let state = plan.spawn().map_err(|e| err("cannot prepare", e))?;
    Ok((state, outputs))
}

impl OnnxModel {
    /// Loads `path` with fixed float32 input shapes, optimises it and prepares a run state.
    /// Fixed shapes matter: a symbolic batch made models several times slower in tract.
    pub fn load_f32(path: &Path, input_shapes: &[&[usize]]) -> Result<OnnxModel> {
        use tract_onnx::prelude::*;
        let facts = |_: &InferenceModel| input_shapes.iter().map(|s| f32::fact(*s).into()).collect();
        let (state, outputs) = load_plan(path, facts, "the script named in models/manifest.toml")?;
        Ok(OnnxModel { path: path.to_path_buf(), state, outputs, input: None })
    }

    /// Checks the model's outputs against the shapes the caller reads (`None` = any shape):
    /// too few outputs or another shape is an error naming the file, at load.
    pub fn expect_outputs(self, shapes: &[Option<&[usize]>]) -> Result<OnnxModel> {
        for (i, want) in shapes.iter().enumerate() {
            let got = self.outputs.get(i);
            let ok = match (want, got) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(w), Some(g)) => g.as_deref() == Some(*w),
            };
            if !ok {
                return Err(Error::Model {
                    path: self.path.clone(),
                    message: format!(
                        "output {i}: shape {:?}, expected {:?} (not the model this stage needs; regenerate it with the script named in models/manifest.toml)",
                        got.map(|g| g.as_ref().map_or("symbolic".to_string(), |g| format!("{g:?}"))),
                        want
                    ),
                });
            }
        }
        Ok(self)
    }

    /// Runs the model on float32 inputs (shape, data); returns every output flattened.
    pub fn run_f32(&mut self, inputs: Vec<(&[usize], Vec<f32>)>) -> Result<Vec<Vec<f32>>> {
        use tract_onnx::prelude::*;
        let mut tv: TVec<TValue> = tvec![];
        for (shape, data) in inputs {
            let t = Tensor::from_shape(shape, &data).map_err(|e| Error::Model {
                path: self.path.clone(),
                message: format!("bad input: {e:#}"),
            })?;
            tv.push(t.into());
        }
        self.run_values(tv)
    }

    /// Runs a one-input model on a float32 tensor of `shape` that `fill` writes in place: the
    /// tensor is kept and reused from run to run (no allocation or copy of the input per call).
    /// Returns every output flattened.
    pub fn run_f32_filled(
        &mut self,
        shape: &[usize],
        fill: impl FnOnce(&mut [f32]),
    ) -> Result<Vec<Vec<f32>>> {
        use std::sync::Arc;
        use tract_onnx::prelude::*;
        let path = &self.path;
        let bad = |e: TractError| Error::Model { path: path.clone(), message: format!("bad input: {e:#}") };
        // Reusable when tract holds no reference to it any more (it drops it after each run).
        let reusable = self.input.as_mut().is_some_and(|t| t.shape() == shape && Arc::get_mut(t).is_some());
        if !reusable {
            self.input = Some(Arc::new(Tensor::zero::<f32>(shape).map_err(bad)?));
        }
        let tensor = self.input.as_mut().and_then(Arc::get_mut).expect("input tensor held only here");
        let mut view = tensor.try_as_plain_ram_mut().map_err(bad)?;
        fill(view.as_slice_mut::<f32>().map_err(bad)?);
        let input = self.input.clone().expect("input tensor").into_tvalue();
        self.run_values(tvec![input])
    }

    fn run_values(
        &mut self,
        inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
    ) -> Result<Vec<Vec<f32>>> {
        let out = self.state.run(inputs).map_err(|e| Error::Model {
            path: self.path.clone(),
            message: format!("inference failed: {e:#}"),
        })?;
        out.iter()
            .map(|t| {
                t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec())).map_err(|e| {
                    Error::Model { path: self.path.clone(), message: format!("output is not f32: {e:#}") }
                })
            })
            .collect()
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_whose_outputs_differ_from_what_the_stage_reads_fails_at_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/voice-emotion.onnx");
        let m = OnnxModel::load_f32(&path, &[&[1, 768]]).unwrap();
        let e = m.expect_outputs(&[Some(&[1, 3])]).unwrap_err().to_string();
        assert!(e.contains("voice-emotion.onnx") && e.contains("[1, 8]") && e.contains("[1, 3]"), "{e}");
        let m = OnnxModel::load_f32(&path, &[&[1, 768]]).unwrap();
        assert!(m.expect_outputs(&[Some(&[1, 8]), None]).is_err(), "a second output is expected but absent");
        let m = OnnxModel::load_f32(&path, &[&[1, 768]]).unwrap();
        assert!(m.expect_outputs(&[Some(&[1, 8])]).is_ok());
    }

    fn write_manifest(dir: &Path, bytes: u64, sha: &str) {
        let text = format!(
            "[[model]]\nname = \"toy\"\nfile = \"toy.bin\"\nsha256 = \"{sha}\"\nbytes = {bytes}\nsource = \"test\"\nlicence = \"MIT\"\nconversion = \"tools/none\"\nlabels = [\"a\", \"b\"]\n"
        );
        std::fs::write(dir.join(MANIFEST), text).unwrap();
    }

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let (n, h) = sha256_file(&p).unwrap();
        assert_eq!(n, 3);
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn verify_detects_missing_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        write_manifest(dir.path(), 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let e = locate(dir.path(), "toy", true).unwrap_err().to_string();
        assert!(e.contains("toy.bin") && e.contains("missing"), "{e}");
        std::fs::write(dir.path().join("toy.bin"), b"abd").unwrap();
        let e = locate(dir.path(), "toy", true).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        std::fs::write(dir.path().join("toy.bin"), b"abc").unwrap();
        let (p, entry) = locate(dir.path(), "toy", true).unwrap();
        assert!(p.ends_with("toy.bin"));
        assert_eq!(entry.extra["labels"].as_array().unwrap().len(), 2);
        let e = locate(dir.path(), "other", true).unwrap_err().to_string();
        assert!(e.contains("no entry named `other`") && e.contains("toy"), "{e}");
    }
}
