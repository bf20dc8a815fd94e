use super::*;
use crate::source::{Health, RawFrame};
use std::sync::Mutex;

/// Frames 0.1 s apart; after frame 2 the "device" is lost for 0.6 s, then comes back.
struct Flaky {
    n: u32,
    health: Health,
}

impl VideoSource for Flaky {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        if self.n == 5 {
            return Ok(None);
        }
        if self.n == 2 {
            self.health.degrade("webcam", "capture failed: gone");
            std::thread::sleep(Duration::from_millis(600));
            self.health.recover("webcam");
            std::thread::sleep(Duration::from_millis(400));
        }
        let t = self.n as f64 * 0.1;
        self.n += 1;
        Ok(Some(RawFrame { t, width: 2, height: 2, duration: 0.1, rgb: vec![0; 12] }))
    }
    fn duration(&self) -> Option<f64> {
        None
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

struct Statuses(Arc<Mutex<Vec<(String, String)>>>);

impl Sink for Statuses {
    fn name(&self) -> &str {
        "statuses"
    }
    fn publish(&mut self, msg: &Output) -> Result<()> {
        if let Output::Status(s) = msg {
            self.0.lock().unwrap().push((s.state.clone(), s.reason.clone()));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A live camera on the session clock: frames for 1.2 s, then lost for 3 s, then 1 more second.
struct Stalling {
    health: Health,
    n: u32,
}

impl VideoSource for Stalling {
    fn next_frame(&mut self) -> Result<Option<RawFrame>> {
        if self.n == 24 {
            return Ok(None);
        }
        if self.n == 12 {
            self.health.degrade("webcam", "gone");
            std::thread::sleep(Duration::from_secs(3));
            self.health.recover("webcam");
        }
        std::thread::sleep(Duration::from_millis(100));
        self.n += 1;
        let t = self.health.media_now();
        Ok(Some(RawFrame { t, width: 2, height: 2, duration: 0.1, rgb: vec![0; 12] }))
    }
    fn duration(&self) -> Option<f64> {
        None
    }
    fn describe(&self) -> String {
        "stalling".into()
    }
    fn is_live(&self) -> bool {
        true
    }
}

/// Records when each interval was published (wall time since start).
struct Arrivals(Arc<Mutex<Vec<(f64, f64)>>>, Instant);

impl Sink for Arrivals {
    fn name(&self) -> &str {
        "arrivals"
    }
    fn publish(&mut self, msg: &Output) -> Result<()> {
        if let Output::Interval(r) = msg {
            self.0.lock().unwrap().push((r.interval.end_s, self.1.elapsed().as_secs_f64()));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_live_camera_that_stalls_does_not_freeze_publishing() {
    let health = Health::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let topo = Topology {
        config: PipelineConfig { interval_s: 1.0, ..Default::default() },
        device_id: "t".into(),
        session_id: "s".into(),
        first_seq: 0,
        video: Some(VideoFeed {
            source: Box::new(Stalling { health: health.clone(), n: 0 }),
            realtime: false,
        }),
        vision: None,
        audio: None,
        speech: None,
        fusion: None,
        sinks: vec![Box::new(Arrivals(seen.clone(), Instant::now()))],
        stop: Arc::new(AtomicBool::new(false)),
        health,
    };
    Pipeline::start(topo).unwrap().wait().unwrap();
    let arrivals = seen.lock().unwrap().clone();
    // The interval ending at 2 s lies inside the stall (1.2–4.2 s): the clock's heartbeat
    // (1 s behind the clock) publishes it before the camera is back, not after.
    let (_, at) = arrivals.iter().find(|(end, _)| (*end - 2.0).abs() < 1e-6).copied().unwrap();
    assert!(at < 4.0, "interval [1, 2) published at {at:.2} s, during the stall: {arrivals:?}");
    let ends: Vec<f64> = arrivals.iter().map(|a| a.0).collect();
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
}

/// A microphone-like source: 1 s of audio, with capture counters that say 2 gaps (0.75 s).
struct CountedMic(bool, Arc<crate::source::mic::MicStats>);

impl AudioSource for CountedMic {
    fn next_samples(&mut self) -> Result<Option<Vec<f32>>> {
        if std::mem::replace(&mut self.0, true) {
            return Ok(None);
        }
        Ok(Some(vec![0.0; 16000]))
    }
    fn duration(&self) -> Option<f64> {
        None
    }
    fn describe(&self) -> String {
        "counted mic".into()
    }
    fn mic_counters(&self) -> Option<Arc<crate::source::mic::MicStats>> {
        Some(self.1.clone())
    }
}

struct MetricsSeen(Arc<Mutex<Vec<crate::message::FaultCounts>>>);

impl Sink for MetricsSeen {
    fn name(&self) -> &str {
        "metrics"
    }
    fn publish(&mut self, msg: &Output) -> Result<()> {
        if let Output::Metrics(m) = msg {
            self.0.lock().unwrap().extend(m.faults);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn microphone_gaps_and_late_observations_reach_the_metrics() {
    let stats = Arc::new(crate::source::mic::MicStats::default());
    stats.gaps.store(2, Ordering::Relaxed);
    stats.gap_samples.store(12_000, Ordering::Relaxed);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let topo = Topology {
        config: PipelineConfig::default(),
        device_id: "t".into(),
        session_id: "s".into(),
        first_seq: 0,
        video: None,
        vision: None,
        audio: Some(AudioFeed { source: Box::new(CountedMic(false, stats)), realtime: false }),
        speech: None,
        fusion: None,
        sinks: vec![Box::new(MetricsSeen(seen.clone()))],
        stop: Arc::new(AtomicBool::new(false)),
        health: Health::default(),
    };
    let summary = Pipeline::start(topo).unwrap().wait().unwrap();
    let last = *seen.lock().unwrap().last().expect("a final metrics message");
    assert_eq!((last.mic_overruns, last.mic_gap_s), (2, 0.75));
    assert_eq!(last.late_observations, 0);
    assert_eq!(summary.faults, last);
}

#[test]
fn a_lost_device_is_published_as_degraded_then_online() {
    let health = Health::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let topo = Topology {
        config: PipelineConfig { video_overflow: Overflow::Block, ..Default::default() },
        device_id: "t".into(),
        session_id: "s".into(),
        first_seq: 0,
        video: Some(VideoFeed { source: Box::new(Flaky { n: 0, health: health.clone() }), realtime: false }),
        vision: None,
        audio: None,
        speech: None,
        fusion: None,
        sinks: vec![Box::new(Statuses(seen.clone()))],
        stop: Arc::new(AtomicBool::new(false)),
        health,
    };
    let summary = Pipeline::start(topo).unwrap().wait().unwrap();
    assert_eq!(summary.frames, 5);
    let states = seen.lock().unwrap().clone();
    let names: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["online", "degraded", "online", "offline"], "{states:?}");
    assert_eq!(states[1].1, "webcam: capture failed: gone");
}
