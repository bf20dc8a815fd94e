//! Stage threads under supervision: panics caught and counted, per-item errors skipped and
//! counted, the fault-injection hook of the fault tests.

use super::*;

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) intervals: AtomicU64,
    pub(super) frames: AtomicU64,
    pub(super) audio_samples: AtomicU64,
    pub(super) utterances: AtomicU64,
    pub(super) late: AtomicU64,
    pub(super) forced: AtomicU64,
    pub(super) progress_bits: AtomicU64,
    pub(super) frames_failed: AtomicU64,
    pub(super) utterances_failed: AtomicU64,
    pub(super) stage_panics: AtomicU64,
    pub(super) sink_failures: AtomicU64,
    /// Nanoseconds each branch stage thread spent working (not waiting for input or for room
    /// downstream), indexed like [`STAGES`].
    pub(super) busy_ns: [AtomicU64; 4],
}

/// The stage threads whose busy time is measured, in [`Counters::busy_ns`] order.
pub(super) const STAGES: [&str; 4] = ["vision", "audio", "asr", "text"];

impl Counters {
    /// Runs `work` and adds its duration to stage `i`'s busy time.
    pub(super) fn busy<T>(&self, i: usize, work: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = work();
        self.busy_ns[i].fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl Counters {
    pub(super) fn faults(&self, mic: Option<&crate::source::mic::MicStats>) -> crate::message::FaultCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::message::FaultCounts {
            frames_failed: r(&self.frames_failed),
            utterances_failed: r(&self.utterances_failed),
            stage_panics: r(&self.stage_panics),
            late_observations: r(&self.late),
            intervals_forced: r(&self.forced),
            mic_overruns: mic.map_or(0, |m| m.overruns()),
            mic_gap_s: mic.map_or(0.0, |m| m.gap_seconds()),
            sink_failures: r(&self.sink_failures),
        }
    }
}

/// What every stage thread shares to report a fault: the stop flag (an orderly end), the health
/// published as status, and the counters published in metrics.
#[derive(Clone)]
pub(super) struct Supervisor {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) health: crate::source::Health,
    pub(super) counters: Arc<Counters>,
}

/// Logs a per-item failure at most once a second per stage (the counter has them all), and
/// marks the stage degraded until it succeeds again.
pub(super) struct ItemErrors {
    pub(super) stage: &'static str,
    pub(super) last_log: Option<Instant>,
    pub(super) failing: bool,
}

impl ItemErrors {
    pub(super) fn new(stage: &'static str) -> Self {
        ItemErrors { stage, last_log: None, failing: false }
    }

    pub(super) fn failed(&mut self, sup: &Supervisor, counter: &AtomicU64, what: &str, e: &Error) {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            log::warn!("stage {}: {what} skipped ({n} so far): {e}", self.stage);
            self.last_log = Some(Instant::now());
        }
        sup.health.degrade(&format!("stage {}", self.stage), &format!("{what} skipped ({n} so far): {e}"));
        self.failing = true;
    }

    pub(super) fn ok(&mut self, sup: &Supervisor) {
        if self.failing {
            sup.health.recover(&format!("stage {}", self.stage));
            self.failing = false;
        }
    }
}

/// The text of a panic payload.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Starts a stage thread under supervision: an error or a panic sets the stop flag (the session
/// ends in order: sources stop, the rest drains, completed intervals are published); a panic is
/// also counted, published as `degraded` with the stage and reason, and `on_panic` closes the
/// stage's output stream (sends its end marker), so no consumer waits for it forever.
pub(super) fn spawn<F, G>(
    name: &str,
    sup: &Supervisor,
    on_panic: G,
    f: F,
) -> Result<(String, JoinHandle<Result<()>>)>
where
    F: FnOnce() -> Result<()> + Send + 'static,
    G: FnOnce() + Send + 'static,
{
    let (sup, stage) = (sup.clone(), name.to_string());
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r,
                Err(payload) => {
                    let msg = crate::secrets::redact(&panic_message(&*payload)).into_owned();
                    sup.counters.stage_panics.fetch_add(1, Ordering::Relaxed);
                    log::error!("stage {stage} panicked: {msg}; ending the session in order");
                    sup.health.degrade(&format!("stage {stage}"), &format!("panicked: {msg}"));
                    on_panic();
                    Err(Error::stage(&stage, format!("panicked: {msg}")))
                }
            };
            if r.is_err() {
                sup.stop.store(true, Ordering::SeqCst);
            }
            r
        })
        .map_err(|e| Error::stage(name, format!("cannot spawn thread: {e}")))?;
    Ok((name.to_string(), handle))
}

/// A fault to inject (tests only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fault {
    Panic,
    Error,
}

/// The fault-injection hook for the fault tests: `AFFECTD_FAULT=<stage>:<n>:<panic|error>` makes
/// `stage` (vision, asr or text) panic, or fail on, its n-th item. Read once per stage at start;
/// never set in production.
pub(super) struct FaultHook(Option<(u64, Fault)>);

impl FaultHook {
    pub(super) fn for_stage(stage: &str) -> Self {
        let spec = std::env::var("AFFECTD_FAULT").unwrap_or_default();
        let mut it = spec.split(':');
        let parsed = match (it.next(), it.next().and_then(|n| n.parse().ok()), it.next()) {
            (Some(s), Some(n), Some("panic")) if s == stage => Some((n, Fault::Panic)),
            (Some(s), Some(n), Some("error")) if s == stage => Some((n, Fault::Error)),
            _ => None,
        };
        FaultHook(parsed)
    }

    /// Panics at item `n` when asked to; returns an injected error for item `n` when asked to.
    pub(super) fn check(&self, stage: &str, n: u64) -> Result<()> {
        match self.0 {
            Some((k, Fault::Panic)) if k == n => panic!("fault injection: {stage} panics at item {n}"),
            Some((k, Fault::Error)) if k == n => {
                Err(Error::stage(stage, format!("fault injection: item {n} fails")))
            }
            _ => Ok(()),
        }
    }
}

/// A closure that ends `producer`'s stream (for a stage that panicked before sending its End).
pub(super) fn end_guard(tx: &MeteredSender<Envelope>, producer: usize) -> impl FnOnce() + Send + 'static {
    let tx = tx.clone();
    move || {
        let _ = tx.send(Envelope { producer, event: Event::End(0.0) });
    }
}
