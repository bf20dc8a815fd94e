//! `affectd eval make-pairs`: the deterministic generator of pseudo-paired fusion examples from
//! real unimodal data (no public face + speech + text sentiment set fits here). Faces come from
//! FER2013, words from Twitter US Airline Sentiment, MELD and (training only) TweetEval test.
//!
//! Labelling rule (docs/fusion.md): expression → sentiment is happy → positive, neutral →
//! neutral, angry/disgust/fear/sad → negative; surprise is left out (it can be either).
//! Negative words are negative whatever the face (`incongruent` = 0: expressed). Positive or
//! neutral words with a negative face are negative with `incongruent` = 1 (unexpressed
//! dissatisfaction). Otherwise: same label → that label; positive and neutral → positive.
//! A pair with one modality only takes that modality's label.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Which half of the data a pair set draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// fer2013/train; airline train part, MELD train, TweetEval test.
    Train,
    /// fer2013/validation; airline dev part (sha256(tweet_id) % 100 < 20), MELD dev.
    Dev,
}

/// Sentiment classes, in the head's order.
pub const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];

/// One generated pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Face images (empty: no face in view).
    pub faces: Vec<PathBuf>,
    /// What was said (empty: nobody spoke).
    pub text: String,
    /// Sentiment label index into [`SENTIMENTS`].
    pub label: usize,
    /// Unexpressed dissatisfaction.
    pub incongruent: bool,
}

/// splitmix64: a small, portable, seedable generator (same sequence on every platform).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// The label rule: (label, incongruent) from the face's and the words' sentiment (None = absent).
pub fn rule(face: Option<usize>, text: Option<usize>) -> Option<(usize, bool)> {
    const NEG: usize = 0;
    const POS: usize = 2;
    match (face, text) {
        (None, None) => None,
        (Some(f), None) => Some((f, false)),
        (None, Some(t)) => Some((t, false)),
        (Some(_), Some(NEG)) => Some((NEG, false)),
        (Some(NEG), Some(_)) => Some((NEG, true)),
        (Some(f), Some(t)) if f == t => Some((f, false)),
        (Some(_), Some(_)) => Some((POS, false)),
    }
}

/// Expression folders mapped to sentiment (surprise left out).
pub const FACE_SENTIMENT: [(&str, usize); 6] =
    [("angry", 0), ("disgust", 0), ("fear", 0), ("sad", 0), ("neutral", 1), ("happy", 2)];

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::input(dir, format!("cannot read the folder: {e}")))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png" || x == "jpg"))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::input(dir, "no .png/.jpg images"));
    }
    Ok(v)
}

fn label_index(s: &str) -> Option<usize> {
    SENTIMENTS.iter().position(|l| l.eq_ignore_ascii_case(s.trim()))
}

fn csv_column(path: &Path, rdr: &mut csv::Reader<std::fs::File>, name: &str) -> Result<usize> {
    let h = rdr.headers().map_err(|e| Error::input(path, format!("line 1: {e}")))?;
    h.iter()
        .position(|c| c.trim_start_matches('\u{feff}') == name)
        .ok_or_else(|| Error::input(path, format!("line 1: no `{name}` column")))
}

/// Texts with their sentiment from the shared data sets, for `split`, in file order.
pub fn texts(data: &Path, split: Split) -> Result<Vec<(String, usize)>> {
    let mut out = Vec::new();
    // Twitter US Airline Sentiment: dev = int(sha256(tweet_id)[:8], 16) % 100 < 20 (as the text head).
    let path = data.join("twitter-airline-sentiment/Tweets.csv");
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| Error::input(&path, e.to_string()))?;
    let (id, sent, text) = (
        csv_column(&path, &mut rdr, "tweet_id")?,
        csv_column(&path, &mut rdr, "airline_sentiment")?,
        csv_column(&path, &mut rdr, "text")?,
    );
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::input(&path, e.to_string()))?;
        let digest = Sha256::digest(rec.get(id).unwrap_or("").as_bytes());
        let bucket = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 100;
        if (bucket < 20) == (split == Split::Dev) {
            if let Some(l) = label_index(rec.get(sent).unwrap_or("")) {
                out.push((rec.get(text).unwrap_or("").to_string(), l));
            }
        }
    }
    let meld = data.join(match split {
        Split::Train => "meld-text/train_sent_emo.csv",
        Split::Dev => "meld-text/dev_sent_emo.csv",
    });
    let mut rdr = csv::Reader::from_path(&meld).map_err(|e| Error::input(&meld, e.to_string()))?;
    let (utt, sent) = (csv_column(&meld, &mut rdr, "Utterance")?, csv_column(&meld, &mut rdr, "Sentiment")?);
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::input(&meld, e.to_string()))?;
        if let Some(l) = label_index(rec.get(sent).unwrap_or("")) {
            // MELD's CSVs carry mis-decoded curly quotes; straighten the common ones.
            let t =
                rec.get(utt).unwrap_or("").replace(['\u{2019}', '\u{2018}'], "'").replace("\u{0092}", "'");
            out.push((t, l));
        }
    }
    if split == Split::Train {
        // TweetEval test (never seen by the text head): labels 0/1/2 = negative/neutral/positive.
        let tp = data.join("tweeteval/test_text.txt");
        let lp = data.join("tweeteval/test_labels.txt");
        let t = std::fs::read_to_string(&tp).map_err(|e| Error::io(&tp, e))?;
        let l = std::fs::read_to_string(&lp).map_err(|e| Error::io(&lp, e))?;
        for (line, (text, lab)) in t.lines().zip(l.lines()).enumerate() {
            let k: usize = lab.trim().parse().ok().filter(|k| *k < 3).ok_or_else(|| {
                Error::input(&lp, format!("line {}: label `{lab}` (allowed 0, 1, 2)", line + 1))
            })?;
            out.push((text.to_string(), k));
        }
    }
    Ok(out)
}

/// Generates `n` pairs for `split` from the data sets under `data`, deterministically from `seed`.
///
/// Mix: 15 % face only, 15 % words only, 70 % both. For "both", the (face, words) sentiment
/// combination is drawn so that the three labels are equally likely and one pair in six is
/// incongruent: (neutral, neutral) 1/3; (positive, positive), (positive, neutral), (neutral,
/// positive) 1/9 each; (negative, neutral) and (negative, positive) 1/12 each (incongruent);
/// (negative, negative), (neutral, negative), (positive, negative) 1/18 each. Faces: 1–12
/// images of one expression class (the class drawn uniformly among those of the sentiment);
/// with 4 or more, one in three sequences has up to a quarter of its frames replaced by
/// neutral faces (a face relaxing mid-sentence; the label stays).
pub fn generate(data: &Path, split: Split, n: usize, seed: u64) -> Result<Vec<Pair>> {
    let fer = data.join(match split {
        Split::Train => "fer2013/train",
        Split::Dev => "fer2013/validation",
    });
    let mut faces: Vec<(usize, Vec<PathBuf>)> = Vec::new();
    for (class, sentiment) in FACE_SENTIMENT {
        faces.push((sentiment, list_images(&fer.join(class))?));
    }
    let neutral_faces = faces.iter().find(|(s, _)| *s == 1).map(|(_, v)| v.clone()).unwrap_or_default();
    let all_texts = texts(data, split)?;
    let mut by_label: [Vec<&str>; 3] = [vec![], vec![], vec![]];
    for (t, l) in &all_texts {
        if !t.trim().is_empty() {
            by_label[*l].push(t.as_str());
        }
    }
    if let Some(l) = (0..3).find(|&l| by_label[l].is_empty()) {
        return Err(Error::input(data, format!("no `{}` texts found for the pairs", SENTIMENTS[l])));
    }
    // (face sentiment, text sentiment, weight) for pairs with both.
    let combos: [(usize, usize, f64); 9] = [
        (1, 1, 1.0 / 3.0),
        (2, 2, 1.0 / 9.0),
        (2, 1, 1.0 / 9.0),
        (1, 2, 1.0 / 9.0),
        (0, 1, 1.0 / 12.0),
        (0, 2, 1.0 / 12.0),
        (0, 0, 1.0 / 18.0),
        (1, 0, 1.0 / 18.0),
        (2, 0, 1.0 / 18.0),
    ];
    let mut rng = SplitMix::new(seed);
    let pick_face_seq = |rng: &mut SplitMix, sentiment: usize| -> Vec<PathBuf> {
        let classes: Vec<&Vec<PathBuf>> =
            faces.iter().filter(|(s, _)| *s == sentiment).map(|(_, v)| v).collect();
        let pool = classes[rng.below(classes.len())];
        let k = 1 + rng.below(12);
        let mut seq: Vec<PathBuf> = (0..k).map(|_| pool[rng.below(pool.len())].clone()).collect();
        if k >= 4 && rng.below(3) == 0 {
            for _ in 0..1 + rng.below(k / 4) {
                let at = rng.below(k);
                seq[at] = neutral_faces[rng.below(neutral_faces.len())].clone();
            }
        }
        seq
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mode = rng.unit();
        let (f, t) = if mode < 0.15 {
            (Some(rng.below(3)), None)
        } else if mode < 0.30 {
            (None, Some(rng.below(3)))
        } else {
            let mut u = rng.unit();
            let mut chosen = combos[0];
            for c in combos {
                if u < c.2 {
                    chosen = c;
                    break;
                }
                u -= c.2;
            }
            (Some(chosen.0), Some(chosen.1))
        };
        let faces = f.map(|s| pick_face_seq(&mut rng, s)).unwrap_or_default();
        let text = t.map(|s| by_label[s][rng.below(by_label[s].len())].to_string()).unwrap_or_default();
        let (label, incongruent) = rule(f, t).expect("one modality is always drawn");
        out.push(Pair { faces, text, label, incongruent });
    }
    Ok(out)
}

/// Writes pairs as the `faces,text,wav,label,incongruent` CSV read by `affectd eval fusion`.
pub fn write_csv(pairs: &[Pair], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| Error::input(path, e.to_string()))?;
    let io = |e: csv::Error| Error::input(path, e.to_string());
    w.write_record(["faces", "text", "wav", "label", "incongruent"]).map_err(io)?;
    for p in pairs {
        let faces: Vec<String> = p.faces.iter().map(|f| f.display().to_string()).collect();
        w.write_record([
            faces.join(";").as_str(),
            p.text.as_str(),
            "",
            SENTIMENTS[p.label],
            if p.incongruent { "1" } else { "0" },
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_flags_only_unexpressed_dissatisfaction() {
        let (neg, neu, pos) = (Some(0), Some(1), Some(2));
        assert_eq!(rule(neg, pos), Some((0, true)), "'Great, thanks' with a frustrated face");
        assert_eq!(rule(neg, neu), Some((0, true)));
        assert_eq!(rule(pos, neg), Some((0, false)), "negative words are expressed");
        assert_eq!(rule(neg, neg), Some((0, false)));
        assert_eq!(rule(pos, pos), Some((2, false)));
        assert_eq!(rule(neu, neu), Some((1, false)));
        assert_eq!(rule(neu, pos), Some((2, false)));
        assert_eq!(rule(pos, neu), Some((2, false)));
        assert_eq!(rule(neg, None), Some((0, false)));
        assert_eq!(rule(None, pos), Some((2, false)));
        assert_eq!(rule(None, None), None);
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs of splitmix64 seeded with 0 (the published reference values).
        let mut r = SplitMix::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut a = SplitMix::new(7);
        assert!((0..1000).all(|_| a.below(5) < 5));
    }
}
