//! The output end: the interval window thread and the sinks thread (status, metrics, delivery).

use super::*;

pub(super) fn rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(super) fn window_stage(
    mut window: IntervalWindow,
    rx: MeteredReceiver<Envelope>,
    tx: MeteredSender<Output>,
    c: &Counters,
    max_lag_s: f64,
) -> Result<()> {
    let publish = |reports: Vec<crate::message::IntervalReport>, window: &mut IntervalWindow| -> Result<()> {
        let closed = |_| Error::stage("window", "the sinks stopped early");
        for r in reports {
            c.progress_bits.fetch_max(r.interval.end_s.to_bits(), Ordering::Relaxed);
            tx.send(Output::Interval(Box::new(r))).map_err(closed)?;
            c.intervals.fetch_add(1, Ordering::Relaxed);
        }
        for a in window.take_alerts() {
            tx.send(Output::Alert(Box::new(a))).map_err(closed)?;
        }
        Ok(())
    };
    while let Some(env) = rx.recv() {
        let mut reports = window.push(env);
        // A branch that stalls (and sends no heartbeat) must not hold the others' intervals, or
        // memory, without bound: past `max_lag_s` the oldest open intervals are published as they are.
        reports.extend(window.force_lagging(max_lag_s));
        c.forced.store(window.forced_intervals(), Ordering::Relaxed);
        publish(reports, &mut window)?;
        let wm = window.watermark();
        if wm.is_finite() {
            // Positive f64s order like their bit patterns, so fetch_max works on the bits.
            c.progress_bits.fetch_max(wm.to_bits(), Ordering::Relaxed);
        }
        c.late.store(window.late_observations(), Ordering::Relaxed);
    }
    // Every branch has closed (normally after End; after a failure, without): publish what is complete.
    let reports = window.finish();
    publish(reports, &mut window)
}

/// What the metrics messages report.
pub(super) struct SinkFigures {
    pub(super) channels: Vec<Arc<ChannelStats>>,
    pub(super) counters: Arc<Counters>,
    pub(super) mic: Option<Arc<crate::source::mic::MicStats>>,
}

// One thread's whole context; a struct for it would only be unpacked again here.
#[allow(clippy::too_many_arguments)]
pub(super) fn sink_stage(
    mut sinks: Vec<Box<dyn Sink>>,
    rx: MeteredReceiver<Output>,
    session: &SessionInfo,
    started: Instant,
    metrics_every: Duration,
    figures: &SinkFigures,
    stop: &AtomicBool,
    health: &crate::source::Health,
) -> Result<()> {
    let status = |state: &str, reason: &str| {
        Output::Status(StatusMessage {
            schema: STATUS_SCHEMA.into(),
            device_id: session.device_id.clone(),
            session_id: session.session_id.clone(),
            state: state.into(),
            reason: reason.into(),
            wall: rfc3339(SystemTime::now()),
        })
    };
    let metrics = || {
        Output::Metrics(MetricsReport {
            schema: METRICS_SCHEMA.into(),
            device_id: session.device_id.clone(),
            session_id: session.session_id.clone(),
            wall: rfc3339(SystemTime::now()),
            uptime_s: started.elapsed().as_secs_f64(),
            channels: figures.channels.iter().map(|c| c.snapshot()).collect(),
            rss_mib: rss_mib(),
            spool: None,
            faults: Some(figures.counters.faults(figures.mic.as_deref())),
        })
    };
    let mut first_err: Option<Error> = None;
    let mut failing = vec![false; sinks.len()];
    let mut deliver = |sinks: &mut Vec<Box<dyn Sink>>, msg: &Output| {
        for (i, s) in sinks.iter_mut().enumerate() {
            match s.publish(msg) {
                // Only a written interval or alert proves the sink works again (a file sink
                // ignores status and metrics).
                Ok(()) if failing[i] && matches!(msg, Output::Interval(_) | Output::Alert(_)) => {
                    failing[i] = false;
                    health.recover(&format!("sink {}", s.name()));
                }
                Ok(()) => {}
                Err(e) if !s.fatal_on_error() => {
                    // E.g. the log file on a full disk: say so, count it, keep the session.
                    let n = figures.counters.sink_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if !failing[i] {
                        log::error!("{e} (the session goes on; {n} messages not written so far)");
                    }
                    failing[i] = true;
                    health.degrade(&format!("sink {}", s.name()), &format!("{e} ({n} messages not written)"));
                }
                Err(e) => {
                    log::error!("{e}");
                    // A sink that cannot write ends the session gracefully: sources stop, the rest drains.
                    stop.store(true, Ordering::SeqCst);
                    first_err.get_or_insert(e);
                }
            }
        }
    };
    deliver(&mut sinks, &status("online", ""));
    let mut next_metrics = Instant::now() + metrics_every;
    let mut degraded: Option<String> = None;
    loop {
        // Wake at least every 250 ms to notice a source losing (or regaining) its device.
        let wait = next_metrics.saturating_duration_since(Instant::now()).min(Duration::from_millis(250));
        match rx.recv_timeout(wait) {
            Recv::Item(msg) => deliver(&mut sinks, &msg),
            Recv::Closed => break,
            Recv::Empty => {}
        }
        let now_degraded = health.degraded();
        if now_degraded != degraded {
            match &now_degraded {
                Some(reason) => deliver(&mut sinks, &status("degraded", reason)),
                None => deliver(&mut sinks, &status("online", "")),
            }
            degraded = now_degraded;
        }
        if Instant::now() >= next_metrics {
            deliver(&mut sinks, &metrics());
            next_metrics += metrics_every;
        }
    }
    // A fault in the last moments (a stage that panicked as the stream ended) is still said.
    let now_degraded = health.degraded();
    if now_degraded != degraded {
        if let Some(reason) = &now_degraded {
            deliver(&mut sinks, &status("degraded", reason));
        }
    }
    deliver(&mut sinks, &metrics());
    let reason = match &now_degraded {
        Some(why) if stop.load(Ordering::SeqCst) && why.contains("panicked") => {
            format!("stopped after a fault: {why}")
        }
        _ if stop.load(Ordering::SeqCst) => "shutdown".into(),
        _ => "end of input".into(),
    };
    deliver(&mut sinks, &status("offline", &reason));
    for s in sinks.iter_mut() {
        if let Err(e) = s.flush() {
            log::error!("{e}");
            if s.fatal_on_error() {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
