//! Chat-like text for the load generator: a Zipf-distributed vocabulary, so that full-text
//! indexing does the work real messages cause and search terms have realistic selectivity.

use std::sync::LazyLock;

use crate::random::Random;

/// Very common English words, most common first: the head of the vocabulary.
const COMMON: &[&str] = &[
    "the", "to", "and", "a", "of", "i", "it", "you", "is", "that", "in", "we", "for", "this", "on",
    "be", "with", "have", "are", "not", "can", "will", "do", "so", "but", "if", "at", "me", "my",
    "our", "they", "what", "just", "from", "up", "all", "about", "there", "get", "as", "by", "or",
    "an", "was", "one", "no", "now", "out", "ok", "yes", "thanks", "please", "need", "know",
    "think", "see", "look", "make", "time", "today", "work", "new", "good", "build", "test",
    "release", "meeting", "server", "team", "update", "issue", "check", "change", "fix", "review",
    "call", "week", "tomorrow", "done", "next", "plan", "data", "client", "report", "question",
    "status", "customer", "deploy", "branch", "merge",
];

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou"];
const CODAS: &[&str] = &["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"];

/// A Zipf-distributed vocabulary: the common words above, then made-up words
/// (onset-vowel-coda syllables, longer as they get rarer), all distinct, none of them a
/// marker word (`pmk…`).
pub struct Vocabulary {
    words: Vec<String>,
    /// Cumulative Zipf weights (s = 1), one per word.
    cumulative: Vec<f64>,
}

impl Vocabulary {
    pub fn new(vocabulary: usize, seed: u64) -> Self {
        let mut random = Random::new(seed ^ 0x00f0_cab0);
        let mut words: Vec<String> = COMMON
            .iter()
            .take(vocabulary)
            .map(|w| (*w).to_owned())
            .collect();
        let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
        let pick = |list: &[&'static str], random: &mut Random| {
            list[random.below(list.len() as u64) as usize]
        };
        while words.len() < vocabulary {
            let rank = words.len();
            let syllables = 1
                + usize::from(rank >= 300)
                + usize::from(rank >= 1500)
                + usize::from(rank >= 5000)
                + usize::from(random.below(3) == 0);
            let mut word = String::new();
            for _ in 0..syllables {
                word.push_str(pick(ONSETS, &mut random));
                word.push_str(pick(VOWELS, &mut random));
            }
            word.push_str(pick(CODAS, &mut random));
            if !word.starts_with("pmk") && seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=words.len())
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    /// The vocabulary of the load clients' posts (4,000 words), built once.
    pub fn shared() -> &'static Vocabulary {
        static SHARED: LazyLock<Vocabulary> = LazyLock::new(|| Vocabulary::new(4000, 1));
        &SHARED
    }

    /// A word drawn with Zipf's law.
    pub fn pick(&self, random: &mut Random) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = random.unit() * total;
        let rank = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.words.len() - 1);
        &self.words[rank]
    }
}

/// Chat-like messages: sentences of words from a vocabulary.
pub struct TextGenerator {
    vocabulary: Vocabulary,
    size: usize,
    random: Random,
}

impl TextGenerator {
    /// Messages of about `size` bytes from a vocabulary of `vocabulary` words.
    pub fn new(vocabulary: usize, size: usize, seed: u64) -> Self {
        Self {
            vocabulary: Vocabulary::new(vocabulary, seed),
            size,
            random: Random::new(seed),
        }
    }

    /// One message into `out`: sentences of 3 to 14 words, about `size` bytes in all, with
    /// each marker word at a random place.
    pub fn message(&mut self, out: &mut String, markers: &[&str]) {
        out.clear();
        let low = (self.size / 2).max(1) as u64;
        let target = (low + self.random.below(self.size as u64 + 1)) as usize;
        let mut sentence_left = 0;
        let mut words = 0usize;
        let mut marker_at: [usize; 8] = [usize::MAX; 8];
        let estimate = (target / 6).max(1) as u64;
        for (slot, _) in marker_at.iter_mut().zip(markers) {
            *slot = self.random.below(estimate) as usize;
        }
        while out.len() < target || words == 0 {
            if sentence_left == 0 {
                if !out.is_empty() {
                    out.push_str(if self.random.below(5) == 0 {
                        "? "
                    } else {
                        ". "
                    });
                }
                sentence_left = 3 + self.random.below(12);
            }
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            let capital = out.is_empty() || out.ends_with(". ") || out.ends_with("? ");
            let start = out.len();
            out.push_str(self.vocabulary.pick(&mut self.random));
            if capital && let Some(first) = out.get_mut(start..start + 1) {
                first.make_ascii_uppercase();
            }
            for (k, marker) in markers.iter().enumerate() {
                if marker_at.get(k) == Some(&words) {
                    out.push(' ');
                    out.push_str(marker);
                }
            }
            words += 1;
            sentence_left -= 1;
        }
        // Markers whose place fell beyond the text (more than 8 markers, or a short one).
        for (k, marker) in markers.iter().enumerate() {
            if marker_at.get(k).is_none_or(|&at| at >= words) {
                out.push(' ');
                out.push_str(marker);
            }
        }
        out.push('.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_varied_and_carries_its_markers() {
        let mut generator = TextGenerator::new(4000, 100, 3);
        let words = &generator.vocabulary.words;
        assert_eq!(words.len(), 4000);
        let distinct: std::collections::HashSet<&String> = words.iter().collect();
        assert_eq!(distinct.len(), 4000);
        let mut text = String::new();
        let mut total = 0;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            generator.message(&mut text, &[]);
            assert!(text.is_ascii() && !text.contains(['<', '&', '"']), "{text}");
            total += text.len();
            for word in text.split([' ', '.', '?']).filter(|w| !w.is_empty()) {
                seen.insert(word.to_ascii_lowercase());
            }
        }
        let mean = total / 1000;
        assert!((90..130).contains(&mean), "mean {mean}");
        assert!(seen.len() > 1000, "{} distinct words", seen.len());
        generator.message(&mut text, &["pmk10", "pmk1000"]);
        let words: Vec<&str> = text.split([' ', '.', '?']).collect();
        assert!(
            words.contains(&"pmk10") && words.contains(&"pmk1000"),
            "{text}"
        );
    }
}
