//! JSON-lines sink: one interval (or alert) message per line, to standard output or a file. A
//! file can be size-capped with rotation (`path.1` newest … `path.N` oldest), so a daemon that
//! runs for months never fills its disk with its own log.

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
    max_bytes: u64,
    keep: u32,
    bytes: u64,
    rotations: u64,
    tolerant: bool,
}

impl JsonlSink {
    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        JsonlSink {
            name: "stdout".into(),
            target: Target::Stdout(std::io::stdout()),
            lines: 0,
            max_bytes: u64::MAX,
            keep: 0,
            bytes: 0,
            rotations: 0,
            tolerant: false,
        }
    }

    /// A sink writing to `path`, appending (`append`) or truncating it; `fsync` after every line.
    pub fn file(path: &Path, fsync: bool, append: bool) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = open(path, append)?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonlSink {
            name: "jsonl".into(),
            target: Target::File { path: path.to_path_buf(), file: BufWriter::new(file), fsync },
            lines: 0,
            max_bytes: u64::MAX,
            keep: 0,
            bytes,
            rotations: 0,
            tolerant: false,
        })
    }

    /// Caps the file at `max_bytes`: a line that would pass it first rotates the file to
    /// `path.1` (shifting older ones up to `path.<keep>`, deleting the oldest); `keep` = 0
    /// truncates instead.
    pub fn rotating(mut self, max_bytes: u64, keep: u32) -> Self {
        self.max_bytes = max_bytes;
        self.keep = keep;
        self
    }

    /// A write failure (e.g. a full disk) only degrades the session instead of ending it.
    pub fn tolerant(mut self) -> Self {
        self.tolerant = true;
        self
    }

    /// Times the file was rotated.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let Target::File { path, file, .. } = &mut self.target else { return Ok(()) };
        file.flush()?;
        let numbered = |k: u32| {
            let mut p = path.as_os_str().to_owned();
            p.push(format!(".{k}"));
            PathBuf::from(p)
        };
        if self.keep > 0 {
            let _ = std::fs::remove_file(numbered(self.keep));
            for k in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(k), numbered(k + 1));
            }
            std::fs::rename(&*path, numbered(1))?;
        }
        let fresh = OpenOptions::new().create(true).write(true).truncate(true).open(&*path)?;
        *file = BufWriter::new(fresh);
        self.bytes = 0;
        self.rotations += 1;
        log::info!("jsonl: {} reached {} bytes; rotated", path.display(), self.max_bytes);
        Ok(())
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
        if self.bytes > 0 && self.bytes + line.len() as u64 > self.max_bytes {
            self.rotate().map_err(|e| self.error(e))?;
        }
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
        self.bytes += line.len() as u64;
        Ok(())
    }

    fn fatal_on_error(&self) -> bool {
        !self.tolerant
    }

    fn flush(&mut self) -> Result<()> {
        let res = match &mut self.target {
            Target::Stdout(out) => out.flush(),
            Target::File { file, .. } => file.flush().and_then(|_| file.get_ref().sync_all()),
        };
        res.map_err(|e| self.error(e))
    }
}

fn open(path: &Path, append: bool) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| Error::sink("jsonl", format!("cannot open {}: {e}", path.display())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AlertMessage, Output};

    fn alert(i: u64) -> Output {
        let mut a: AlertMessage = serde_json::from_str(
            r#"{"schema":"affectd.alert/1","device_id":"d","session_id":"s","kind":"unexpressed_dissatisfaction","intervals":[0],"start_s":0,"end_s":5,"wall":"2026-01-01T00:00:00Z","probability":0.9,"threshold":0.5,"sentiment":null,"face":null,"words":null,"transcript":null}"#,
        )
        .unwrap();
        a.intervals = vec![i];
        Output::Alert(Box::new(a))
    }

    #[test]
    fn the_file_is_capped_and_rotated_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let mut s = JsonlSink::file(&p, false, true).unwrap().rotating(1000, 2);
        for i in 0..40 {
            s.publish(&alert(i)).unwrap();
        }
        s.flush().unwrap();
        assert!(s.rotations() >= 3, "{}", s.rotations());
        for f in ["log.jsonl", "log.jsonl.1", "log.jsonl.2"] {
            let len = std::fs::metadata(dir.path().join(f)).unwrap().len();
            assert!(len > 0 && len <= 1000, "{f}: {len}");
        }
        assert!(!dir.path().join("log.jsonl.3").exists());
        // The newest message is in the live file; no line is ever split across files.
        let live = std::fs::read_to_string(&p).unwrap();
        assert!(live.trim_end().lines().last().unwrap().contains("\"intervals\":[39]"));
        for f in ["log.jsonl", "log.jsonl.1", "log.jsonl.2"] {
            for l in std::fs::read_to_string(dir.path().join(f)).unwrap().lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
    }

    #[test]
    fn a_full_disk_is_an_error_the_daemon_survives() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let mut s = JsonlSink::file(Path::new("/dev/full"), false, true).unwrap().tolerant();
        let e = s.publish(&alert(0)).unwrap_err().to_string();
        assert!(e.contains("/dev/full") && e.contains("No space left"), "{e}");
        assert!(!s.fatal_on_error());
        assert!(JsonlSink::stdout().fatal_on_error());
    }
}
