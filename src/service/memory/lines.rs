//! Past messages ranked for a query, for a search and a turn's notes alike: BM25 over
//! the pair's lexical index, fused with the cosine of the pair's message vectors when
//! embeddings are on (`fusion`), and the neighbours that give a found line its context.
//! Pure and local: the index and the vectors are read before, the texts after.

use super::{
    fusion,
    lexical::{
        bm25::DocId,
        index::{Doc, PairText},
    },
    vectors::{PairVectors, cosine},
};

/// How much of the line before's and the line after's score a message gains. Talk is
/// question and answer: "What's your cat called?" — "Mustard." holds the answer in a
/// line that shares no word with "What is the name of Haskel's cat?". Measured with
/// `bench recall --in-process` on the repository's natural conversations (words:
/// recall@5 0.378 without, 0.547 with; e5 alone: 0.468 without, 0.545 with).
const WORDS_FROM_NEIGHBOURS: (f64, f64) = (0.8, 0.2);
const MEANING_FROM_NEIGHBOURS: (f64, f64) = (0.5, 0.2);

/// A message found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    pub doc: DocId,
    /// 0 to 1 (`fusion::relevance`).
    pub relevance: f64,
}

/// What the query is compared with, when embeddings are on: its vector, the pair's
/// vectors, and the least cosine that counts as related at all.
#[derive(Debug, Clone, Copy)]
pub struct Meaning<'a> {
    pub vector: &'a [f32],
    pub pair: &'a PairVectors,
    pub min_similarity: f64,
}

/// The `limit` messages most relevant to `query` (a query word, or a vector similar
/// enough), best first, ties to the line holding the words, then to the later message;
/// `leave_out` skips some (a prompt's own window).
pub fn rank(
    index: &PairText,
    query: &str,
    meaning: Option<Meaning<'_>>,
    limit: usize,
    leave_out: impl Fn(&PairText, &Doc) -> bool,
) -> Vec<Found> {
    let terms = index.analyzer().terms(query);
    let bm25 = index.bm25();
    let ceiling = f64::from(bm25.ceiling(&terms));
    let own_words: Vec<(DocId, f64)> = match ceiling > 0.0 {
        true => bm25
            .scores(&terms)
            .into_iter()
            .map(|(doc, score)| (doc, (f64::from(score) / ceiling).min(1.0)))
            .collect(),
        false => Vec::new(),
    };
    // Capped to stay on the scale facts are scored on (a line holding every query word
    // is about 1); a line reaches the cap only with support on both sides of it. Not the
    // cosines: they are fused by rank, and e5's sit so high that a cap would tie them all.
    let mut lexical = smoothed(index, &own_words, WORDS_FROM_NEIGHBOURS);
    lexical.iter_mut().for_each(|score| *score = score.min(1.0));
    let dense: Option<Vec<Option<f64>>> = meaning.map(|meaning| {
        let mut own: Vec<Option<f64>> = vec![None; index.len()];
        for (id, stored) in meaning.pair.messages() {
            if let Some(doc) = index.by_message_id(id) {
                let similarity = cosine(meaning.vector, &stored.vector);
                own[doc as usize] = (similarity >= meaning.min_similarity).then_some(similarity);
            }
        }
        let cosines: Vec<(DocId, f64)> = own
            .iter()
            .enumerate()
            .filter_map(|(doc, cosine)| Some((doc as DocId, (*cosine)?)))
            .collect();
        let smoothed = smoothed(index, &cosines, MEANING_FROM_NEIGHBOURS);
        // Only a message with a vector of its own is ranked by meaning.
        own.iter()
            .zip(smoothed)
            .map(|(own, smoothed)| own.map(|_| smoothed))
            .collect()
    });
    let mut words = vec![0.0; index.len()];
    for (doc, score) in &own_words {
        words[*doc as usize] = *score;
    }
    let relevance = fusion::relevance(&lexical, dense.as_deref());
    let mut found: Vec<Found> = relevance
        .into_iter()
        .enumerate()
        .filter(|(doc, relevance)| *relevance > 0.0 && !leave_out(index, index.doc(*doc as DocId)))
        .map(|(doc, relevance)| Found {
            doc: doc as DocId,
            relevance,
        })
        .collect();
    // On a tie (an answer between two hits reaches their score), the line that holds
    // the words goes first.
    let order = |a: &Found, b: &Found| {
        b.relevance
            .total_cmp(&a.relevance)
            .then(words[b.doc as usize].total_cmp(&words[a.doc as usize]))
            .then(b.doc.cmp(&a.doc))
    };
    // The first `limit` chosen before they are sorted: with embeddings on, every line
    // of a long history is a candidate.
    if found.len() > limit && limit > 0 {
        found.select_nth_unstable_by(limit - 1, order);
    }
    found.truncate(limit);
    found.sort_by(order);
    found
}

/// Each message's score plus shares of its neighbours' (the line before, the line after):
/// an answer rarely repeats the question's words. `scores` holds the messages that
/// score at all, so only they and their neighbours are visited.
fn smoothed(index: &PairText, scores: &[(DocId, f64)], (before, after): (f64, f64)) -> Vec<f64> {
    let mut smoothed = vec![0.0; index.len()];
    for (doc, score) in scores {
        let at = index.doc(*doc);
        smoothed[*doc as usize] += score;
        // This message is the line before the next one, the line after the previous.
        if let Some(next) = index.at(at, at.seq + 1) {
            smoothed[next as usize] += before * score;
        }
        if at.seq > 1
            && let Some(previous) = index.at(at, at.seq - 1)
        {
            smoothed[previous as usize] += after * score;
        }
    }
    smoothed
}

/// The messages just before and after `doc` in its conversation, `radius` each side,
/// in order, those indexed.
pub fn neighbours(index: &PairText, doc: DocId, radius: u32) -> Vec<DocId> {
    let at = index.doc(doc);
    let before = (at.seq.saturating_sub(radius).max(1)..at.seq).filter_map(|seq| index.at(at, seq));
    let after = (at.seq + 1..=at.seq + radius).filter_map(|seq| index.at(at, seq));
    before.chain(after).collect()
}

/// Of the messages a fact was learned from (its conversation, `from..=to`), the `limit`
/// that share most words with the fact, in order: the lines it came from.
pub fn sources(
    index: &PairText,
    fact_text: &str,
    learned_in: (&crate::domain::ConversationId, u32, u32),
    limit: usize,
) -> Vec<DocId> {
    let (conversation, from, to) = learned_in;
    let in_range = index.range(conversation, from, to);
    if in_range.is_empty() {
        return Vec::new();
    }
    let terms = index.analyzer().terms(fact_text);
    let mut scored: Vec<(DocId, f32)> = index
        .bm25()
        .scores(&terms)
        .into_iter()
        .filter(|(doc, _)| in_range.contains(doc))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<DocId> = scored.into_iter().take(limit).map(|(doc, _)| doc).collect();
    chosen.sort();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{ConversationId, Role},
        store::{
            messages::MessageRow,
            vectors::{ItemKind, VectorRow},
        },
    };
    use chrono::Utc;

    fn message(id: u64, conversation: &str, seq: u32, content: &str) -> MessageRow {
        MessageRow {
            id,
            conversation_id: ConversationId::parse(conversation).unwrap(),
            seq,
            role: Role::Player,
            content: content.into(),
            source: None,
            fallback_reason: None,
            truncated: false,
            created_at: Utc::now(),
        }
    }

    fn index() -> PairText {
        PairText::build(
            0,
            vec![
                message(1, "c-1", 1, "We sailed to Brindle on the Gull's Promise"),
                message(2, "c-1", 2, "How was the weather out there?"),
                message(
                    3,
                    "c-1",
                    3,
                    "Stormy. My cat Pepper hid below deck the whole way",
                ),
                message(4, "c-2", 1, "A rat got into the stores yesterday"),
                message(5, "c-2", 2, "Good cat"),
            ],
        )
    }

    #[test]
    fn messages_rank_by_their_words_and_the_window_is_left_out() {
        let index = index();
        let ids =
            |found: Vec<Found>| -> Vec<u64> { found.iter().map(|f| index.doc(f.doc).id).collect() };
        let found = rank(
            &index,
            "Where did Pepper the cat hide?",
            None,
            10,
            |_, _| false,
        );
        assert_eq!(ids(found.clone())[0], 3, "three words beat one");
        assert_eq!(
            ids(found.clone())[1],
            5,
            "a word of its own beats a neighbour's"
        );
        assert!(found.iter().all(|f| (0.0..=1.0).contains(&f.relevance)));
        assert_eq!(ids(found.clone()).len(), 4, "and the neighbours of both");
        let c2 = ConversationId::parse("c-2").unwrap();
        let outside = rank(&index, "cat", None, 10, |index, doc| {
            index.conversation(doc) == &c2
        });
        assert_eq!(ids(outside), vec![3, 2], "the line before by its neighbour");
        assert!(rank(&index, "zebra", None, 10, |_, _| false).is_empty());
        let first = rank(&index, "Where did Pepper the cat hide?", None, 2, |_, _| {
            false
        });
        assert_eq!(first, found[..2], "a limit keeps the first, in order");
    }

    #[test]
    fn an_answer_ranks_by_the_question_before_it() {
        let index = index();
        let found = rank(&index, "What was the weather like?", None, 10, |_, _| false);
        let ids: Vec<u64> = found.iter().map(|f| index.doc(f.doc).id).collect();
        assert_eq!(ids[..2], [2, 3], "the answer after the question: {ids:?}");
    }

    #[test]
    fn a_message_found_by_meaning_alone_is_found() {
        let index = index();
        let mut pair = PairVectors::default();
        pair.apply(
            [(2u64, [1.0f32, 0.0]), (3, [0.0, 1.0])]
                .into_iter()
                .enumerate()
                .map(|(rev, (id, vector))| VectorRow {
                    rev: rev as u64 + 1,
                    kind: ItemKind::Message,
                    item_id: id,
                    conversation_id: None,
                    seq: None,
                    text_hash: None,
                    vector: vector.to_vec(),
                })
                .collect(),
        );
        let meaning = Meaning {
            vector: &[1.0, 0.0],
            pair: &pair,
            min_similarity: 0.0,
        };
        let found = rank(&index, "rain at sea", Some(meaning), 10, |_, _| false);
        assert_eq!(index.doc(found[0].doc).id, 2, "the weather, by meaning");
    }

    #[test]
    fn neighbours_and_sources_stay_in_their_conversation() {
        let index = index();
        let second = index.by_message_id(2).unwrap();
        let around: Vec<u64> = neighbours(&index, second, 1)
            .into_iter()
            .map(|doc| index.doc(doc).id)
            .collect();
        assert_eq!(around, vec![1, 3]);
        let first_of_c2 = index.by_message_id(4).unwrap();
        assert_eq!(neighbours(&index, first_of_c2, 1).len(), 1);
        let c1 = ConversationId::parse("c-1").unwrap();
        let from: Vec<u64> = sources(&index, "The player's cat is called Pepper", (&c1, 1, 3), 2)
            .into_iter()
            .map(|doc| index.doc(doc).id)
            .collect();
        assert_eq!(from, vec![3]);
    }
}
