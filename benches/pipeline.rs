//! Criterion benches of the foundation's hot paths and of a whole replay.
//! Run: `cargo bench --bench pipeline` (results in target/criterion; figures in docs/BENCHMARKS.md).

use affectd::channel::{bounded, Overflow};
use affectd::config::Config;
use affectd::fusion::window::{IntervalWindow, ProducerKind, SessionInfo};
use affectd::message::{Envelope, Event, FrameObs, Observation, Output};
use affectd::pipeline::{AudioFeed, Endpoints, Pipeline, Topology, VideoFeed};
use affectd::sink::Sink;
use affectd::source::y4m::Y4mHeader;
use affectd::{audio::resample::MonoResampler, source};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

struct NullSink(u64);
impl Sink for NullSink {
    fn name(&self) -> &str {
        "null"
    }
    fn publish(&mut self, msg: &Output) -> affectd::Result<()> {
        if let Output::Interval(_) = msg {
            self.0 += 1;
        }
        Ok(())
    }
    fn flush(&mut self) -> affectd::Result<()> {
        Ok(())
    }
}

fn channel(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("block_10k_msgs", |b| {
        b.iter(|| {
            let (tx, rx, _) = bounded::<u64>("b", 64, Overflow::Block);
            let h = std::thread::spawn(move || while rx.recv().is_some() {});
            for i in 0..10_000 {
                tx.send(i).unwrap();
            }
            drop(tx);
            h.join().unwrap();
        })
    });
    g.finish();
}

fn window(c: &mut Criterion) {
    let session = SessionInfo {
        device_id: "b".into(),
        session_id: "s".into(),
        first_seq: 0,
        wall_start: std::time::SystemTime::now(),
        models: Default::default(),
        face_labels: None,
        publish_transcripts: false,
        voice: false,
    };
    c.bench_function("window/1000_frames", |b| {
        b.iter_batched(
            || IntervalWindow::new(5.0, 10.0, &[ProducerKind::Video], session.clone()),
            |mut w| {
                for i in 0..1000 {
                    let t = i as f64 / 10.0;
                    let obs = FrameObs {
                        seq: i,
                        t,
                        dropped_before: 0,
                        luma_mean: 0.5,
                        face: None,
                        process_ms: 0.0,
                    };
                    w.push(Envelope { producer: 0, event: Event::Obs(Observation::Frame(obs)) });
                    w.push(Envelope { producer: 0, event: Event::Progress(t) });
                }
                w.push(Envelope { producer: 0, event: Event::End(100.0) })
            },
            BatchSize::SmallInput,
        )
    });
}

fn conversions(c: &mut Criterion) {
    let h = Y4mHeader::parse("YUV4MPEG2 W640 H480 F30:1 C420jpeg").unwrap();
    let planes = vec![128u8; h.frame_bytes()];
    c.bench_function("y4m/yuv420_to_rgb_640x480", |b| b.iter(|| h.to_rgb(&planes)));
    let second: Vec<f32> = (0..44100).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
    let mut g = c.benchmark_group("resample");
    g.throughput(Throughput::Elements(44100));
    g.bench_function("44k1_to_16k_1s", |b| {
        b.iter(|| {
            let mut r = MonoResampler::new(44100).unwrap();
            let mut n = 0;
            for chunk in second.chunks(4410) {
                n += r.push(chunk).len();
            }
            n + r.finish().len()
        })
    });
    g.finish();
}

/// Both replays go through `Topology::from_config`, the graph the daemon and `analyze` build.
fn replay_with(cfg: &Config, sample: &Path) -> affectd::pipeline::Summary {
    let io = Endpoints {
        video: Some(VideoFeed {
            source: source::open_video(sample, cfg.pipeline.analysis_fps).unwrap(),
            realtime: false,
        }),
        audio: Some(AudioFeed { source: source::open_audio(sample).unwrap(), realtime: false }),
        sinks: vec![Box::new(NullSink(0))],
        first_seq: 0,
        stop: Arc::new(AtomicBool::new(false)),
        health: Default::default(),
    };
    let topo = Topology::from_config(cfg, "bench".into(), io).unwrap();
    Pipeline::start(topo).unwrap().wait().unwrap()
}

fn replay(c: &mut Criterion) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample/grid-call.mp4");
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    let mut whole = Config::default();
    whole.pipeline.video_overflow = Overflow::Block;
    // The whole pipeline: decoding, vision (detect/track, mesh, expression), VAD, Whisper, voice,
    // text, fusion — the models of models/, as `affectd analyze` runs them.
    g.bench_function("whole_pipeline_bundled_sample_12s", |b| {
        b.iter(|| assert_eq!(replay_with(&whole, &sample).intervals, 3))
    });
    // Decoding and plumbing only (every model stage off): what the models cost is the difference.
    let mut plumbing = whole.clone();
    plumbing.vision.enabled = false;
    plumbing.speech.enabled = false;
    plumbing.fusion.enabled = false;
    g.bench_function("plumbing_only_bundled_sample_12s", |b| {
        b.iter(|| assert_eq!(replay_with(&plumbing, &sample).intervals, 3))
    });
    g.finish();
}

criterion_group!(benches, channel, window, conversions, replay);
criterion_main!(benches);
