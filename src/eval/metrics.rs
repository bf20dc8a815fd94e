//! Classification and transcription metrics: accuracy, macro-F1, macro-recall, confusion
//! matrix, word error rate.

/// A confusion matrix over named classes (rows = truth, columns = prediction).
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    labels: Vec<String>,
    m: Vec<Vec<u64>>,
}

impl Confusion {
    /// An empty matrix over `labels`.
    pub fn new(labels: &[String]) -> Confusion {
        Confusion { labels: labels.to_vec(), m: vec![vec![0; labels.len()]; labels.len()] }
    }

    /// Counts one example (indices into the labels).
    pub fn add(&mut self, truth: usize, pred: usize) {
        self.m[truth][pred] += 1;
    }

    /// Number of examples.
    pub fn n(&self) -> u64 {
        self.m.iter().flatten().sum()
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.labels.len()).map(|i| self.m[i][i]).sum();
        correct as f64 / self.n().max(1) as f64
    }

    /// (precision, recall, F1, support) of class `i`.
    pub fn class(&self, i: usize) -> (f64, f64, f64, u64) {
        let tp = self.m[i][i] as f64;
        let support: u64 = self.m[i].iter().sum();
        let predicted: u64 = self.m.iter().map(|r| r[i]).sum();
        let p = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
        let r = if support == 0 { 0.0 } else { tp / support as f64 };
        let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
        (p, r, f, support)
    }

    fn present(&self) -> Vec<usize> {
        (0..self.labels.len()).filter(|&i| self.class(i).3 > 0).collect()
    }

    /// Mean F1 over the classes that occur in the truth.
    pub fn macro_f1(&self) -> f64 {
        let c = self.present();
        c.iter().map(|&i| self.class(i).2).sum::<f64>() / c.len().max(1) as f64
    }

    /// Mean recall over the classes that occur in the truth.
    pub fn macro_recall(&self) -> f64 {
        let c = self.present();
        c.iter().map(|&i| self.class(i).1).sum::<f64>() / c.len().max(1) as f64
    }

    /// A printable table: per-class precision/recall/F1 and the matrix.
    pub fn report(&self) -> String {
        let mut s =
            format!("{:<10} {:>9} {:>7} {:>7} {:>7}\n", "class", "precision", "recall", "f1", "support");
        for (i, l) in self.labels.iter().enumerate() {
            let (p, r, f, n) = self.class(i);
            s += &format!("{l:<10} {p:>9.4} {r:>7.4} {f:>7.4} {n:>7}\n");
        }
        s += "\nconfusion (rows = truth, columns = prediction)\n";
        s += &format!("{:<10}", "");
        for l in &self.labels {
            s += &format!(" {:>8}", &l[..l.len().min(8)]);
        }
        s += "\n";
        for (i, l) in self.labels.iter().enumerate() {
            s += &format!("{l:<10}");
            for v in &self.m[i] {
                s += &format!(" {v:>8}");
            }
            s += "\n";
        }
        s
    }
}

/// Word-level edit distance (substitutions + deletions + insertions) between two word lists.
pub fn word_errors(reference: &[&str], hypothesis: &[&str]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j] + (r != h) as usize).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_metrics() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let mut c = Confusion::new(&labels);
        // truth a: 3 (2 right, 1 as b); truth b: 1 (right); truth c: 0.
        c.add(0, 0);
        c.add(0, 0);
        c.add(0, 1);
        c.add(1, 1);
        assert_eq!(c.n(), 4);
        assert_eq!(c.accuracy(), 0.75);
        // a: p=1, r=2/3, f=0.8; b: p=0.5, r=1, f=2/3; c absent from the truth: not averaged.
        assert!((c.macro_f1() - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((c.macro_recall() - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!(c.report().contains("confusion"));
    }

    #[test]
    fn word_error_counts() {
        assert_eq!(word_errors(&["a", "b", "c"], &["a", "b", "c"]), 0);
        assert_eq!(word_errors(&["a", "b", "c"], &["a", "x", "c"]), 1);
        assert_eq!(word_errors(&["a", "b", "c"], &["a", "c"]), 1);
        assert_eq!(word_errors(&["a", "b"], &["a", "b", "c", "d"]), 2);
        assert_eq!(word_errors(&[], &["a"]), 1);
    }
}
