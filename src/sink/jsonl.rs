//! JSON-lines sink: one interval (or alert) message per line, to standard output or a file.

use super::Sink;
use crate::error::{Error, Result};
use crate::message::Output;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

enum Target {
    Stdout(std::io::Stdout),
    File { path: PathBuf, file: BufWriter<File>, fsync: bool },
}

/// Writes interval messages as JSON lines.
pub struct JsonlSink {
    name: String,
    target: Target,
    lines: u64,
}

impl JsonlSink {
    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        JsonlSink { name: "stdout".into(), target: Target::Stdout(std::io::stdout()), lines: 0 }
    }

    /// A sink writing to `path`, appending (`append`) or truncating it; `fsync` after every line.
    pub fn file(path: &Path, fsync: bool, append: bool) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::sink("jsonl", format!("cannot open {}: {e}", path.display())))?;
        Ok(JsonlSink {
            name: "jsonl".into(),
            target: Target::File { path: path.to_path_buf(), file: BufWriter::new(file), fsync },
            lines: 0,
        })
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish(&mut self, msg: &Output) -> Result<()> {
        let line = match msg {
            Output::Interval(report) => serde_json::to_string(report),
            Output::Alert(alert) => serde_json::to_string(alert),
            Output::Status(_) | Output::Metrics(_) => return Ok(()),
        };
        let mut line = line.map_err(|e| Error::sink(&self.name, e.to_string()))?;
        line.push('\n');
        let res = match &mut self.target {
            Target::Stdout(out) => {
                let mut lock = out.lock();
                lock.write_all(line.as_bytes()).and_then(|_| lock.flush())
            }
            Target::File { file, fsync, .. } => {
                // Always hand the line to the OS (a crash of this process loses nothing);
                // fsync additionally survives a power cut.
                let r = file.write_all(line.as_bytes()).and_then(|_| file.flush());
                if *fsync {
                    r.and_then(|_| file.get_ref().sync_data())
                } else {
                    r
                }
            }
        };
        res.map_err(|e| self.error(e))?;
        self.lines += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let res = match &mut self.target {
            Target::Stdout(out) => out.flush(),
            Target::File { file, .. } => file.flush().and_then(|_| file.get_ref().sync_all()),
        };
        res.map_err(|e| self.error(e))
    }
}

impl JsonlSink {
    fn error(&self, e: std::io::Error) -> Error {
        match &self.target {
            Target::Stdout(_) => Error::sink(&self.name, format!("cannot write to standard output: {e}")),
            Target::File { path, .. } => {
                Error::sink(&self.name, format!("cannot write {}: {e}", path.display()))
            }
        }
    }
}
