//! The interval window: assigns observations to fixed media-time intervals and publishes an
//! interval once every producer's watermark has passed its end (or on shutdown, with what is
//! complete). Pure logic, no threads: the pipeline feeds it.

use super::stage::FusionStage;
use super::summary::{text_summary, voice_summary};
use super::tokens::{FaceToken, IntervalTokens, TextToken, VoiceToken};
use crate::message::{
    rfc3339, AlertMessage, AudioInput, Envelope, Event, Inputs, IntervalReport, IntervalSpan, Modalities,
    Observation, VideoInput, AUDIO_RATE, INTERVAL_SCHEMA,
};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Which kind of data a producer contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerKind {
    /// Per-frame observations (vision branch).
    Video,
    /// Per-block audio observations (audio branch).
    Audio,
    /// Transcribed utterances with their text sentiment (speech → text branch).
    Speech,
}

/// Identity of the session the reports belong to.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Device id written into every report.
    pub device_id: String,
    /// Session id written into every report.
    pub session_id: String,
    /// `seq` of the first interval (the device's numbering continues across sessions).
    pub first_seq: u64,
    /// Wall-clock time that corresponds to media time 0.
    pub wall_start: SystemTime,
    /// Model name → version, copied into every report.
    pub models: BTreeMap<String, String>,
    /// Expression labels when the vision models run (then `modalities.face` is filled).
    pub face_labels: Option<Vec<String>>,
    /// Publish the (redacted) transcript in `modalities.text.transcript`.
    pub publish_transcripts: bool,
    /// The voice stage runs (then `modalities.voice` is filled).
    pub voice: bool,
}

#[derive(Debug, Clone)]
struct Producer {
    kind: ProducerKind,
    watermark: f64,
    ended: bool,
    /// Where this producer's media ends: declared by `End`, else estimated from its observations.
    media_end: f64,
}

#[derive(Debug, Clone, Default)]
struct Acc {
    frames: u64,
    dropped: u64,
    luma_sum: f64,
    audio_samples: u64,
    sum_sq: f64,
    peak: f32,
    face: crate::vision::FaceAcc,
    /// Face tokens with their absolute media time in `t` (made relative at emit).
    face_tokens: Vec<FaceToken>,
    /// Utterances overlapping the interval (the fusion head's text and voice tokens, and the
    /// `modalities.text`/`voice` summaries).
    text_tokens: Vec<crate::message::UtteranceObs>,
}

/// Aggregates observations into [`IntervalReport`]s.
#[derive(Debug)]
pub struct IntervalWindow {
    interval: f64,
    frame_period: f64,
    producers: Vec<Producer>,
    pending: BTreeMap<u64, Acc>,
    next_index: u64,
    seq: u64,
    late: u64,
    forced: u64,
    session: SessionInfo,
    fusion: Option<FusionStage>,
    alerts: Vec<AlertMessage>,
}

fn dbfs(x: f64) -> f64 {
    if x <= 1e-6 {
        -120.0
    } else {
        (20.0 * x.log10()).max(-120.0)
    }
}

impl IntervalWindow {
    /// A window of `interval` seconds; `producers[i]` is the kind of producer `i`;
    /// `analysis_fps` sets how long one analysed frame lasts.
    pub fn new(interval: f64, analysis_fps: f64, producers: &[ProducerKind], session: SessionInfo) -> Self {
        IntervalWindow {
            interval,
            frame_period: 1.0 / analysis_fps,
            producers: producers
                .iter()
                .map(|&kind| Producer { kind, watermark: 0.0, ended: false, media_end: 0.0 })
                .collect(),
            pending: BTreeMap::new(),
            next_index: 0,
            seq: session.first_seq,
            late: 0,
            forced: 0,
            session,
            fusion: None,
            alerts: Vec::new(),
        }
    }

    /// Runs `fusion` on every interval it publishes (fills `sentiment`, `incongruence`, `fusion`).
    pub fn with_fusion(mut self, fusion: FusionStage) -> Self {
        self.session.models.insert(super::head::HEAD.to_string(), fusion.version().to_string());
        self.fusion = Some(fusion);
        self
    }

    /// Alerts raised by the intervals published so far (taken once).
    pub fn take_alerts(&mut self) -> Vec<AlertMessage> {
        std::mem::take(&mut self.alerts)
    }

    /// Observations that arrived for an interval already published (should stay 0; reported in metrics).
    pub fn late_observations(&self) -> u64 {
        self.late
    }

    /// Intervals published by [`IntervalWindow::force_lagging`] before every branch reported.
    pub fn forced_intervals(&self) -> u64 {
        self.forced
    }

    /// Publishes the open intervals that end more than `max_lag_s` before the newest watermark
    /// (a stalled branch must not hold the others, or memory, without bound); what that branch
    /// sends for them later is counted as late. `f64::INFINITY` never forces.
    pub fn force_lagging(&mut self, max_lag_s: f64) -> Vec<IntervalReport> {
        let newest = self.producers.iter().filter(|p| !p.ended).map(|p| p.watermark).fold(0.0, f64::max);
        let mut out = Vec::new();
        if !max_lag_s.is_finite() {
            return out;
        }
        while (self.next_index + 1) as f64 * self.interval <= newest - max_lag_s + 1e-9 {
            self.forced += 1;
            out.push(self.emit(self.next_index, None));
        }
        out
    }

    /// Media time up to which every producer has reported.
    pub fn watermark(&self) -> f64 {
        self.producers.iter().filter(|p| !p.ended).map(|p| p.watermark).fold(f64::INFINITY, f64::min)
    }

    /// True once every producer has ended.
    pub fn all_ended(&self) -> bool {
        self.producers.iter().all(|p| p.ended)
    }

    fn index_of(&self, t: f64) -> u64 {
        (t / self.interval + 1e-9).floor().max(0.0) as u64
    }

    /// Feeds one event; returns the intervals it completed, in order.
    pub fn push(&mut self, env: Envelope) -> Vec<IntervalReport> {
        let Some(p) = self.producers.get_mut(env.producer) else {
            log::error!("interval window: event from unknown producer {}", env.producer);
            return Vec::new();
        };
        match env.event {
            Event::Progress(t) => p.watermark = p.watermark.max(t),
            Event::End(t) => {
                p.ended = true;
                p.media_end = t;
            }
            Event::Obs(obs) => {
                let t = obs.time();
                let k = self.index_of(t);
                if k < self.next_index {
                    self.late += 1;
                    log::warn!("observation at {t:.3}s arrived after its interval was published");
                    return Vec::new();
                }
                if let Observation::Utterance(u) = &obs {
                    // An utterance counts in every interval it overlaps that is still open: as
                    // fusion tokens and in the text/voice summaries (weighted by the overlap).
                    let first = self.index_of(u.start).max(self.next_index);
                    let last = self.index_of((u.end - 1e-6).max(u.start)).max(k);
                    for j in first..=last {
                        self.pending.entry(j).or_default().text_tokens.push(u.clone());
                    }
                }
                let p = &mut self.producers[env.producer];
                let acc = self.pending.entry(k).or_default();
                match obs {
                    Observation::Frame(f) => {
                        acc.face.add(&f);
                        if f.face.as_ref().is_some_and(|face| face.new_customer) {
                            // The previous customer's face does not speak for the new one.
                            acc.face_tokens.clear();
                        }
                        if let Some(face) = &f.face {
                            acc.face_tokens.push(FaceToken::from_face(face, f.t as f32));
                        }
                        acc.frames += 1;
                        acc.dropped += f.dropped_before;
                        acc.luma_sum += f.luma_mean as f64;
                        p.media_end = p.media_end.max(f.t + self.frame_period);
                    }
                    Observation::Utterance(u) => {
                        p.media_end = p.media_end.max(u.end);
                    }
                    Observation::Audio(a) => {
                        acc.audio_samples += a.samples as u64;
                        acc.sum_sq += a.sum_sq;
                        acc.peak = acc.peak.max(a.peak);
                        p.media_end = p.media_end.max(a.t + a.samples as f64 / AUDIO_RATE as f64);
                    }
                }
            }
        }
        if self.all_ended() {
            return self.finish();
        }
        let wm = self.watermark();
        let mut out = Vec::new();
        while (self.next_index + 1) as f64 * self.interval <= wm + 1e-9 {
            out.push(self.emit(self.next_index, None));
        }
        out
    }

    /// Publishes everything still open, ending with a partial interval at the end of the media.
    /// Called when every producer has ended, or when the pipeline shuts down.
    pub fn finish(&mut self) -> Vec<IntervalReport> {
        let media_end = self.producers.iter().map(|p| p.media_end).fold(0.0, f64::max);
        let mut out = Vec::new();
        while (self.next_index as f64) * self.interval < media_end - 1e-9 {
            let end = (self.next_index + 1) as f64 * self.interval;
            let partial = (end > media_end + 1e-9).then_some(media_end);
            out.push(self.emit(self.next_index, partial));
        }
        out
    }

    fn emit(&mut self, k: u64, partial_end: Option<f64>) -> IntervalReport {
        let acc = self.pending.remove(&k).unwrap_or_default();
        self.next_index = k + 1;
        let start_s = k as f64 * self.interval;
        let end_s = partial_end.unwrap_or((k + 1) as f64 * self.interval);
        let has = |kind| self.producers.iter().any(|p| p.kind == kind);
        let video = has(ProducerKind::Video).then(|| VideoInput {
            frames: acc.frames,
            dropped: acc.dropped,
            luma_mean: (acc.frames > 0).then(|| acc.luma_sum / acc.frames as f64),
        });
        let audio = has(ProducerKind::Audio).then(|| {
            let n = acc.audio_samples;
            AudioInput {
                seconds: n as f64 / AUDIO_RATE as f64,
                rms_dbfs: (n > 0).then(|| dbfs((acc.sum_sq / n as f64).sqrt())),
                peak_dbfs: (n > 0).then(|| dbfs(acc.peak as f64)),
            }
        });
        let wall = |s: f64| rfc3339(self.session.wall_start + crate::source::secs_duration(s));
        let mut report = IntervalReport {
            schema: INTERVAL_SCHEMA.into(),
            device_id: self.session.device_id.clone(),
            session_id: self.session.session_id.clone(),
            seq: self.seq,
            interval: IntervalSpan {
                start_s,
                end_s,
                wall_start: wall(start_s),
                wall_end: wall(end_s),
                partial: partial_end.is_some(),
            },
            sentiment: None,
            incongruence: None,
            modalities: Modalities {
                face: self.session.face_labels.as_ref().map(|l| acc.face.summary(l, end_s - start_s)),
                text: has(ProducerKind::Speech).then(|| {
                    text_summary(&acc.text_tokens, self.session.publish_transcripts, (start_s, end_s))
                }),
                voice: (self.session.voice && has(ProducerKind::Speech))
                    .then(|| voice_summary(&acc.text_tokens, (start_s, end_s))),
            },
            fusion: None,
            inputs: Inputs { video, audio },
            models: self.session.models.clone(),
        };
        if let Some(fusion) = self.fusion.as_mut() {
            if acc.face.new_customer() {
                fusion.new_customer();
            }
            let span = (self.interval).max(1e-6);
            let rel = |t: f64| ((t - start_s) / span).clamp(0.0, 1.0) as f32;
            let toks = IntervalTokens {
                faces: acc.face_tokens.into_iter().map(|f| FaceToken { t: rel(f.t as f64), ..f }).collect(),
                texts: acc
                    .text_tokens
                    .iter()
                    .filter_map(|u| {
                        Some(TextToken {
                            probs: u.probs?,
                            embedding: u.embedding.clone()?,
                            t: rel((u.start.max(start_s) + u.end.min(end_s)) / 2.0),
                        })
                    })
                    .collect(),
                voices: acc
                    .text_tokens
                    .iter()
                    .filter_map(|u| {
                        let v = u.voice.as_ref()?;
                        Some(VoiceToken {
                            probs: v.probs.clone(),
                            quality: v.quality,
                            t: rel((u.start.max(start_s) + u.end.min(end_s)) / 2.0),
                        })
                    })
                    .collect(),
            };
            if let Some(alert) = fusion.apply(&mut report, &toks) {
                self.alerts.push(alert);
            }
        }
        self.seq += 1;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AudioObs, FrameObs};

    fn session() -> SessionInfo {
        SessionInfo {
            device_id: "d".into(),
            session_id: "s".into(),
            first_seq: 0,
            wall_start: SystemTime::UNIX_EPOCH,
            models: BTreeMap::new(),
            face_labels: None,
            publish_transcripts: false,
            voice: false,
        }
    }

    fn frame(t: f64) -> Envelope {
        Envelope {
            producer: 0,
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

    fn progress(p: usize, t: f64) -> Envelope {
        Envelope { producer: p, event: Event::Progress(t) }
    }

    fn audio(t: f64, n: usize, amp: f32) -> Envelope {
        Envelope {
            producer: 1,
            event: Event::Obs(Observation::Audio(AudioObs {
                t,
                samples: n,
                sum_sq: (amp as f64).powi(2) * n as f64,
                peak: amp,
            })),
        }
    }

    #[test]
    fn interval_waits_for_the_slowest_producer() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video, ProducerKind::Audio], session());
        for i in 0..25 {
            assert!(w.push(frame(i as f64 / 10.0)).is_empty() || i >= 10);
            w.push(progress(0, i as f64 / 10.0));
        }
        // Video is at 2.4 s but audio has said nothing: nothing can be published yet.
        assert!(w.push(progress(0, 2.4)).is_empty());
        let out = w.push(progress(1, 1.0));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].interval.start_s, out[0].interval.end_s, out[0].seq), (0.0, 1.0, 0));
        assert_eq!(out[0].inputs.video.as_ref().unwrap().frames, 10);
        assert_eq!(out[0].inputs.audio.as_ref().unwrap().seconds, 0.0);
        assert_eq!(out[0].inputs.audio.as_ref().unwrap().rms_dbfs, None);
    }

    #[test]
    fn end_of_stream_flushes_a_partial_last_interval() {
        let mut w = IntervalWindow::new(2.0, 10.0, &[ProducerKind::Video], session());
        let mut out = vec![];
        for i in 0..33 {
            out.extend(w.push(frame(i as f64 / 10.0)));
            out.extend(w.push(progress(0, i as f64 / 10.0)));
        }
        out.extend(w.push(Envelope { producer: 0, event: Event::End(3.3) }));
        let spans: Vec<(f64, f64, bool)> =
            out.iter().map(|r| (r.interval.start_s, r.interval.end_s, r.interval.partial)).collect();
        assert_eq!(spans, vec![(0.0, 2.0, false), (2.0, 3.3, true)]);
        assert_eq!(
            out.iter().map(|r| r.inputs.video.as_ref().unwrap().frames).collect::<Vec<_>>(),
            vec![20, 13]
        );
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(out[1].interval.wall_end, "1970-01-01T00:00:03.300Z");
    }

    #[test]
    fn the_declared_end_wins_over_the_last_sampled_frame() {
        // A 25 fps source sampled at 10 fps: the last analysed frame is at 2.92 s, the media ends at 3.0 s.
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video], session());
        w.push(frame(2.92));
        let out = w.push(Envelope { producer: 0, event: Event::End(3.0) });
        assert_eq!(out.len(), 3);
        assert_eq!((out[2].interval.end_s, out[2].interval.partial), (3.0, false));
    }

    #[test]
    fn empty_intervals_are_still_published() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video, ProducerKind::Audio], session());
        w.push(frame(0.0));
        w.push(progress(0, 5.0));
        let out = w.push(progress(1, 5.0));
        assert_eq!(out.len(), 5);
        assert_eq!(out[3].inputs.video.as_ref().unwrap().frames, 0);
        assert_eq!(out[3].inputs.video.as_ref().unwrap().luma_mean, None);
    }

    #[test]
    fn audio_levels_are_measured() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video, ProducerKind::Audio], session());
        w.push(audio(0.0, 16000, 0.5));
        w.push(Envelope { producer: 0, event: Event::End(0.0) });
        let out = w.push(Envelope { producer: 1, event: Event::End(1.0) });
        let a = out[0].inputs.audio.as_ref().unwrap();
        assert_eq!(a.seconds, 1.0);
        assert!((a.rms_dbfs.unwrap() - (-6.0206)).abs() < 1e-3);
        assert!((a.peak_dbfs.unwrap() - (-6.0206)).abs() < 1e-3);
    }

    #[test]
    fn late_observations_are_counted_not_misfiled() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video], session());
        w.push(frame(0.0));
        assert_eq!(w.push(progress(0, 1.5)).len(), 1);
        w.push(frame(0.5));
        assert_eq!(w.late_observations(), 1);
    }

    #[test]
    fn a_stalled_branch_holds_the_others_only_up_to_the_lag_bound() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video, ProducerKind::Audio], session());
        // Audio runs on to 40 s; video stalls at 0: nothing is complete yet.
        assert!(w.push(progress(1, 40.0)).is_empty());
        assert!(w.force_lagging(f64::INFINITY).is_empty(), "a replay waits");
        let forced = w.force_lagging(30.0);
        assert_eq!(forced.len(), 10, "intervals ending by 40 - 30 s are published");
        assert_eq!(w.forced_intervals(), 10);
        assert!(w.pending.keys().all(|&k| k >= 10));
        // The stalled branch's late frame is counted, not filed into a published interval.
        w.push(frame(3.0));
        assert_eq!(w.late_observations(), 1);
    }

    #[test]
    fn an_utterance_is_a_fusion_token_in_every_interval_it_overlaps() {
        use crate::message::UtteranceObs;
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Speech], session());
        let utt = UtteranceObs {
            seq: 0,
            start: 0.6,
            end: 2.2,
            text: "hello".into(),
            probs: Some([0.1, 0.8, 0.1]),
            embedding: Some(vec![0.0; 4]),
            voice: None,
        };
        w.push(Envelope { producer: 0, event: Event::Obs(Observation::Utterance(utt)) });
        let pending: Vec<(u64, usize)> = w.pending.iter().map(|(k, a)| (*k, a.text_tokens.len())).collect();
        assert_eq!(pending, vec![(0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn a_long_utterance_is_speech_in_each_interval_it_spans_never_more_than_the_interval() {
        use crate::message::UtteranceObs;
        // The peer benchmark's case: five sentences merged into one 14.4 s utterance.
        let mut w = IntervalWindow::new(5.0, 10.0, &[ProducerKind::Speech], session());
        let words = "one two three four five six seven eight nine ten eleven twelve";
        let utt = UtteranceObs {
            seq: 0,
            start: 13.0,
            end: 27.4,
            text: words.into(),
            probs: Some([0.1, 0.8, 0.1]),
            embedding: Some(vec![0.0; 4]),
            voice: None,
        };
        w.push(Envelope { producer: 0, event: Event::Obs(Observation::Utterance(utt)) });
        let mut out = w.push(Envelope { producer: 0, event: Event::End(30.0) });
        out.retain(|r| r.interval.start_s >= 10.0);
        let got: Vec<(f64, f64, bool, u64)> = out
            .iter()
            .map(|r| {
                let t = r.modalities.text.as_ref().unwrap();
                (r.interval.start_s, t.speech_s, t.present, t.words)
            })
            .collect();
        assert_eq!(
            got,
            vec![(10.0, 2.0, true, 2), (15.0, 5.0, true, 4), (20.0, 5.0, true, 4), (25.0, 2.4, true, 2)]
        );
        let total: f64 = got.iter().map(|g| g.1).sum();
        assert!((total - 14.4).abs() < 1e-9, "{total}");
    }

    #[test]
    fn nothing_in_nothing_out() {
        let mut w = IntervalWindow::new(1.0, 10.0, &[ProducerKind::Video], session());
        assert!(w.push(Envelope { producer: 0, event: Event::End(0.0) }).is_empty());
    }

    #[test]
    fn published_transcripts_carry_no_personal_data_and_none_without_opt_in() {
        let utt = |start: f64, text: &str| crate::message::UtteranceObs {
            seq: 0,
            start,
            end: start + 2.0,
            text: text.into(),
            probs: Some([0.1, 0.8, 0.1]),
            embedding: None,
            voice: None,
        };
        let utts = [
            utt(0.0, "Great, thanks. Mail me at jane.doe@example.com or call (555) 123-4567."),
            utt(2.5, "My card is 4111 1111 1111 1111 and I live at 221B Baker Street."),
            utt(5.0, "The code is five five five one two three four."),
        ];
        let t = text_summary(&utts, true, (0.0, 10.0));
        let all = serde_json::to_string(&t).unwrap();
        for leak in ["jane", "example.com", "555", "4567", "4111", "Baker", "five five"] {
            assert!(!all.contains(leak), "`{leak}` published: {all}");
        }
        let transcript = t.transcript.unwrap();
        for tag in ["[email]", "[phone]", "[card]", "[address]"] {
            assert!(transcript.contains(tag), "{tag} missing: {transcript}");
        }
        assert!(transcript.starts_with("Great, thanks."), "{transcript}");
        let segs = t.segments.unwrap();
        assert_eq!(segs.len(), 3);
        assert!(segs.iter().all(|g| !g.text.contains("4111") && !g.text.contains("jane")));
        // Off by default: no words at all, only counts.
        let off = text_summary(&utts, false, (0.0, 10.0));
        assert!(off.transcript.is_none() && off.segments.is_none());
        assert!(!serde_json::to_string(&off).unwrap().contains("thanks"));
        assert_eq!(off.words, t.words);
    }
}
