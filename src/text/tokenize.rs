//! MiniLM tokenizer: the model's HF `tokenizer.json` (BERT uncased WordPiece) through the Rust
//! `tokenizers` crate, producing `[CLS] … [SEP]` ids capped at [`MAX_TOKENS`].

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Longest id sequence fed to the encoder, both special tokens included (the file's truncation).
pub const MAX_TOKENS: usize = 256;

/// Id of `[CLS]` in the MiniLM vocabulary.
pub const CLS_ID: i64 = 101;

/// Id of `[SEP]` in the MiniLM vocabulary.
pub const SEP_ID: i64 = 102;

/// A loaded tokenizer file.
pub struct TextTokenizer {
    path: PathBuf,
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTokenizer({})", self.path.display())
    }
}

impl TextTokenizer {
    /// Loads an HF `tokenizer.json`; a missing or malformed file is an [`Error::Model`] naming it.
    pub fn load(path: &Path) -> Result<TextTokenizer> {
        if !path.is_file() {
            return Err(Error::Model { path: path.to_path_buf(), message: "file is missing".into() });
        }
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            message: format!(
                "not a loadable HF tokenizer.json ({e}); regenerate it with tools/text/export_minilm.py"
            ),
        })?;
        Ok(TextTokenizer { path: path.to_path_buf(), inner })
    }

    /// Token ids of `text`: `[CLS]`, word pieces, `[SEP]`, at most [`MAX_TOKENS`] (right-truncated).
    /// Empty text gives `[CLS] [SEP]`.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let enc = self.inner.encode(text, true).map_err(|e| Error::Model {
            path: self.path.clone(),
            message: format!("cannot tokenize a {}-byte text: {e}", text.len()),
        })?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&i| i as i64).collect();
        // The file truncates to 256 already; this guards a replaced file without truncation,
        // whose longer output would overrun the encoder's position table.
        if ids.len() > MAX_TOKENS {
            ids.truncate(MAX_TOKENS - 1);
            ids.push(SEP_ID);
        }
        if ids.len() < 2 || ids[0] != CLS_ID || ids[ids.len() - 1] != SEP_ID {
            return Err(Error::Model {
                path: self.path.clone(),
                message: "tokenizer does not add [CLS] (101) … [SEP] (102); expected the MiniLM tokenizer"
                    .into(),
            });
        }
        Ok(ids)
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
