//! Property tests (proptest) where an invariant is the spec: every media instant lies in exactly
//! one published interval and every observation is counted once; `seq` strictly increases
//! across restarts that share a spool; resampling preserves duration; NMS does not depend on
//! the order of its candidates.

use affectd::audio::resample::MonoResampler;
use affectd::fusion::window::{IntervalWindow, ProducerKind, SessionInfo};
use affectd::message::{Envelope, Event, FrameObs, Observation};
use affectd::sink::spool::Spool;
use affectd::vision::detect::{weighted_nms, Detection};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::SystemTime;

fn session(first_seq: u64) -> SessionInfo {
    SessionInfo {
        device_id: "d".into(),
        session_id: "s".into(),
        first_seq,
        wall_start: SystemTime::UNIX_EPOCH,
        models: BTreeMap::new(),
        face_labels: None,
        publish_transcripts: false,
        voice: false,
    }
}

fn frame(producer: usize, t: f64) -> Envelope {
    Envelope {
        producer,
        event: Event::Obs(Observation::Frame(FrameObs {
            seq: 0,
            t,
            dropped_before: 0,
            luma_mean: 0.5,
            face: None,
            process_ms: 0.0,
        })),
    }
}

/// Two video branches with their own increasing frame times, interleaved in a random order
/// (each branch in order, as the channels guarantee), with progress marks, then both end.
fn run_window(interval: f64, a: &[f64], b: &[f64], order: &[bool]) -> Vec<affectd::message::IntervalReport> {
    let mut w = IntervalWindow::new(interval, 10.0, &[ProducerKind::Video, ProducerKind::Video], session(0));
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    for &pick_a in order.iter().chain(std::iter::repeat_n(&true, a.len() + b.len())) {
        let (p, t) = if (pick_a && i < a.len()) || j >= b.len() {
            if i >= a.len() {
                break;
            }
            i += 1;
            (0, a[i - 1])
        } else {
            j += 1;
            (1, b[j - 1])
        };
        out.extend(w.push(frame(p, t)));
        out.extend(w.push(Envelope { producer: p, event: Event::Progress(t) }));
    }
    let end_a = a.last().map_or(0.0, |t| t + 0.1);
    let end_b = b.last().map_or(0.0, |t| t + 0.1);
    out.extend(w.push(Envelope { producer: 0, event: Event::End(end_a) }));
    out.extend(w.push(Envelope { producer: 1, event: Event::End(end_b) }));
    assert_eq!(w.late_observations(), 0, "in-order branches are never late");
    out
}

fn increasing(steps: Vec<f64>) -> Vec<f64> {
    let mut t = 0.0;
    steps
        .into_iter()
        .map(|d| {
            t += d;
            t
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_instant_is_in_exactly_one_interval_and_every_frame_counted_once(
        interval in 0.5f64..7.0,
        da in proptest::collection::vec(0.01f64..1.5, 0..60),
        db in proptest::collection::vec(0.01f64..1.5, 0..60),
        order in proptest::collection::vec(any::<bool>(), 0..120),
    ) {
        let (a, b) = (increasing(da), increasing(db));
        let out = run_window(interval, &a, &b, &order);
        let media_end = a.last().map_or(0.0, |t| t + 0.1).max(b.last().map_or(0.0, |t| t + 0.1));
        // Contiguous, non-overlapping, from 0 to the end of the media, seq 0, 1, 2, …
        let mut at = 0.0;
        for (k, r) in out.iter().enumerate() {
            prop_assert_eq!(r.seq, k as u64);
            prop_assert!((r.interval.start_s - at).abs() < 1e-6, "gap or overlap at {}: {}", at, r.interval.start_s);
            prop_assert!(r.interval.end_s > r.interval.start_s);
            at = r.interval.end_s;
        }
        if media_end > 0.0 {
            prop_assert!((at - media_end).abs() < 1e-6, "covers the media: {} vs {}", at, media_end);
        }
        let counted: u64 = out.iter().map(|r| r.inputs.video.as_ref().map_or(0, |v| v.frames)).sum();
        prop_assert_eq!(counted, (a.len() + b.len()) as u64);
    }

    #[test]
    fn seq_strictly_increases_across_restarts_sharing_a_spool(runs in proptest::collection::vec(0usize..6, 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for n in runs {
            // Each run: open the spool as the daemon does, start at its next_seq, publish n intervals.
            let spool = Spool::open(dir.path(), 1 << 20, false).unwrap();
            let first = spool.next_seq();
            let frames: Vec<f64> = (0..n * 10).map(|i| i as f64 * 0.1).collect();
            let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video], session(first));
            let mut out = Vec::new();
            for &t in &frames {
                out.extend(w.push(frame(0, t)));
            }
            out.extend(w.push(Envelope { producer: 0, event: Event::End(n as f64) }));
            for r in &out {
                spool.set_next_seq(r.seq + 1).unwrap();
                all.push(r.seq);
            }
        }
        prop_assert!(all.windows(2).all(|p| p[0] < p[1]), "{:?}", all);
    }

    #[test]
    fn resampling_preserves_duration(
        rate in prop_oneof![Just(8000u32), Just(11025), Just(22050), Just(44100), Just(48000), Just(16000), 8000u32..96000],
        chunks in proptest::collection::vec(0usize..5000, 1..20),
    ) {
        let mut r = MonoResampler::new(rate).unwrap();
        let mut n_in = 0usize;
        let mut n_out = 0usize;
        for (k, c) in chunks.iter().enumerate() {
            let x: Vec<f32> = (0..*c).map(|i| (((i + k * 7) % 97) as f32 / 97.0 - 0.5) * 0.8).collect();
            n_in += c;
            n_out += r.push(&x).len();
        }
        n_out += r.finish().len();
        let want = (n_in as f64 * 16000.0 / rate as f64).round() as i64;
        prop_assert!((n_out as i64 - want).abs() <= 1, "{} Hz: {} in → {} out, want {}", rate, n_in, n_out, want);
    }

    #[test]
    fn nms_does_not_depend_on_candidate_order(
        boxes in proptest::collection::vec((0.0f32..0.8, 0.0f32..0.8, 0.05f32..0.3, 0.05f32..0.3, 0u8..6), 0..25),
        seed in any::<u64>(),
    ) {
        // Scores from a small set, so ties happen.
        let cands: Vec<Detection> = boxes
            .iter()
            .map(|&(x, y, w, h, s)| Detection { x, y, w, h, score: 0.5 + s as f32 * 0.1, keypoints: [(x, y); 6] })
            .collect();
        let mut shuffled = cands.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = weighted_nms(cands, 0.3);
        let b = weighted_nms(shuffled, 0.3);
        prop_assert_eq!(a, b);
    }
}
