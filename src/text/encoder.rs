//! MiniLM sentence encoder in tract: ids → 384-d mean-pooled, L2-normalised embedding. The
//! sequence length is symbolic: the graph is optimised once and run at each text's length.

use super::tokenize::MAX_TOKENS;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

/// Size of the sentence embedding.
pub const EMBEDDING_DIM: usize = 384;

/// The loaded encoder with one reusable run state.
pub struct TextEncoder {
    path: PathBuf,
    state: TypedSimpleState,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextEncoder({})", self.path.display())
    }
}

impl TextEncoder {
    /// Loads `path` (inputs `input_ids`, `attention_mask`: int64 [1, S]), optimises it for a
    /// symbolic S and prepares a run state. Missing or unloadable file → [`Error::Model`].
    pub fn load(path: &Path) -> Result<TextEncoder> {
        let facts = |model: &InferenceModel| {
            let s = model.symbols.sym("S");
            let fact = || -> InferenceFact { i64::fact([TDim::from(1i64), TDim::from(s.clone())]).into() };
            vec![fact(), fact()]
        };
        let (state, _) = crate::model::load_plan(path, facts, "tools/text/export_minilm.py")?;
        Ok(TextEncoder { path: path.to_path_buf(), state })
    }

    /// Embeds one id sequence (`[CLS] … [SEP]`, 1 to 256 ids); returns 384 floats of unit length.
    pub fn embed(&mut self, ids: &[i64]) -> Result<Vec<f32>> {
        if ids.is_empty() || ids.len() > MAX_TOKENS {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!("{} token ids given; allowed 1 to {MAX_TOKENS}", ids.len()),
            });
        }
        let bad = |m: String| Error::Model { path: self.path.clone(), message: m };
        let n = ids.len();
        let input = Tensor::from_shape(&[1, n], ids).map_err(|e| bad(format!("bad input: {e:#}")))?;
        let mask =
            Tensor::from_shape(&[1, n], &vec![1i64; n]).map_err(|e| bad(format!("bad input: {e:#}")))?;
        let out = self
            .state
            .run(tvec![input.into(), mask.into()])
            .map_err(|e| bad(format!("inference failed on {n} tokens: {e:#}")))?;
        let first = out.first().ok_or_else(|| bad("model has no output".into()))?;
        let v = first
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(|s| s.to_vec()))
            .map_err(|e| bad(format!("output is not f32: {e:#}")))?;
        if v.len() != EMBEDDING_DIM {
            return Err(bad(format!("output has {} values, expected {EMBEDDING_DIM}", v.len())));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("non-finite embedding for {n} tokens")));
        }
        Ok(v)
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
