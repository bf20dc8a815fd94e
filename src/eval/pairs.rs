//! `affectd eval make-pairs`: the deterministic generator of pseudo-paired fusion examples from
//! real unimodal data (no public face + speech + text sentiment set fits here). Faces come from
//! FER2013, words from Twitter US Airline Sentiment, MELD and (training only) TweetEval test,
//! voices from RAVDESS speech (actors 1–20 train, 21–24 dev: the voice head's split).
//!
//! Face expressions are FER+ majority labels when `ferplus/labels.csv` is present (else the
//! FER2013 folders). Labelling rule (docs/fusion.md): expression → sentiment is happy → positive, neutral →
//! neutral, angry/disgust/fear/sad → negative; surprise is left out (it can be either). Voice
//! emotion → sentiment the same way (happy → positive, neutral/calm → neutral,
//! angry/fearful/sad/disgust → negative, surprised left out). Negative words are negative
//! whatever the face or voice (`incongruent` = 0: expressed). Positive or neutral words with a
//! negative face *or* voice are negative with `incongruent` = 1 (unexpressed dissatisfaction).
//! Otherwise: all the same label → that label; positive and neutral → positive. A pair without
//! words takes its face and voice: any negative → negative (not incongruent), else as above.

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
pub use crate::labels::SENTIMENTS;

/// One generated pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Face images (empty: no face in view).
    pub faces: Vec<PathBuf>,
    /// What was said (empty: nobody spoke).
    pub text: String,
    /// How it was said: a RAVDESS recording (None: no voice).
    pub wav: Option<PathBuf>,
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

/// The label rule with a voice channel: words decide when negative; otherwise a negative face
/// or voice makes the pair negative, incongruent when words are present; otherwise all the same
/// → that label, a mix of positive and neutral → positive.
pub fn rule3(face: Option<usize>, voice: Option<usize>, text: Option<usize>) -> Option<(usize, bool)> {
    const NEG: usize = 0;
    const POS: usize = 2;
    let nonverbal: Vec<usize> = [face, voice].into_iter().flatten().collect();
    if nonverbal.is_empty() {
        return text.map(|t| (t, false));
    }
    if text == Some(NEG) {
        return Some((NEG, false));
    }
    if nonverbal.contains(&NEG) {
        return Some((NEG, text.is_some()));
    }
    let all: Vec<usize> = nonverbal.into_iter().chain(text).collect();
    Some(if all.iter().all(|&k| k == all[0]) { (all[0], false) } else { (POS, false) })
}

/// RAVDESS emotions mapped to sentiment (surprised left out).
pub const VOICE_SENTIMENT: [(&str, usize); 7] =
    [("angry", 0), ("disgust", 0), ("fearful", 0), ("sad", 0), ("neutral", 1), ("calm", 1), ("happy", 2)];

/// RAVDESS recordings of `split` (actors 1–20 train, 21–24 dev) by emotion, in file order, from
/// `ravdess-speech-16k/labels.csv` (columns path, emotion, …, actor).
pub fn voices(data: &Path, split: Split) -> Result<Vec<(usize, Vec<PathBuf>)>> {
    let dir = data.join("ravdess-speech-16k");
    let path = dir.join("labels.csv");
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| Error::input(&path, e.to_string()))?;
    let (pc, ec, ac) = (
        csv_column(&path, &mut rdr, "path")?,
        csv_column(&path, &mut rdr, "emotion")?,
        csv_column(&path, &mut rdr, "actor")?,
    );
    let mut by: Vec<(usize, Vec<PathBuf>)> = VOICE_SENTIMENT.iter().map(|(_, s)| (*s, Vec::new())).collect();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::input(&path, e.to_string()))?;
        let actor: u32 = rec.get(ac).unwrap_or("").trim().parse().map_err(|_| {
            Error::input(&path, format!("actor `{}` is not a number", rec.get(ac).unwrap_or("")))
        })?;
        if (actor > 20) != (split == Split::Dev) {
            continue;
        }
        let emotion = rec.get(ec).unwrap_or("").trim();
        if let Some(i) = VOICE_SENTIMENT.iter().position(|(e, _)| *e == emotion) {
            by[i].1.push(dir.join(rec.get(pc).unwrap_or("").trim()));
        }
    }
    for (i, (_, v)) in by.iter_mut().enumerate() {
        v.sort();
        if v.is_empty() {
            return Err(Error::input(
                &path,
                format!("no `{}` recordings for this split", VOICE_SENTIMENT[i].0),
            ));
        }
    }
    Ok(by)
}

/// Expression folders mapped to sentiment (surprise left out).
pub const FACE_SENTIMENT: [(&str, usize); 6] =
    [("angry", 0), ("disgust", 0), ("fear", 0), ("sad", 0), ("neutral", 1), ("happy", 2)];

/// Face images of a FER2013 split grouped as [`FACE_SENTIMENT`]: by their FER+ strict-majority
/// label when `ferplus/labels.csv` is present (far less noisy than FER2013's folders; rows
/// without a majority, or with surprise/contempt, are left out), else by folder.
pub fn face_pools(data: &Path, fer: &Path) -> Result<Vec<(usize, Vec<PathBuf>)>> {
    let fp_path = data.join("ferplus/labels.csv");
    if !fp_path.exists() {
        return FACE_SENTIMENT.iter().map(|(class, s)| Ok((*s, list_images(&fer.join(class))?))).collect();
    }
    let majority = crate::eval::expression::read_ferplus(&fp_path)?;
    let mut pools: Vec<(usize, Vec<PathBuf>)> =
        FACE_SENTIMENT.iter().map(|(_, s)| (*s, Vec::new())).collect();
    for folder in ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"] {
        for img in list_images(&fer.join(folder))? {
            let row = img.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
            let Some(row) = row else {
                return Err(Error::input(
                    &img,
                    "with FER+ labels the file name must be the FER2013 row (e.g. 00042.png)",
                ));
            };
            let label = majority.get(&row).copied().flatten();
            if let Some(i) = label.and_then(|l| FACE_SENTIMENT.iter().position(|(c, _)| *c == l)) {
                pools[i].1.push(img);
            }
        }
    }
    for (i, (_, v)) in pools.iter_mut().enumerate() {
        v.sort();
        if v.is_empty() {
            return Err(Error::input(
                &fp_path,
                format!("no `{}` faces with a FER+ majority", FACE_SENTIMENT[i].0),
            ));
        }
    }
    Ok(pools)
}

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
/// Mix: 10 % face only, 10 % words only, 5 % voice only, 30 % face + words, 25 % voice + words
/// (an audio-only call), 20 % face + voice + words. With words, the (nonverbal, words) sentiment
/// combination is drawn so that the three labels are equally likely and one pair in six is
/// incongruent: (neutral, neutral) 1/3; (positive, positive), (positive, neutral), (neutral,
/// positive) 1/9 each; (negative, neutral) and (negative, positive) 1/12 each (incongruent);
/// (negative, negative), (neutral, negative), (positive, negative) 1/18 each. Faces: 1–12
/// images of one expression class (the class drawn uniformly among those of the sentiment);
/// with 4 or more, one in three sequences has up to a quarter of its frames replaced by
/// neutral faces (a face relaxing mid-sentence; the label stays). Voice: one recording of an
/// emotion drawn uniformly among those of the sentiment. With face and voice, the voice has the
/// face's sentiment two times in three, else one drawn uniformly (the rule then decides).
pub fn generate(data: &Path, split: Split, n: usize, seed: u64) -> Result<Vec<Pair>> {
    let fer = data.join(match split {
        Split::Train => "fer2013/train",
        Split::Dev => "fer2013/validation",
    });
    let faces = face_pools(data, &fer)?;
    let neutral_faces = faces.iter().find(|(s, _)| *s == 1).map(|(_, v)| v.clone()).unwrap_or_default();
    let voice_pool = voices(data, split)?;
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
    let pick_voice = |rng: &mut SplitMix, sentiment: usize| -> PathBuf {
        let classes: Vec<&Vec<PathBuf>> =
            voice_pool.iter().filter(|(s, _)| *s == sentiment).map(|(_, v)| v).collect();
        let pool = classes[rng.below(classes.len())];
        pool[rng.below(pool.len())].clone()
    };
    let pick_combo = |rng: &mut SplitMix| {
        let mut u = rng.unit();
        let mut chosen = combos[0];
        for c in combos {
            if u < c.2 {
                chosen = c;
                break;
            }
            u -= c.2;
        }
        (chosen.0, chosen.1)
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mode = rng.unit();
        let (f, v, t) = if mode < 0.10 {
            (Some(rng.below(3)), None, None)
        } else if mode < 0.20 {
            (None, None, Some(rng.below(3)))
        } else if mode < 0.25 {
            (None, Some(rng.below(3)), None)
        } else if mode < 0.55 {
            let (nv, t) = pick_combo(&mut rng);
            (Some(nv), None, Some(t))
        } else if mode < 0.80 {
            let (nv, t) = pick_combo(&mut rng);
            (None, Some(nv), Some(t))
        } else {
            let (nv, t) = pick_combo(&mut rng);
            let v = if rng.below(3) < 2 { nv } else { rng.below(3) };
            (Some(nv), Some(v), Some(t))
        };
        let faces = f.map(|s| pick_face_seq(&mut rng, s)).unwrap_or_default();
        let wav = v.map(|s| pick_voice(&mut rng, s));
        let text = t.map(|s| by_label[s][rng.below(by_label[s].len())].to_string()).unwrap_or_default();
        let (label, incongruent) = rule3(f, v, t).expect("one modality is always drawn");
        out.push(Pair { faces, text, wav, label, incongruent });
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
            p.wav.as_ref().map(|w| w.display().to_string()).unwrap_or_default().as_str(),
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
    fn the_voice_rule_flags_a_negative_voice_under_polite_words() {
        let (neg, neu, pos) = (Some(0), Some(1), Some(2));
        assert_eq!(rule3(None, neg, neu), Some((0, true)), "neutral words, negative voice");
        assert_eq!(rule3(None, neg, pos), Some((0, true)));
        assert_eq!(rule3(None, neu, neu), Some((1, false)));
        assert_eq!(rule3(None, pos, neg), Some((0, false)), "negative words are expressed");
        assert_eq!(rule3(pos, neg, pos), Some((0, true)), "either nonverbal channel suffices");
        assert_eq!(rule3(neg, None, None), Some((0, false)));
        assert_eq!(rule3(neg, pos, None), Some((0, false)), "no words: nothing to contradict");
        assert_eq!(rule3(neu, pos, neu), Some((2, false)));
        assert_eq!(rule3(None, None, None), None);
        for f in [None, neg, neu, pos] {
            for t in [None, neg, neu, pos] {
                assert_eq!(rule3(f, None, t), rule(f, t), "without voice, the face rule");
                assert_eq!(rule3(None, f, t), rule(f, t), "voice alone acts like a face");
            }
        }
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
