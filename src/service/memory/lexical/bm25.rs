//! Okapi BM25 over an in-memory inverted index: documents are added once (messages are
//! never edited), scored for a query's terms by how rare each term is in the collection
//! (its IDF) and how often it occurs in the document against the document's length.

use std::collections::HashMap;

/// Term-frequency saturation and length normalisation, the usual values (Robertson and
/// Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond").
pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;

/// A document's position in the index, in the order documents were added.
pub type DocId = u32;

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: DocId,
    frequency: u16,
}

#[derive(Debug, Clone, Default)]
pub struct Bm25 {
    term_ids: HashMap<Box<str>, u32>,
    /// By term id: the documents holding the term, in the order they were added.
    postings: Vec<Vec<Posting>>,
    /// By document: its number of terms.
    lengths: Vec<u32>,
    total_length: u64,
    bytes: usize,
}

impl Bm25 {
    /// Adds a document of `terms` (as an analyzer gives them) and returns its id.
    pub fn add(&mut self, terms: &[String]) -> DocId {
        let doc = self.lengths.len() as DocId;
        let mut counts: HashMap<&str, u16> = HashMap::new();
        for term in terms {
            let count = counts.entry(term.as_str()).or_default();
            *count = count.saturating_add(1);
        }
        for (term, frequency) in counts {
            let id = match self.term_ids.get(term) {
                Some(id) => *id,
                None => {
                    let id = self.postings.len() as u32;
                    self.term_ids.insert(term.into(), id);
                    self.postings.push(Vec::new());
                    self.bytes += term.len() + 64;
                    id
                }
            };
            self.postings[id as usize].push(Posting { doc, frequency });
            self.bytes += std::mem::size_of::<Posting>();
        }
        self.lengths.push(terms.len() as u32);
        self.total_length += terms.len() as u64;
        self.bytes += std::mem::size_of::<u32>();
        doc
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Bytes the index holds, roughly.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How rare `term` is: the BM25 IDF with its +1 inside the logarithm (Lucene's),
    /// never negative even for a term in every document; that of a term seen nowhere
    /// for an unknown one.
    pub fn idf(&self, term: &str) -> f32 {
        let holding = self
            .term_ids
            .get(term)
            .map_or(0, |id| self.postings[*id as usize].len());
        idf(self.lengths.len(), holding)
    }

    /// What a document scores when it holds every distinct term of the query once at
    /// the average length: the yardstick `relevance` divides by.
    pub fn ceiling(&self, query: &[String]) -> f32 {
        distinct(query).map(|term| self.idf(term)).sum()
    }

    /// The score of every document that holds a term of `query` (distinct terms
    /// count once), by document id.
    pub fn scores(&self, query: &[String]) -> Vec<(DocId, f32)> {
        if self.lengths.is_empty() {
            return Vec::new();
        }
        let average = self.total_length as f32 / self.lengths.len() as f32;
        let mut totals: HashMap<DocId, f32> = HashMap::new();
        for term in distinct(query) {
            let Some(id) = self.term_ids.get(term) else {
                continue;
            };
            let idf = self.idf(term);
            for posting in &self.postings[*id as usize] {
                let length = self.lengths[posting.doc as usize];
                *totals.entry(posting.doc).or_default() +=
                    idf * saturated(posting.frequency, length, average);
            }
        }
        totals.into_iter().collect()
    }
}

/// The IDF of a term held by `holding` of `documents`.
pub fn idf(documents: usize, holding: usize) -> f32 {
    let (documents, holding) = (documents as f32, holding as f32);
    (1.0 + (documents - holding + 0.5) / (holding + 0.5)).ln()
}

/// What `frequency` occurrences weigh in a document of `length` terms (average
/// `average`), before the IDF: 1 for one occurrence at the average length.
pub fn saturated(frequency: u16, length: u32, average: f32) -> f32 {
    let frequency = f32::from(frequency);
    let norm = K1 * (1.0 - B + B * length as f32 / average.max(1.0));
    frequency * (K1 + 1.0) / (frequency + norm)
}

/// BM25 of `query` over a small collection scored once (a pair's facts for one query):
/// each document's score as a share of the query's weight (`Bm25::ceiling`), 0 to 1,
/// counting only the query's terms, no index built.
pub fn relevance<D: AsRef<[String]>>(query: &[String], documents: &[D]) -> Vec<f64> {
    let terms: Vec<&str> = distinct(query).collect();
    let mut relevance = vec![0.0; documents.len()];
    if terms.is_empty() || documents.is_empty() {
        return relevance;
    }
    let frequencies: Vec<Vec<u16>> = documents
        .iter()
        .map(|document| {
            terms
                .iter()
                .map(|term| {
                    let count = document.as_ref().iter().filter(|t| t == term).count();
                    u16::try_from(count).unwrap_or(u16::MAX)
                })
                .collect()
        })
        .collect();
    let idfs: Vec<f32> = (0..terms.len())
        .map(|i| {
            idf(
                documents.len(),
                frequencies.iter().filter(|f| f[i] > 0).count(),
            )
        })
        .collect();
    let ceiling: f32 = idfs.iter().sum();
    let total: usize = documents.iter().map(|d| d.as_ref().len()).sum();
    let average = total as f32 / documents.len() as f32;
    for ((document, frequencies), relevance) in
        documents.iter().zip(&frequencies).zip(&mut relevance)
    {
        let length = document.as_ref().len() as u32;
        let score: f32 = frequencies
            .iter()
            .zip(&idfs)
            .filter(|(frequency, _)| **frequency > 0)
            .map(|(frequency, idf)| idf * saturated(*frequency, length, average))
            .sum();
        *relevance = f64::from(score / ceiling).min(1.0);
    }
    relevance
}

fn distinct(query: &[String]) -> impl Iterator<Item = &str> {
    let mut seen = std::collections::HashSet::new();
    query
        .iter()
        .map(String::as_str)
        .filter(move |term| seen.insert(*term))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn rare_terms_weigh_more_and_long_documents_are_normalised() {
        let mut index = Bm25::default();
        let cat = index.add(&doc("cat sat mat"));
        let dog = index.add(&doc("dog sat mat"));
        let long = index.add(&doc(
            "cat and a very long story about many other things here",
        ));
        index.add(&doc("sat mat"));
        assert!(index.idf("cat") > index.idf("sat"));
        assert!(index.idf("unknown") > index.idf("cat"));
        let scores: HashMap<DocId, f32> = index.scores(&doc("cat sat")).into_iter().collect();
        assert!(scores[&cat] > scores[&dog], "the rarer term decides");
        assert!(scores[&cat] > scores[&long], "the shorter document wins");
        assert_eq!(index.scores(&doc("nothing")), vec![]);
        // Holding each query term once at about the average length scores the ceiling.
        let exact = index
            .scores(&doc("dog dog"))
            .into_iter()
            .find(|(id, _)| *id == dog);
        let ratio = exact.unwrap().1 / index.ceiling(&doc("dog"));
        assert!((ratio - 1.0).abs() < 0.25, "{ratio}");
    }

    #[test]
    fn a_one_off_scoring_agrees_with_the_index() {
        let documents = [
            doc("cat sat mat"),
            doc("dog sat mat"),
            doc("cat cat and more words here"),
        ];
        let mut index = Bm25::default();
        for document in &documents {
            index.add(document);
        }
        let query = doc("cat mat");
        let ceiling = index.ceiling(&query);
        let from_index: HashMap<DocId, f32> = index.scores(&query).into_iter().collect();
        let one_off = relevance(&query, &documents);
        for (doc, share) in one_off.iter().enumerate() {
            let expected = from_index
                .get(&(doc as DocId))
                .map_or(0.0, |s| f64::from(s / ceiling).min(1.0));
            assert!(
                (share - expected).abs() < 1e-6,
                "{doc}: {share} vs {expected}"
            );
        }
        assert!(
            relevance(&doc("zebra"), &documents)
                .iter()
                .all(|r| *r == 0.0)
        );
    }

    #[test]
    fn repeated_query_terms_count_once_and_the_idf_is_never_negative() {
        let mut index = Bm25::default();
        for _ in 0..5 {
            index.add(&doc("everywhere"));
        }
        assert!(index.idf("everywhere") > 0.0);
        let once = index.scores(&doc("everywhere"))[0].1;
        let twice = index.scores(&doc("everywhere everywhere"))[0].1;
        assert_eq!(once, twice);
        assert_eq!(index.len(), 5);
    }
}
