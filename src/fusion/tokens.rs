//! Modality tokens: the fixed-width vectors the fusion head attends over. One token per analysed
//! frame with a face, one per utterance's words and one per utterance's voice. The layout is part
//! of the model's contract: the head's manifest entry names it (`token_layout`) and loading fails
//! when it is neither [`LAYOUT`] nor [`LAYOUT_V1`] (a v1 head sees no voice tokens).

/// Expression classes in a face token (the expression model's label order).
pub const FACE_CLASSES: usize = 7;
/// Text sentiment classes in a text token (negative, neutral, positive).
pub const TEXT_CLASSES: usize = 3;
/// Sentence-embedding width in a text token.
pub const TEXT_EMBEDDING: usize = 384;
/// Voice emotion classes in a voice token (the voice head's label order).
pub const VOICE_CLASSES: usize = 8;
/// Width of one token.
pub const TOKEN_DIM: usize = 409;
/// Width of one token in the v1 layout (no voice columns).
pub const TOKEN_DIM_V1: usize = 400;
/// Most tokens one interval can hold (padding fills the rest; the mask hides it).
pub const MAX_TOKENS: usize = 64;
/// Most face tokens per interval; more frames are subsampled evenly.
pub const MAX_FACE_TOKENS: usize = 48;
/// Most text tokens per interval (the latest utterances are kept).
pub const MAX_TEXT_TOKENS: usize = 16;
/// Most voice tokens per interval (the latest utterances are kept).
pub const MAX_VOICE_TOKENS: usize = 8;
/// Additive attention bias of a padding slot.
pub const PAD_BIAS: f32 = -1.0e4;
/// Layout identifier the head's manifest entry must carry.
pub const LAYOUT: &str = "v2: face_probs[0..7] face_quality[7] text_probs[8..11] text_emb[11..395] modality_onehot[395..398] sin_t[398] cos_t[399] voice_probs[400..408] voice_quality[408]";
/// The previous layout (no voice): a head trained on it still loads and sees faces and words.
pub const LAYOUT_V1: &str =
    "v1: face_probs[0..7] face_quality[7] text_probs[8..11] text_emb[11..395] modality_onehot[395..398] sin_t[398] cos_t[399]";

const FACE_Q: usize = 7;
const TEXT_P: usize = 8;
const TEXT_E: usize = 11;
const MODALITY: usize = 395;
const TIME: usize = 398;
const VOICE_P: usize = 400;
const VOICE_Q: usize = 408;

/// The modalities a token can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// A face in one analysed frame.
    Face,
    /// One utterance's words.
    Text,
    /// How one utterance was said (the voice stage).
    Voice,
}

impl Modality {
    /// Every modality, in report order.
    pub const ALL: [Modality; 3] = [Modality::Face, Modality::Voice, Modality::Text];

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Face => "face",
            Modality::Text => "text",
            Modality::Voice => "voice",
        }
    }
}

/// One face observation as the head sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceToken {
    /// Calibrated expression probabilities in the model's label order.
    pub probs: Vec<f32>,
    /// Quality weight in (0, 1]: how much this frame can be trusted (presence, size, pose).
    pub quality: f32,
    /// Position in the interval, 0 = start, 1 = end.
    pub t: f32,
}

impl FaceToken {
    /// The token of a face seen in a frame at interval position `t`.
    pub fn from_face(f: &crate::message::FaceObs, t: f32) -> FaceToken {
        FaceToken {
            probs: f.expression.clone(),
            quality: face_quality(f.presence, f.cues.face_size, f.cues.yaw_deg, f.cues.pitch_deg),
            t,
        }
    }
}

/// One utterance as the head sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextToken {
    /// Text sentiment probabilities (negative, neutral, positive).
    pub probs: [f32; 3],
    /// Sentence embedding (384-d, L2-normalised).
    pub embedding: Vec<f32>,
    /// Position of the utterance's midpoint in the interval, 0 = start, 1 = end.
    pub t: f32,
}

/// One utterance's voice as the head sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceToken {
    /// Calibrated voice-emotion probabilities in the voice head's label order.
    pub probs: Vec<f32>,
    /// Quality weight in (0, 1] (grows with the utterance's length).
    pub quality: f32,
    /// Position of the utterance's midpoint in the interval, 0 = start, 1 = end.
    pub t: f32,
}

/// The tokens of one interval (or one evaluation pair).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntervalTokens {
    /// Face tokens in time order.
    pub faces: Vec<FaceToken>,
    /// Text tokens in time order.
    pub texts: Vec<TextToken>,
    /// Voice tokens in time order.
    pub voices: Vec<VoiceToken>,
}

/// The head's inputs: `tokens` is `MAX_TOKENS × TOKEN_DIM` row-major; `bias` the additive
/// attention bias per slot (ln quality for a token, [`PAD_BIAS`] for padding); `modality` the
/// source of each used slot; `present` = (face, text, voice) presence flags.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadInput {
    /// Token matrix, row-major.
    pub tokens: Vec<f32>,
    /// Attention bias per slot.
    pub bias: Vec<f32>,
    /// Modality of each used slot, in slot order.
    pub modality: Vec<Modality>,
    /// Presence flags (face, text, voice) fed to the head.
    pub present: [f32; 3],
}

/// Indices of `k` of `n` items spread evenly (all of them when `n <= k`).
pub fn spread(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    (0..k).map(|i| ((i as f64 + 0.5) * n as f64 / k as f64).floor() as usize).collect()
}

impl IntervalTokens {
    /// True when no modality contributed a token.
    pub fn is_empty(&self) -> bool {
        self.faces.is_empty() && self.texts.is_empty() && self.voices.is_empty()
    }

    /// Keeps only the tokens of `keep` (used for the per-modality ablations).
    pub fn only(&self, keep: Modality) -> IntervalTokens {
        self.keep(&[keep])
    }

    /// Keeps only the tokens of the modalities in `keep`.
    pub fn keep(&self, keep: &[Modality]) -> IntervalTokens {
        IntervalTokens {
            faces: if keep.contains(&Modality::Face) { self.faces.clone() } else { vec![] },
            texts: if keep.contains(&Modality::Text) { self.texts.clone() } else { vec![] },
            voices: if keep.contains(&Modality::Voice) { self.voices.clone() } else { vec![] },
        }
    }

    /// Lays the tokens out for the head (faces subsampled to [`MAX_FACE_TOKENS`], the latest
    /// [`MAX_TEXT_TOKENS`] utterances).
    pub fn to_input(&self) -> HeadInput {
        let mut tokens = vec![0.0f32; MAX_TOKENS * TOKEN_DIM];
        let mut bias = vec![PAD_BIAS; MAX_TOKENS];
        let mut modality = Vec::new();
        let mut slot = 0;
        let time = |row: &mut [f32], t: f32| {
            let t = t.clamp(0.0, 1.0);
            row[TIME] = (std::f32::consts::PI * t).sin();
            row[TIME + 1] = (std::f32::consts::PI * t).cos();
        };
        for i in spread(self.faces.len(), MAX_FACE_TOKENS) {
            let f = &self.faces[i];
            let row = &mut tokens[slot * TOKEN_DIM..(slot + 1) * TOKEN_DIM];
            for (d, p) in row[..FACE_CLASSES].iter_mut().zip(&f.probs) {
                *d = *p;
            }
            let q = f.quality.clamp(1e-3, 1.0);
            row[FACE_Q] = q;
            row[MODALITY] = 1.0;
            time(row, f.t);
            bias[slot] = q.ln();
            modality.push(Modality::Face);
            slot += 1;
        }
        let skip = self.texts.len().saturating_sub(MAX_TEXT_TOKENS);
        for u in &self.texts[skip..] {
            let row = &mut tokens[slot * TOKEN_DIM..(slot + 1) * TOKEN_DIM];
            row[TEXT_P..TEXT_P + TEXT_CLASSES].copy_from_slice(&u.probs);
            for (d, e) in row[TEXT_E..TEXT_E + TEXT_EMBEDDING].iter_mut().zip(&u.embedding) {
                *d = *e;
            }
            row[MODALITY + 1] = 1.0;
            time(row, u.t);
            bias[slot] = 0.0;
            modality.push(Modality::Text);
            slot += 1;
        }
        let skip = self.voices.len().saturating_sub(MAX_VOICE_TOKENS);
        for v in &self.voices[skip..] {
            let row = &mut tokens[slot * TOKEN_DIM..(slot + 1) * TOKEN_DIM];
            for (d, p) in row[VOICE_P..VOICE_P + VOICE_CLASSES].iter_mut().zip(&v.probs) {
                *d = *p;
            }
            let q = v.quality.clamp(1e-3, 1.0);
            row[VOICE_Q] = q;
            row[MODALITY + 2] = 1.0;
            time(row, v.t);
            bias[slot] = q.ln();
            modality.push(Modality::Voice);
            slot += 1;
        }
        let flag = |b: bool| b as u8 as f32;
        let present =
            [flag(!self.faces.is_empty()), flag(!self.texts.is_empty()), flag(!self.voices.is_empty())];
        HeadInput { tokens, bias, modality, present }
    }
}

/// Quality weight of a face in a frame: face presence × size factor (full weight from 15 % of
/// the frame height) × pose factor (cos of yaw and pitch beyond 15°).
pub fn face_quality(presence: f32, face_size: f32, yaw_deg: f32, pitch_deg: f32) -> f32 {
    let size = (face_size / 0.15).clamp(0.1, 1.0);
    let off = |deg: f32| (deg.abs() - 15.0).max(0.0).to_radians().cos().max(0.1);
    (presence.clamp(0.0, 1.0) * size * off(yaw_deg) * off(pitch_deg)).clamp(1e-3, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(p: f32, q: f32) -> FaceToken {
        FaceToken { probs: vec![p; FACE_CLASSES], quality: q, t: 0.0 }
    }

    #[test]
    fn layout_places_each_modality_and_masks_padding() {
        let toks = IntervalTokens {
            faces: vec![face(0.1, 0.5)],
            texts: vec![TextToken { probs: [0.2, 0.3, 0.5], embedding: vec![0.01; TEXT_EMBEDDING], t: 1.0 }],
            voices: vec![VoiceToken { probs: vec![0.125; VOICE_CLASSES], quality: 0.25, t: 0.5 }],
        };
        let inp = toks.to_input();
        assert_eq!(inp.modality, vec![Modality::Face, Modality::Text, Modality::Voice]);
        assert_eq!(inp.present, [1.0, 1.0, 1.0]);
        let row2 = &inp.tokens[2 * TOKEN_DIM..3 * TOKEN_DIM];
        assert_eq!(&row2[400..408], &[0.125; 8]);
        assert_eq!((row2[408], row2[395], row2[396], row2[397]), (0.25, 0.0, 0.0, 1.0));
        assert!((inp.bias[2] - 0.25f32.ln()).abs() < 1e-6);
        assert!(row2[..395].iter().all(|&v| v == 0.0), "a voice token holds no face or text values");
        assert_eq!(toks.only(Modality::Voice).to_input().present, [0.0, 0.0, 1.0]);
        assert!((inp.bias[0] - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(inp.bias[1], 0.0);
        assert!(inp.bias[3..].iter().all(|&b| b == PAD_BIAS));
        let row1 = &inp.tokens[TOKEN_DIM..2 * TOKEN_DIM];
        assert_eq!(&row1[8..11], &[0.2, 0.3, 0.5]);
        assert_eq!((row1[395], row1[396], row1[397]), (0.0, 1.0, 0.0));
        assert!(row1[398].abs() < 1e-6 && (row1[399] + 1.0).abs() < 1e-6, "t = 1 → sin 0, cos -1");
        let row0 = &inp.tokens[..TOKEN_DIM];
        assert_eq!((row0[7], row0[395]), (0.5, 1.0));
        assert!(inp.tokens[3 * TOKEN_DIM..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn many_frames_are_subsampled_and_old_utterances_dropped() {
        let toks = IntervalTokens {
            faces: (0..100).map(|_| face(0.1, 1.0)).collect(),
            texts: (0..20)
                .map(|i| TextToken { probs: [i as f32, 0.0, 0.0], embedding: vec![], t: 0.5 })
                .collect(),
            voices: vec![],
        };
        let inp = toks.to_input();
        assert_eq!(inp.modality.len(), MAX_FACE_TOKENS + MAX_TEXT_TOKENS);
        let first_text = &inp.tokens[MAX_FACE_TOKENS * TOKEN_DIM..];
        assert_eq!(first_text[8], 4.0, "the 16 latest of 20 utterances are kept");
        assert_eq!(spread(10, 4), vec![1, 3, 6, 8]);
        assert_eq!(spread(3, 4), vec![0, 1, 2]);
    }

    #[test]
    fn quality_falls_with_small_turned_faces() {
        assert_eq!(face_quality(1.0, 0.3, 0.0, 0.0), 1.0);
        assert!((face_quality(1.0, 0.075, 0.0, 0.0) - 0.5).abs() < 1e-6);
        assert!((face_quality(1.0, 0.3, 75.0, 0.0) - 0.5).abs() < 1e-4, "60° past 15° → cos 60° = 0.5");
        assert!(face_quality(0.0, 0.0, 90.0, 90.0) >= 1e-3);
    }
}
