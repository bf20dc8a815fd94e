//! The `modalities.voice` and `modalities.text` summaries of an interval's utterances (the face
//! summary is `vision::FaceAcc::summary`). An utterance counts in every interval it overlaps,
//! weighted by the seconds it overlaps: a 14 s utterance over three 5 s intervals is speech in
//! each of them, never 14 s of speech in one.

use crate::message::{TextSegment, TextSummary, UtteranceObs, VoiceEmotion, VoiceSummary};

/// Seconds of `u` inside `span` (media time, start..end).
fn overlap(u: &UtteranceObs, span: (f64, f64)) -> f64 {
    (u.end.min(span.1) - u.start.max(span.0)).max(0.0)
}

/// An utterance's weight in the interval `span`: its overlap, at least 10 ms.
fn weight_of(u: &UtteranceObs, span: (f64, f64)) -> f64 {
    overlap(u, span).max(0.01)
}

/// The `modalities.voice` object: utterances with a voice estimate overlapping the interval `span`
/// and their overlap-weighted voice emotion (`emotion` over the eight classes, `sentiment` folded to
/// negative/neutral/positive, `negative` probability and `valence`); `sentiment` etc. are null
/// when no utterance has one.
pub fn voice_summary(utts: &[UtteranceObs], span: (f64, f64)) -> VoiceSummary {
    use crate::audio::voice::LABELS as EMOTIONS;
    use crate::labels::{argmax, round4 as r, sentiment_of};
    let mut probs = [0.0f64; EMOTIONS.len()];
    let mut sent = [0.0f64; 3];
    let (mut weight, mut n) = (0.0, 0u64);
    for u in utts {
        if let Some(v) = &u.voice {
            let w = weight_of(u, span);
            for (acc, p) in probs.iter_mut().zip(&v.probs) {
                *acc += *p as f64 * w;
            }
            for (acc, p) in sent.iter_mut().zip(&v.sentiment) {
                *acc += *p as f64 * w;
            }
            weight += w;
            n += 1;
        }
    }
    if weight == 0.0 {
        return VoiceSummary::default();
    }
    let p: Vec<f64> = probs.iter().map(|v| v / weight).collect();
    let s = sent.map(|v| v / weight);
    let best = argmax(&p, 0);
    VoiceSummary {
        emotion: Some(VoiceEmotion {
            confidence: r(p[best]),
            label: EMOTIONS[best].to_string(),
            probs: EMOTIONS.iter().zip(&p).map(|(l, v)| (l.to_string(), r(*v))).collect(),
        }),
        negative: Some(r(s[0])),
        present: true,
        sentiment: Some(sentiment_of(s)),
        utterances: n,
        valence: Some(r(s[2] - s[0])),
    }
}

/// The `modalities.text` object: utterances overlapping the interval `span`, the seconds of
/// speech inside it, their words in proportion to that overlap, their overlap-weighted text
/// sentiment (null when none was estimated), and — only when opted in — the redacted transcript
/// and its utterances with media-time start/end (`segments`; whole utterances).
pub fn text_summary(utts: &[UtteranceObs], publish_transcripts: bool, span: (f64, f64)) -> TextSummary {
    use crate::labels::{round4 as r, sentiment_of};
    let mut probs = [0.0f64; 3];
    let mut weight = 0.0;
    for u in utts {
        if let Some(p) = u.probs {
            let w = weight_of(u, span);
            for k in 0..3 {
                probs[k] += p[k] as f64 * w;
            }
            weight += w;
        }
    }
    let sentiment = (weight > 0.0).then(|| sentiment_of(probs.map(|v| v / weight)));
    let (transcript, segments) = if publish_transcripts && !utts.is_empty() {
        let redacted: Vec<String> = utts.iter().map(|u| crate::text::redact::redact(u.text.trim())).collect();
        let segments = utts
            .iter()
            .zip(&redacted)
            .map(|(u, t)| TextSegment { end_s: r(u.end), start_s: r(u.start), text: t.clone() })
            .collect();
        (Some(redacted.join(" ")), Some(segments))
    } else {
        (None, None)
    };
    TextSummary {
        present: !utts.is_empty(),
        segments,
        sentiment,
        // `+ 0.0`: an empty f64 sum is -0.0.
        speech_s: r(utts.iter().map(|u| overlap(u, span)).sum::<f64>() + 0.0),
        transcript,
        utterances: utts.len() as u64,
        words: utts
            .iter()
            .map(|u| {
                let share = if u.end > u.start { overlap(u, span) / (u.end - u.start) } else { 1.0 };
                (u.text.split_whitespace().count() as f64 * share).round() as u64
            })
            .sum(),
    }
}
