//! The fusion step of the interval window: fills an interval report's `sentiment`,
//! `incongruence` and `fusion` from its tokens, and debounces the unexpressed-dissatisfaction
//! alert ([`AlertTracker`]).

use super::head::FusionHead;
use super::tokens::{IntervalTokens, Modality};
use crate::config::FusionConfig;
use crate::message::{AlertMessage, FusionInfo, Incongruence, IntervalReport, ALERT_SCHEMA};
use std::collections::BTreeMap;

/// Debounce state of the alert: fires after `after` consecutive flagged intervals, then stays
/// quiet until `rearm` consecutive unflagged intervals have passed.
#[derive(Debug, Clone)]
pub struct AlertTracker {
    after: u32,
    rearm: u32,
    armed: bool,
    run: Vec<(u64, f64, f64, f64)>,
    quiet: u32,
}

/// The intervals that raised an alert: (seq, start_s, end_s, probability) each.
pub type AlertRun = Vec<(u64, f64, f64, f64)>;

impl AlertTracker {
    /// A tracker firing after `after` flagged intervals in a row, re-armed by `rearm` unflagged ones.
    pub fn new(after: u32, rearm: u32) -> Self {
        AlertTracker { after: after.max(1), rearm: rearm.max(1), armed: true, run: Vec::new(), quiet: 0 }
    }

    /// Feeds one interval (`probability` None = not assessable, counts as unflagged); returns
    /// the run of intervals when this one raises the alert.
    pub fn observe(
        &mut self,
        seq: u64,
        start: f64,
        end: f64,
        probability: Option<f64>,
        threshold: f64,
    ) -> Option<AlertRun> {
        match probability.filter(|p| *p >= threshold) {
            Some(p) => {
                self.quiet = 0;
                self.run.push((seq, start, end, p));
                if self.armed && self.run.len() >= self.after as usize {
                    self.armed = false;
                    let n = self.run.len();
                    return Some(self.run[n - self.after as usize..].to_vec());
                }
            }
            None => {
                self.run.clear();
                self.quiet += 1;
                if !self.armed && self.quiet >= self.rearm {
                    self.armed = true;
                }
            }
        }
        None
    }
}

/// The fusion head with its configuration, applied to every completed interval.
#[derive(Debug)]
pub struct FusionStage {
    head: FusionHead,
    version: String,
    threshold: f32,
    alert_after: u32,
    alert_rearm_after: u32,
    alerts: AlertTracker,
    /// Redacted transcripts of recent intervals, by seq (kept only when transcripts are published).
    recent_words: Vec<(u64, String)>,
}

impl FusionStage {
    /// The fusion stage a config asks for: `None` when `fusion.enabled` is off or no model stage
    /// (faces with `face_labels`, or words when `has_text`) feeds it; the head is loaded and
    /// checked against the face labels here.
    pub fn from_config(
        cfg: &crate::config::Config,
        face_labels: Option<&[String]>,
        has_text: bool,
    ) -> crate::Result<Option<Self>> {
        if !cfg.fusion.enabled || (face_labels.is_none() && !has_text) {
            return Ok(None);
        }
        let (path, entry) = crate::model::locate(&cfg.models.dir, super::head::HEAD, cfg.models.verify)?;
        let version = entry.version();
        let h = FusionHead::load(&path, &entry, face_labels)?;
        Ok(Some(Self::new(h, version, &cfg.fusion)))
    }

    /// A stage running `head` (`version` = `file@sha256-prefix`) with `cfg`'s threshold and debounce.
    pub fn new(head: FusionHead, version: String, cfg: &FusionConfig) -> Self {
        FusionStage {
            head,
            version,
            threshold: cfg.incongruence_threshold,
            alert_after: cfg.alert_after,
            alert_rearm_after: cfg.alert_rearm_after,
            alerts: AlertTracker::new(cfg.alert_after, cfg.alert_rearm_after),
            recent_words: Vec::new(),
        }
    }

    /// The head's version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Another customer arrived: the alert debounce starts over (a run of flagged intervals
    /// never spans two people) and the previous customer's words are forgotten.
    pub fn new_customer(&mut self) {
        self.alerts = AlertTracker::new(self.alert_after, self.alert_rearm_after);
        self.recent_words.clear();
    }

    /// Fills `report` from `toks`; returns an alert when this interval raises one. An inference
    /// failure is logged and leaves the fused fields null (the interval is still published).
    pub fn apply(&mut self, report: &mut IntervalReport, toks: &IntervalTokens) -> Option<AlertMessage> {
        let r = crate::labels::round4;
        let fused = match self.head.predict(toks) {
            Ok(f) => f,
            Err(e) => {
                log::error!("fusion: interval {}: {e}", report.seq);
                None
            }
        };
        let video = report.inputs.video.is_some();
        let audio = report.inputs.audio.is_some();
        let mut missing = BTreeMap::new();
        if toks.faces.is_empty() {
            let why = if !video {
                "no video source"
            } else if report.modalities.face.is_none() {
                "vision models off"
            } else {
                "no face in view"
            };
            missing.insert("face".to_string(), why.to_string());
        }
        if toks.texts.is_empty() {
            let why = if !audio {
                "no audio source"
            } else if report.modalities.text.is_none() {
                "speech or text stage off"
            } else {
                "nobody spoke"
            };
            missing.insert("text".to_string(), why.to_string());
        }
        if toks.voices.is_empty() || !self.head.hears_voice() {
            let why = if !toks.voices.is_empty() {
                // Voices were heard, but this head cannot take them.
                "the fusion head was trained without voice (token layout v1)"
            } else if !audio {
                "no audio source"
            } else if report.modalities.voice.is_none() {
                "speech or voice stage off"
            } else if !self.head.hears_voice() {
                "the fusion head was trained without voice (token layout v1)"
            } else {
                "nobody spoke"
            };
            missing.insert("voice".to_string(), why.to_string());
        }
        let attention: BTreeMap<String, f64> = Modality::ALL
            .iter()
            .map(|m| {
                (
                    m.name().to_string(),
                    r(fused.as_ref().and_then(|f| f.attention.get(m)).copied().unwrap_or(0.0) as f64),
                )
            })
            .collect();
        let tokens: BTreeMap<String, u64> = [
            ("face".to_string(), toks.faces.len() as u64),
            ("text".to_string(), toks.texts.len() as u64),
            ("voice".to_string(), if self.head.hears_voice() { toks.voices.len() as u64 } else { 0 }),
        ]
        .into_iter()
        .collect();
        report.fusion = Some(FusionInfo { attention, tokens, missing, model: self.version.clone() });
        // Incongruence needs words to contradict and a face or a voice to contradict them.
        let nonverbal = !toks.faces.is_empty() || (self.head.hears_voice() && !toks.voices.is_empty());
        let both = nonverbal && !toks.texts.is_empty();
        if let Some(f) = &fused {
            let p = f.probs.map(|v| v as f64);
            report.sentiment = Some(crate::labels::sentiment_of(p));
            if both {
                report.incongruence = Some(Incongruence {
                    probability: r(f.incongruence as f64),
                    flag: f.incongruence >= self.threshold,
                });
            }
        }
        let words = report.modalities.text.as_ref().and_then(|t| t.transcript.clone());
        if let Some(w) = words.filter(|w| !w.is_empty()) {
            self.recent_words.push((report.seq, w));
        }
        let prob = report.incongruence.as_ref().map(|i| i.probability);
        let run = self.alerts.observe(
            report.seq,
            report.interval.start_s,
            report.interval.end_s,
            prob,
            self.threshold as f64,
        );
        let keep_from = report.seq.saturating_sub(64);
        self.recent_words.retain(|(s, _)| *s >= keep_from);
        let run = run?;
        let seqs: Vec<u64> = run.iter().map(|x| x.0).collect();
        let transcript: Vec<&str> =
            self.recent_words.iter().filter(|(s, _)| seqs.contains(s)).map(|(_, w)| w.as_str()).collect();
        Some(AlertMessage {
            schema: ALERT_SCHEMA.into(),
            device_id: report.device_id.clone(),
            session_id: report.session_id.clone(),
            kind: "unexpressed_dissatisfaction".into(),
            intervals: seqs,
            start_s: run[0].1,
            end_s: run[run.len() - 1].2,
            wall: report.interval.wall_end.clone(),
            probability: r(run.iter().map(|x| x.3).sum::<f64>() / run.len() as f64),
            threshold: self.threshold as f64,
            sentiment: report.sentiment.clone(),
            face: report.modalities.face.as_ref().and_then(|f| f.dominant.clone()),
            voice: report.modalities.voice.as_ref().and_then(|v| Some(v.emotion.as_ref()?.label.clone())),
            words: report.modalities.text.as_ref().and_then(|t| Some(t.sentiment.as_ref()?.label.clone())),
            transcript: (!transcript.is_empty()).then(|| transcript.join(" ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_fires_after_n_consecutive_and_rearms_after_quiet() {
        let mut a = AlertTracker::new(2, 2);
        let mut fired = vec![];
        let probs = [0.9, 0.2, 0.8, 0.7, 0.9, 0.95, 0.1, 0.8, 0.9, 0.1, 0.1, 0.6, 0.7];
        for (i, p) in probs.iter().enumerate() {
            if let Some(run) = a.observe(i as u64, i as f64 * 5.0, (i + 1) as f64 * 5.0, Some(*p), 0.5) {
                fired.push(run.iter().map(|x| x.0).collect::<Vec<_>>());
            }
        }
        // 0 alone: no alert. 2,3: alert. 4,5 continue the same episode: quiet. 6 (one low) does
        // not re-arm (needs 2), so 7,8 stay quiet. 9,10 re-arm; 11,12 fire again.
        assert_eq!(fired, vec![vec![2, 3], vec![11, 12]]);
    }

    #[test]
    fn unassessable_intervals_break_a_run() {
        let mut a = AlertTracker::new(2, 1);
        assert!(a.observe(0, 0.0, 5.0, Some(0.9), 0.5).is_none());
        assert!(a.observe(1, 5.0, 10.0, None, 0.5).is_none());
        assert!(a.observe(2, 10.0, 15.0, Some(0.9), 0.5).is_none());
        let run = a.observe(3, 15.0, 20.0, Some(0.7), 0.5).unwrap();
        assert_eq!(run, vec![(2, 10.0, 15.0, 0.9), (3, 15.0, 20.0, 0.7)]);
        let mut one = AlertTracker::new(1, 1);
        assert!(one.observe(0, 0.0, 1.0, Some(0.5), 0.5).is_some(), "at the threshold counts");
    }
}
