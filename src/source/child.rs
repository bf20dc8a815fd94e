//! One way to run a child process that produces media on its stdout (ffmpeg, pipe-source
//! commands): its own process group (a Ctrl-C meant for the daemon does not hit it first; `Drop`
//! kills the whole group, not only the leader), a cleaned environment (no credentials, see
//! [`crate::secrets::is_secret_env`]), stderr kept as a bounded, redacted tail for error
//! messages, and reads that give up when a stop flag is set.

use std::io::{ErrorKind, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How much of a child's stderr is kept (the newest bytes).
pub const STDERR_KEEP: usize = 4096;

/// A running child process whose stdout is read by the caller.
pub struct ChildProcess {
    child: Child,
    stdout: ChildStdout,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

/// Keeps only the last [`STDERR_KEEP`] bytes of `s` (on a character boundary).
fn keep_tail(s: &mut String) {
    if s.len() > STDERR_KEEP {
        let mut cut = s.len() - STDERR_KEEP;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s.drain(..cut);
    }
}

/// Removes credential variables ([`crate::secrets::is_secret_env`]) from what `cmd` inherits.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if crate::secrets::is_secret_env(&k.to_string_lossy()) {
            cmd.env_remove(&k);
        }
    }
}

impl ChildProcess {
    /// Starts `program` with `args`: stdin closed, stdout piped, stderr kept (bounded), in a new
    /// process group, without credential environment variables.
    pub fn spawn(program: &str, args: &[String]) -> std::io::Result<ChildProcess> {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        clean_env(&mut cmd);
        let mut child = cmd.spawn()?;
        let (Some(stdout), Some(mut err_pipe)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no stdout/stderr pipe"));
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = stderr.clone();
        let reader = std::thread::Builder::new().name("child-stderr".into()).spawn(move || {
            let mut buf = [0u8; 1024];
            loop {
                match err_pipe.read(&mut buf) {
                    Ok(0) => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut s) = keep.lock() {
                            s.push_str(&String::from_utf8_lossy(&buf[..n]));
                            keep_tail(&mut s);
                        }
                    }
                }
            }
        });
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let mut p = ChildProcess { child, stdout, stderr, reader: None, exited: None };
                p.kill();
                return Err(e);
            }
        };
        Ok(ChildProcess { child, stdout, stderr, reader: Some(reader), exited: None })
    }

    /// Reads what is available into `buf`: `Ok(Some(0))` at end of stream, `Ok(None)` when
    /// `stop` was set while waiting (checked every 100 ms).
    pub fn read(&mut self, buf: &mut [u8], stop: Option<&AtomicBool>) -> std::io::Result<Option<usize>> {
        loop {
            if let Some(stop) = stop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let mut fd = libc::pollfd { fd: self.stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd for the duration of the call.
                let r = unsafe { libc::poll(&mut fd, 1, 100) };
                if r == 0 {
                    continue;
                }
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            }
            match self.stdout.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the child to exit (after its stdout ended) and for its stderr to be read.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let status = self.child.wait()?;
        self.exited = Some(status);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        Ok(status)
    }

    /// The last `lines` lines of stderr, redacted, joined with `; ` (empty when none).
    pub fn stderr_tail(&self, lines: usize) -> String {
        let s = self.stderr.lock().map(|s| s.trim().to_string()).unwrap_or_default();
        let tail: Vec<&str> = s.lines().rev().take(lines).collect::<Vec<_>>().into_iter().rev().collect();
        crate::secrets::redact(&tail.join("; ")).into_owned()
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child's whole process group and reaps the child.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
            unsafe {
                libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
            }
            let _ = self.child.kill();
            if let Ok(s) = self.child.wait() {
                self.exited = Some(s);
            }
        } else {
            // The leader is gone; helpers it started may still hold the pipes.
            // SAFETY: as above; ESRCH when the group is empty is ignored.
            unsafe {
                libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
            }
        }
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stderr_is_bounded_and_redacted() {
        let mut p = ChildProcess::spawn(
            "sh",
            &args(&[
                "-c",
                "head -c 100000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'open rtsp://u:pw@cam/1 failed' >&2",
            ]),
        )
        .unwrap();
        let mut buf = [0u8; 16];
        while p.read(&mut buf, None).unwrap() != Some(0) {}
        p.wait().unwrap();
        assert!(p.stderr.lock().unwrap().len() <= STDERR_KEEP);
        assert_eq!(p.stderr_tail(1), "open rtsp://***@cam/1 failed");
    }

    #[test]
    fn credentials_are_not_inherited() {
        std::env::set_var("AFFECTD_MQTT_PASSWORD", "do-not-leak");
        let mut p = ChildProcess::spawn("sh", &args(&["-c", "env"])).unwrap();
        std::env::remove_var("AFFECTD_MQTT_PASSWORD");
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        loop {
            match p.read(&mut buf, None).unwrap() {
                Some(0) | None => break,
                Some(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        let env = String::from_utf8_lossy(&out);
        assert!(env.contains("PATH="), "{env}");
        assert!(!env.contains("do-not-leak"), "{env}");
    }

    #[test]
    fn a_blocked_read_ends_on_stop_and_drop_kills_the_whole_group() {
        let stop = AtomicBool::new(false);
        // The leader starts a grandchild that would outlive a leader-only kill.
        let mut p = ChildProcess::spawn("sh", &args(&["-c", "sleep 300 & echo $!; wait"])).unwrap();
        let mut buf = [0u8; 64];
        let n = p.read(&mut buf, Some(&stop)).unwrap().unwrap();
        let grandchild: i32 = String::from_utf8_lossy(&buf[..n]).trim().parse().unwrap();
        let t0 = std::time::Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(300));
                stop.store(true, Ordering::SeqCst);
            });
            assert_eq!(p.read(&mut buf, Some(&stop)).unwrap(), None, "a stopped read returns None");
        });
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        drop(p);
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(grandchild, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        assert!(!alive || zombie, "grandchild {grandchild} survived the drop");
    }
}
