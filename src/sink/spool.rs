//! The on-disk spool of messages not yet acknowledged by the broker: one file per message, named
//! by a monotonically increasing id, written to a temporary name, fsynced and renamed into place
//! (so a crash leaves either the whole message or nothing), deleted on PUBACK. A size cap evicts
//! the oldest messages first and counts them. The spool also keeps the device's next interval
//! sequence number, so numbering continues across restarts.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One spooled message.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    /// Spool id (increasing in the order messages were spooled).
    pub id: u64,
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// Counters reported in metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpoolStats {
    /// Messages waiting for acknowledgement.
    pub queued: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Largest number of messages queued at once since start.
    pub max_queued: u64,
    /// Messages evicted (oldest first) because the size cap was reached.
    pub evicted: u64,
    /// Messages acknowledged since start.
    pub acked: u64,
}

/// A bounded on-disk message spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    fsync: bool,
    max_bytes: u64,
    next_id: u64,
    entries: BTreeMap<u64, u64>,
    stats: SpoolStats,
}

const EXT: &str = "msg";
const SEQ_FILE: &str = "next_seq";
/// Largest message id read back from the folder (files with larger ids are ignored).
const MAX_ID: u64 = i64::MAX as u64;

impl Spool {
    /// Opens (creating) the spool in `dir`, keeping what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64, fsync: bool) -> Result<Spool> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::sink("mqtt", format!("cannot create spool dir {}: {e}", dir.display())))?;
        let mut entries = BTreeMap::new();
        let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".tmp") {
                // A write that never completed: the message was not acknowledged to anyone yet.
                let _ = fs::remove_file(&path);
                continue;
            }
            if let Some(id) = name.strip_suffix(&format!(".{EXT}")).and_then(|s| s.parse::<u64>().ok()) {
                if id > MAX_ID {
                    // Not written by affectd (ids count up from 0): numbering after it would overflow.
                    log::warn!(
                        "spool {}: ignoring {name}: id {id} is beyond what affectd writes (at most {MAX_ID})",
                        dir.display()
                    );
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                entries.insert(id, len);
            }
        }
        let next_id = entries.keys().next_back().map_or(0, |k| k + 1);
        let bytes = entries.values().sum();
        let queued = entries.len() as u64;
        let stats = SpoolStats { queued, bytes, max_queued: queued, ..Default::default() };
        let mut s = Spool { dir: dir.to_path_buf(), fsync, max_bytes, next_id, entries, stats };
        s.evict()?;
        Ok(s)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.{EXT}"))
    }

    fn sync_dir(&self) {
        if self.fsync {
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let err = |e: std::io::Error| {
            Error::sink("mqtt", format!("cannot write spool file {}: {e}", path.display()))
        };
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(data).map_err(err)?;
        if self.fsync {
            f.sync_all().map_err(err)?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(err)?;
        self.sync_dir();
        Ok(())
    }

    /// Appends a message; returns its id. May evict the oldest messages to stay under the cap.
    pub fn push(&mut self, topic: &str, payload: &[u8]) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut data = Vec::with_capacity(topic.len() + 1 + payload.len());
        data.extend_from_slice(topic.as_bytes());
        data.push(b'\n');
        data.extend_from_slice(payload);
        self.write_atomic(&self.path(id), &data)?;
        self.entries.insert(id, data.len() as u64);
        self.stats.bytes += data.len() as u64;
        self.stats.queued = self.entries.len() as u64;
        self.stats.max_queued = self.stats.max_queued.max(self.stats.queued);
        self.evict()?;
        Ok(id)
    }

    fn evict(&mut self) -> Result<()> {
        while self.stats.bytes > self.max_bytes && self.entries.len() > 1 {
            let (&oldest, _) = self.entries.iter().next().expect("non-empty");
            log::warn!(
                "spool {} over {} bytes: evicting oldest message {oldest}",
                self.dir.display(),
                self.max_bytes
            );
            self.remove(oldest)?;
            self.stats.evicted += 1;
        }
        Ok(())
    }

    fn remove(&mut self, id: u64) -> Result<()> {
        if let Some(len) = self.entries.remove(&id) {
            self.stats.bytes -= len;
            self.stats.queued = self.entries.len() as u64;
            match fs::remove_file(self.path(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(self.path(id), e)),
            }
            self.sync_dir();
        }
        Ok(())
    }

    /// Marks a message delivered (PUBACK received): it leaves the spool.
    pub fn ack(&mut self, id: u64) -> Result<()> {
        if self.entries.contains_key(&id) {
            self.remove(id)?;
            self.stats.acked += 1;
        }
        Ok(())
    }

    /// Reads a spooled message.
    pub fn read(&self, id: u64) -> Result<SpoolRecord> {
        let path = self.path(id);
        let data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let nl = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| Error::input(&path, "corrupt spool file (no topic line)"))?;
        Ok(SpoolRecord {
            id,
            topic: String::from_utf8_lossy(&data[..nl]).to_string(),
            payload: data[nl + 1..].to_vec(),
        })
    }

    /// The first spooled id greater than `after` (or the first of all when `after` is None).
    pub fn next_after(&self, after: Option<u64>) -> Option<u64> {
        match after {
            None => self.entries.keys().next().copied(),
            Some(a) => self.entries.range(a.checked_add(1)?..).next().map(|(k, _)| *k),
        }
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Current counters.
    pub fn stats(&self) -> SpoolStats {
        self.stats
    }

    /// The spool folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next interval sequence number this device should use (0 for a new device).
    pub fn next_seq(&self) -> u64 {
        fs::read_to_string(self.dir.join(SEQ_FILE)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// Records that interval numbers below `next` have been used.
    pub fn set_next_seq(&self, next: u64) -> Result<()> {
        self.write_atomic(&self.dir.join(SEQ_FILE), format!("{next}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_in_order_and_acks_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20, true).unwrap();
        let a = s.push("t/a", b"{\"seq\":0}").unwrap();
        let b = s.push("t/b", b"{\"seq\":1}").unwrap();
        let c = s.push("t/c", b"{\"seq\":2}").unwrap();
        s.ack(b).unwrap();
        s.set_next_seq(3).unwrap();
        drop(s);
        let s = Spool::open(dir.path(), 1 << 20, true).unwrap();
        assert_eq!(s.next_after(None), Some(a));
        assert_eq!(s.next_after(Some(a)), Some(c));
        assert_eq!(s.next_after(Some(c)), None);
        assert_eq!(
            s.read(c).unwrap(),
            SpoolRecord { id: c, topic: "t/c".into(), payload: b"{\"seq\":2}".to_vec() }
        );
        assert_eq!(s.next_seq(), 3);
        assert_eq!(s.stats().queued, 2);
    }

    #[test]
    fn cap_evicts_oldest_first_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 100, false).unwrap();
        for i in 0..10 {
            s.push("t", format!("{i:030}").as_bytes()).unwrap();
        }
        // 32 bytes each: at most 3 fit under 100 bytes.
        assert_eq!(s.stats().queued, 3);
        assert_eq!(s.stats().evicted, 7);
        assert_eq!(s.next_after(None), Some(7));
        assert!(s.stats().bytes <= 100);
    }

    #[test]
    fn leftover_temporary_files_are_discarded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000005.tmp"), b"half").unwrap();
        let s = Spool::open(dir.path(), 1000, true).unwrap();
        assert!(s.is_empty());
        assert!(!dir.path().join("00000000000000000005.tmp").exists());
    }
}
