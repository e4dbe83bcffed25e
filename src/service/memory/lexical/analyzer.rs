//! Words as a lexical index compares them: lower-cased, split at everything that is not
//! a letter or a digit, stop words of the language dropped (NLTK's lists), the rest
//! reduced to their Snowball stem, so "visited", "visits" and "visiting" meet. Numbers
//! stay as they are ("1247", "3rd"). Scripts written without spaces (Chinese, Japanese,
//! Thai…) are indexed as overlapping pairs of characters, which needs no dictionary.
//!
//! A pair's messages and its queries go through one analyzer, chosen once from a sample
//! of the pair's own text (`Analyzer::detect`): a query is stemmed as the text it is
//! compared with was.

use rust_stemmers::{Algorithm, Stemmer};
use std::{collections::HashSet, fmt};
use whatlang::Lang;

/// A language's tokenisation rules: its stemmer and stop words (none for a language
/// without a Snowball stemmer: words are then compared whole).
pub struct Analyzer {
    language: &'static str,
    stemmer: Option<Stemmer>,
    stop_words: HashSet<&'static str>,
}

impl fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyzer")
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

/// Characters of a sample the language is detected from: enough for a reliable guess,
/// little enough to cost nothing.
pub const DETECTION_SAMPLE_CHARS: usize = 4_000;

/// The languages with a Snowball stemmer and an NLTK stop-word list: whatlang's code,
/// the name, the ISO 639-1 code `stop_words` knows it by, the stemmer.
const LANGUAGES: [(Lang, &str, &str, Algorithm); 17] = [
    (Lang::Eng, "english", "en", Algorithm::English),
    (Lang::Fra, "french", "fr", Algorithm::French),
    (Lang::Deu, "german", "de", Algorithm::German),
    (Lang::Spa, "spanish", "es", Algorithm::Spanish),
    (Lang::Por, "portuguese", "pt", Algorithm::Portuguese),
    (Lang::Ita, "italian", "it", Algorithm::Italian),
    (Lang::Nld, "dutch", "nl", Algorithm::Dutch),
    (Lang::Dan, "danish", "da", Algorithm::Danish),
    (Lang::Swe, "swedish", "sv", Algorithm::Swedish),
    (Lang::Nob, "norwegian", "no", Algorithm::Norwegian),
    (Lang::Fin, "finnish", "fi", Algorithm::Finnish),
    (Lang::Rus, "russian", "ru", Algorithm::Russian),
    (Lang::Hun, "hungarian", "hu", Algorithm::Hungarian),
    (Lang::Ron, "romanian", "ro", Algorithm::Romanian),
    (Lang::Tur, "turkish", "tr", Algorithm::Turkish),
    (Lang::Ara, "arabic", "ar", Algorithm::Arabic),
    (Lang::Ell, "greek", "el", Algorithm::Greek),
];

impl Default for Analyzer {
    fn default() -> Self {
        Self::english()
    }
}

impl Analyzer {
    pub fn english() -> Self {
        let (_, name, code, algorithm) = LANGUAGES[0];
        Self::of(name, code, Some(algorithm))
    }

    fn of(language: &'static str, code: &str, algorithm: Option<Algorithm>) -> Self {
        let stop_words = stop_words::lookup(code)
            .unwrap_or_default()
            .iter()
            .copied()
            .collect();
        Self {
            language,
            stemmer: algorithm.map(Stemmer::create),
            stop_words,
        }
    }

    /// The analyzer for the language `sample` is written in; English when the guess is
    /// unreliable, and words compared whole (no stemmer, no stop words) for a language
    /// Snowball does not cover.
    pub fn detect(sample: &str) -> Self {
        let sample: String = sample.chars().take(DETECTION_SAMPLE_CHARS).collect();
        let Some(info) = whatlang::detect(&sample).filter(|info| info.is_reliable()) else {
            return Self::english();
        };
        match LANGUAGES.iter().find(|(lang, ..)| *lang == info.lang()) {
            Some((_, name, code, algorithm)) => Self::of(name, code, Some(*algorithm)),
            None => Self::of(info.lang().eng_name(), "", None),
        }
    }

    /// The language's name, in English.
    pub fn language(&self) -> &'static str {
        self.language
    }

    /// The index terms of `text`, in order, repeated as often as they occur.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut terms = Vec::new();
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            if word.chars().any(unspaced) {
                unspaced_pairs(word, &mut terms);
                continue;
            }
            if self.stop_words.contains(word) {
                continue;
            }
            // One letter says little ("s" of "it's", "t" of "don't"); one digit may be
            // the answer ("3 cats").
            if word.chars().count() == 1 && !word.chars().all(|c| c.is_numeric()) {
                continue;
            }
            match &self.stemmer {
                Some(stemmer) if !word.chars().any(|c| c.is_numeric()) => {
                    terms.push(stemmer.stem(word).into_owned())
                }
                _ => terms.push(word.to_owned()),
            }
        }
        terms
    }
}

/// A character of a script written without spaces between words.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x0E00..=0x0E7F    // Thai
        | 0x0E80..=0x0EFF    // Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
    )
}

/// A run of text with unspaced characters: every overlapping pair of them (a lone one
/// stands alone), the spaced parts inside it kept whole.
fn unspaced_pairs(word: &str, terms: &mut Vec<String>) {
    let mut run: Vec<char> = Vec::new();
    let mut other = String::new();
    let flush_run = |run: &mut Vec<char>, terms: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => terms.push(run[0].to_string()),
            _ => terms.extend(run.windows(2).map(|pair| pair.iter().collect())),
        }
        run.clear();
    };
    for c in word.chars() {
        if unspaced(c) {
            if !other.is_empty() {
                terms.push(std::mem::take(&mut other));
            }
            run.push(c);
        } else {
            flush_run(&mut run, terms);
            other.push(c);
        }
    }
    flush_run(&mut run, terms);
    if !other.is_empty() {
        terms.push(other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_meet_at_their_stem_without_stop_words() {
        let english = Analyzer::english();
        assert_eq!(
            english.terms("She visited the Lighthouse twice; I'm visiting it again!"),
            ["visit", "lighthous", "twice", "visit"]
        );
        assert_eq!(english.terms("cats"), english.terms("cat"));
        assert_eq!(
            english.terms("I have 3 cats, born in 1247"),
            ["3", "cat", "born", "1247"]
        );
        assert!(english.terms("the and of it is").is_empty());
        assert!(!english.stop_words.is_empty() && english.stemmer.is_some());
    }

    #[test]
    fn the_language_is_detected_from_a_sample() {
        let french = Analyzer::detect(
            "Je suis allée au marché hier avec ma sœur, et nous avons acheté des pommes \
             pour la tarte de dimanche. Elle adore les pommes.",
        );
        assert_eq!(french.language(), "french");
        assert_eq!(french.terms("les pommes"), french.terms("pomme"));
        let german = Analyzer::detect(
            "Gestern bin ich mit meinem Bruder in die Berge gefahren, und wir haben dort \
             eine kleine Hütte gefunden, in der wir übernachtet haben.",
        );
        assert_eq!(german.language(), "german");
        assert_eq!(
            Analyzer::detect("ok").language(),
            "english",
            "unreliable: English"
        );
    }

    #[test]
    fn unspaced_scripts_are_indexed_as_character_pairs() {
        let english = Analyzer::english();
        assert_eq!(
            english.terms("東京タワー"),
            ["東京", "京タ", "タワ", "ワー"]
        );
        assert_eq!(english.terms("猫"), ["猫"]);
        assert_eq!(english.terms("ABC東京"), ["abc", "東京"]);
    }
}
