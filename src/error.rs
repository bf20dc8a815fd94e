//! The library's error type: every variant names the file, key or value at fault and what is allowed.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in affectd, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file could not be read, parsed or validated.
    #[error("{path}: {message}")]
    Config {
        /// The config file (or `<command line>` for flags).
        path: PathBuf,
        /// What is wrong: names the key, the value and what is allowed.
        message: String,
    },
    /// An input file (recording, WAV, Y4M) is missing, unreadable or malformed.
    #[error("{path}: {message}")]
    Input {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A model file is missing, corrupt, or does not match its manifest entry.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A required external program (ffmpeg, ffprobe) is not installed.
    #[error("`{tool}` was not found on PATH: {hint}")]
    ToolMissing {
        /// The program name.
        tool: String,
        /// How to install it.
        hint: String,
    },
    /// A sink could not write or deliver a message.
    #[error("sink {sink}: {message}")]
    Sink {
        /// The sink's name (`jsonl`, `stdout`, `mqtt`).
        sink: String,
        /// What failed.
        message: String,
    },
    /// A pipeline stage failed or a thread panicked.
    #[error("stage {stage}: {message}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// What failed.
        message: String,
    },
    /// An I/O error with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file or device.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Builds an [`Error::Input`] for `path`.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input { path: path.into(), message: message.into() }
    }

    /// Builds an [`Error::Config`] for `path`.
    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), message: message.into() }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Builds an [`Error::Stage`] for `stage`.
    pub fn stage(stage: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Stage { stage: stage.into(), message: message.into() }
    }

    /// Builds an [`Error::Sink`] for `sink`.
    pub fn sink(sink: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Sink { sink: sink.into(), message: message.into() }
    }

    /// Process exit code for this error: 2 for configuration/usage problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } => 2,
            _ => 1,
        }
    }
}
