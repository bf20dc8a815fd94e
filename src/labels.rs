//! Labels and calibration shared by every model stage: the three sentiment classes, the
//! temperature-scaled softmax, the 4-decimal rounding of published values, and the one way a
//! probability triple becomes a published [`Sentiment`].

use crate::message::Sentiment;

/// The sentiment classes, in the order every model and message uses.
pub const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];

/// softmax(logits / t), computed stably (the largest scaled logit is subtracted first).
pub fn softmax_t(logits: &[f32], t: f32) -> Vec<f32> {
    let m = logits.iter().fold(f32::MIN, |a, &b| a.max(b / t));
    let e: Vec<f32> = logits.iter().map(|&l| (l / t - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// [`softmax_t`] of exactly three logits (negative, neutral, positive).
pub fn softmax3(logits: &[f32], t: f32) -> [f32; 3] {
    let p = softmax_t(&logits[..3], t);
    [p[0], p[1], p[2]]
}

/// Rounds a published value to 4 decimals.
pub fn round4(v: f64) -> f64 {
    (v * 10000.0).round() / 10000.0
}

/// Index of the largest value (the last one on ties; `fallback` for an empty slice).
pub fn argmax(p: &[f64], fallback: usize) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(fallback)
}

/// The published sentiment of (negative, neutral, positive) probabilities: the most probable
/// label, score P(positive) − P(negative), the probabilities and the label's as confidence,
/// rounded to 4 decimals.
pub fn sentiment_of(p: [f64; 3]) -> Sentiment {
    let k = argmax(&p, 1);
    Sentiment {
        label: SENTIMENTS[k].to_string(),
        score: round4((p[2] - p[0]).clamp(-1.0, 1.0)),
        probs: SENTIMENTS.iter().zip(p).map(|(l, v)| (l.to_string(), round4(v))).collect(),
        confidence: round4(p[k]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_with_temperature() {
        let p = softmax_t(&[1.0, 2.0, 3.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
        let hot = softmax3(&[1.0, 2.0, 3.0], 2.0);
        assert!(hot[2] < p[2], "a higher temperature flattens");
        let big = softmax3(&[1000.0, 0.0, -1000.0], 1.0);
        assert!((big[0] - 1.0).abs() < 1e-6 && big.iter().all(|v| v.is_finite()));
        let q = softmax_t(&[0.8f32.ln(), 0.2f32.ln()], 1.0);
        assert!((q[0] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn a_probability_triple_becomes_a_sentiment() {
        let s = sentiment_of([0.1, 0.2, 0.7]);
        assert_eq!(s.label, "positive");
        assert_eq!(s.score, 0.6);
        assert_eq!(s.confidence, 0.7);
        assert_eq!(s.probs["neutral"], 0.2);
        assert_eq!(sentiment_of([0.5, 0.25, 0.25]).label, "negative");
        assert_eq!(round4(0.123456), 0.1235);
    }
}
