//! The on-disk spool of messages not yet acknowledged by the broker: one file per message, named
//! by a monotonically increasing id, written to a temporary name, fsynced and renamed into place
//! (so a crash leaves either the whole message or nothing), deleted on PUBACK. A size cap evicts
//! the oldest messages first and counts them. The spool also keeps the device's next interval
//! sequence number, so numbering continues across restarts.
//!
//! Record format: `AFSP` magic, a format byte (1), topic length and payload length (u32 LE), the
//! CRC-32 of topic + payload (u32 LE), then the topic and the payload. Without fsync a power cut
//! can still leave a torn or empty file after the rename; such a record (or any that fails its
//! lengths or checksum) is moved to `quarantine/` beside the spool and counted — never fatal.

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
    /// Torn or corrupt records moved to `quarantine/` since start (not deliverable).
    #[serde(default)]
    pub quarantined: u64,
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
const MAGIC: &[u8; 4] = b"AFSP";
const FORMAT: u8 = 1;
const HEADER: usize = 4 + 1 + 4 + 4 + 4;
/// Folder (inside the spool) that corrupt records are moved to.
pub const QUARANTINE: &str = "quarantine";

/// Encodes one record (see the module doc for the layout).
pub fn encode_record(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(HEADER + topic.len() + payload.len());
    data.extend_from_slice(MAGIC);
    data.push(FORMAT);
    data.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    data.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(topic.as_bytes());
    crc.update(payload);
    data.extend_from_slice(&crc.finalize().to_le_bytes());
    data.extend_from_slice(topic.as_bytes());
    data.extend_from_slice(payload);
    data
}

/// Decodes one record's bytes into (topic, payload), or says why it is not a whole record.
/// Files from before the checksummed format (`topic\npayload`) are still read.
pub fn decode_record(data: &[u8]) -> std::result::Result<(String, Vec<u8>), String> {
    if data.is_empty() {
        return Err("empty record (a write torn by a power cut?)".into());
    }
    if !data.starts_with(MAGIC) {
        // The earlier format: topic line, then the payload.
        let nl = data.iter().position(|&b| b == b'\n').ok_or("no record header and no topic line")?;
        let topic = std::str::from_utf8(&data[..nl]).map_err(|_| "the topic is not UTF-8")?;
        if topic.is_empty() || nl + 1 == data.len() {
            return Err("old-format record with an empty topic or payload".into());
        }
        return Ok((topic.to_string(), data[nl + 1..].to_vec()));
    }
    if data.len() < HEADER {
        return Err(format!("{} bytes: shorter than the {HEADER}-byte header", data.len()));
    }
    if data[4] != FORMAT {
        return Err(format!("record format {} (this build reads format {FORMAT})", data[4]));
    }
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
    let (tlen, plen, crc) = (u32_at(5), u32_at(9), u32_at(13) as u32);
    let want = HEADER as u64 + tlen as u64 + plen as u64;
    if want != data.len() as u64 {
        return Err(format!("header says {want} bytes, the file has {} (torn write?)", data.len()));
    }
    let body = &data[HEADER..];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let topic = std::str::from_utf8(&body[..tlen]).map_err(|_| "the topic is not UTF-8")?;
    if topic.is_empty() {
        return Err("empty topic".into());
    }
    Ok((topic.to_string(), body[tlen..].to_vec()))
}

/// Creates `dir` (and its parents) readable by this user only (0700 on Unix): messages may hold
/// what customers said.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates (truncating) a file readable by this user only (0600 on Unix).
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}
/// Largest message id read back from the folder (files with larger ids are ignored).
const MAX_ID: u64 = i64::MAX as u64;

impl Spool {
    /// Opens (creating) the spool in `dir`, keeping what an earlier run left there.
    pub fn open(dir: &Path, max_bytes: u64, fsync: bool) -> Result<Spool> {
        create_private_dir(dir)
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
        // Check every record left by an earlier run; torn ones go to quarantine now.
        let ids: Vec<u64> = s.entries.keys().copied().collect();
        for id in ids {
            let data = fs::read(s.path(id)).map_err(|e| Error::io(s.path(id), e))?;
            if let Err(why) = decode_record(&data) {
                s.quarantine(id, &why)?;
            }
        }
        s.stats.max_queued = s.stats.queued;
        s.evict()?;
        Ok(s)
    }

    /// Moves a record that cannot be delivered to `quarantine/` (kept for inspection, counted).
    pub fn quarantine(&mut self, id: u64, why: &str) -> Result<()> {
        let from = self.path(id);
        let qdir = self.dir.join(QUARANTINE);
        log::warn!(
            "spool: record {} is not deliverable ({why}); moved to {}",
            from.display(),
            qdir.display()
        );
        fs::create_dir_all(&qdir).map_err(|e| Error::io(&qdir, e))?;
        let to = qdir.join(from.file_name().unwrap_or_default());
        if let Err(e) = fs::rename(&from, &to) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Error::io(&from, e));
            }
        }
        if let Some(len) = self.entries.remove(&id) {
            self.stats.bytes -= len;
            self.stats.queued = self.entries.len() as u64;
            self.stats.quarantined += 1;
        }
        self.sync_dir();
        Ok(())
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
        let mut f = create_private_file(&tmp).map_err(err)?;
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
        let data = encode_record(topic, payload);
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

    /// Reads a spooled message: `Ok(None)` when the record turned out torn or corrupt (it is
    /// then quarantined and counted); an error only when the file cannot be read at all.
    pub fn read(&mut self, id: u64) -> Result<Option<SpoolRecord>> {
        let path = self.path(id);
        let data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        match decode_record(&data) {
            Ok((topic, payload)) => Ok(Some(SpoolRecord { id, topic, payload })),
            Err(why) => {
                self.quarantine(id, &why)?;
                Ok(None)
            }
        }
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
        let mut s = s;
        assert_eq!(
            s.read(c).unwrap(),
            Some(SpoolRecord { id: c, topic: "t/c".into(), payload: b"{\"seq\":2}".to_vec() })
        );
        assert_eq!(s.next_seq(), 3);
        assert_eq!(s.stats().queued, 2);
    }

    #[test]
    fn cap_evicts_oldest_first_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 150, false).unwrap();
        for i in 0..10 {
            s.push("t", format!("{i:030}").as_bytes()).unwrap();
        }
        // 48 bytes each (17-byte header, topic, payload): at most 3 fit under 150 bytes.
        assert_eq!(s.stats().queued, 3);
        assert_eq!(s.stats().evicted, 7);
        assert_eq!(s.next_after(None), Some(7));
        assert!(s.stats().bytes <= 150);
    }

    #[test]
    fn a_zero_length_or_torn_record_is_quarantined_and_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20, false).unwrap();
        let a = s.push("t/a", b"{\"seq\":0}").unwrap();
        let b = s.push("t/b", b"{\"seq\":1}").unwrap();
        let c = s.push("t/c", b"{\"seq\":2}").unwrap();
        drop(s);
        // A power cut without fsync: one record empty, one cut short.
        std::fs::write(dir.path().join(format!("{a:020}.msg")), b"").unwrap();
        let full = std::fs::read(dir.path().join(format!("{b:020}.msg"))).unwrap();
        std::fs::write(dir.path().join(format!("{b:020}.msg")), &full[..full.len() - 3]).unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20, false).unwrap();
        assert_eq!(s.stats().quarantined, 2);
        assert_eq!(s.stats().queued, 1);
        assert_eq!(s.next_after(None), Some(c));
        assert_eq!(s.read(c).unwrap().unwrap().payload, b"{\"seq\":2}");
        let q = dir.path().join(QUARANTINE);
        assert!(q.join(format!("{a:020}.msg")).exists() && q.join(format!("{b:020}.msg")).exists());
        // A record corrupted while the spool is open is quarantined when read.
        let d = s.push("t/d", b"{\"seq\":3}").unwrap();
        let p = dir.path().join(format!("{d:020}.msg"));
        let mut bytes = std::fs::read(&p).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(s.read(d).unwrap(), None);
        assert_eq!(s.stats().quarantined, 3);
        assert_eq!(s.next_after(Some(c)), None);
    }

    #[test]
    fn records_round_trip_and_old_format_files_still_read() {
        let rec = encode_record("a/b", b"payload");
        assert_eq!(decode_record(&rec).unwrap(), ("a/b".to_string(), b"payload".to_vec()));
        assert_eq!(decode_record(b"t/x\n{}").unwrap(), ("t/x".to_string(), b"{}".to_vec()));
        for bad in [&b""[..], b"AFSP", b"no newline", b"\n{}", b"t\n"] {
            assert!(decode_record(bad).is_err(), "{bad:?}");
        }
        let mut long = rec.clone();
        long.push(0);
        assert!(decode_record(&long).unwrap_err().contains("torn"));
        let mut wrong = rec.clone();
        wrong[4] = 9;
        assert!(decode_record(&wrong).unwrap_err().contains("format 9"));
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
