//! A pair's messages as a lexical index: one BM25 document per message, with where it
//! was said (conversation, `seq`), by whom and when, so a hit can be placed, dated and
//! given its neighbours without reading the history again. Messages are appended and
//! never edited; only an erasure removes them, and the cache drops an erased player's
//! index whole.

use super::{
    analyzer::{Analyzer, DETECTION_SAMPLE_CHARS},
    bm25::{Bm25, DocId},
};
use crate::store::facts::FactRow;
use crate::{
    domain::{ConversationId, Role},
    store::messages::MessageRow,
};
use chrono::{DateTime, Utc};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// One indexed message.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: u64,
    /// Index into `PairText::conversations`.
    pub conversation: u32,
    pub seq: u32,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct PairText {
    pub generation: u32,
    analyzer: Analyzer,
    /// The start of the pair's text, while it is shorter than a reliable detection
    /// needs: once it is not, the language is settled.
    sample: String,
    conversations: Vec<ConversationId>,
    /// By conversation: its index in `conversations` and the highest `seq` indexed.
    watermarks: HashMap<ConversationId, (u32, u32)>,
    docs: Vec<Doc>,
    by_position: HashMap<(u32, u32), DocId>,
    by_id: HashMap<u64, DocId>,
    bm25: Bm25,
    /// The pair's facts as terms, by id and text hash: a fact is analyzed once, not
    /// for every query (a thousand facts take ~7 ms to analyze).
    fact_terms: Mutex<FactTerms>,
}

/// Facts' terms by fact id and text hash.
type FactTerms = HashMap<(u64, String), Arc<[String]>>;

/// What `apply` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The text now reads as another language than the index was built for: build it
    /// again from the whole history.
    LanguageChanged,
}

impl PairText {
    /// The index of a pair's whole history (its messages in any order).
    pub fn build(generation: u32, messages: Vec<MessageRow>) -> Self {
        let mut sample = String::new();
        for message in &messages {
            if sample.len() >= DETECTION_SAMPLE_CHARS {
                break;
            }
            sample.push_str(&message.content);
            sample.push('\n');
        }
        let mut index = Self {
            generation,
            analyzer: Analyzer::detect(&sample),
            sample,
            ..Self::default()
        };
        index.append(messages);
        index
    }

    /// Adds the messages newer than what is indexed of their conversation (older ones,
    /// read by a caller that raced another, are skipped).
    pub fn apply(&mut self, messages: Vec<MessageRow>) -> Applied {
        let settled = self.sample.len() >= DETECTION_SAMPLE_CHARS;
        if !settled {
            for message in &messages {
                self.sample.push_str(&message.content);
                self.sample.push('\n');
            }
            if Analyzer::detect(&self.sample).language() != self.analyzer.language() {
                return Applied::LanguageChanged;
            }
        }
        self.append(messages);
        Applied::Done
    }

    fn append(&mut self, messages: Vec<MessageRow>) {
        for message in messages {
            let next = self.conversations.len() as u32;
            let watermark = self
                .watermarks
                .entry(message.conversation_id.clone())
                .or_insert((next, 0));
            let conversation = watermark.0;
            watermark.1 = watermark.1.max(message.seq);
            if conversation == next {
                self.conversations.push(message.conversation_id.clone());
            }
            if self.by_position.contains_key(&(conversation, message.seq)) {
                continue;
            }
            let doc = self.bm25.add(&self.analyzer.terms(&message.content));
            self.by_position.insert((conversation, message.seq), doc);
            self.by_id.insert(message.id, doc);
            self.docs.push(Doc {
                id: message.id,
                conversation,
                seq: message.seq,
                role: message.role,
                created_at: message.created_at,
            });
        }
    }

    /// The conversations whose messages after the `seq` given are not indexed yet, of
    /// the pair's conversations and their highest `seq` as the database has them.
    pub fn behind(&self, last_seqs: &[(ConversationId, u32)]) -> Vec<(ConversationId, u32)> {
        last_seqs
            .iter()
            .filter_map(|(conversation, last_seq)| {
                let indexed = self.watermarks.get(conversation).map_or(0, |(_, seq)| *seq);
                (*last_seq > indexed).then(|| (conversation.clone(), indexed))
            })
            .collect()
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    pub fn bm25(&self) -> &Bm25 {
        &self.bm25
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn doc(&self, doc: DocId) -> &Doc {
        &self.docs[doc as usize]
    }

    pub fn conversation(&self, doc: &Doc) -> &ConversationId {
        &self.conversations[doc.conversation as usize]
    }

    pub fn by_message_id(&self, id: u64) -> Option<DocId> {
        self.by_id.get(&id).copied()
    }

    /// The message at `seq` of the conversation `doc` is in, if indexed.
    pub fn at(&self, doc: &Doc, seq: u32) -> Option<DocId> {
        self.by_position.get(&(doc.conversation, seq)).copied()
    }

    /// The indexed messages of `conversation` with `from <= seq <= to`, in order.
    pub fn range(&self, conversation: &ConversationId, from: u32, to: u32) -> Vec<DocId> {
        let Some((index, last)) = self.watermarks.get(conversation) else {
            return Vec::new();
        };
        (from..=to.min(*last))
            .filter_map(|seq| self.by_position.get(&(*index, seq)).copied())
            .collect()
    }

    /// The terms of each fact, in order: from the memo, the others analyzed now. The memo
    /// keeps only the facts asked for, so it never holds more than the pair has.
    pub fn fact_terms(&self, facts: &[FactRow]) -> Vec<Arc<[String]>> {
        let mut memo = self
            .fact_terms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut kept = HashMap::with_capacity(facts.len());
        let terms = facts
            .iter()
            .map(|fact| {
                let key = (fact.id, fact.text_hash.clone());
                let terms = memo
                    .remove(&key)
                    .or_else(|| kept.get(&key).cloned())
                    .unwrap_or_else(|| self.analyzer.terms(&fact.text).into());
                kept.insert(key, terms.clone());
                terms
            })
            .collect();
        *memo = kept;
        terms
    }

    /// Bytes held, roughly: the BM25 postings and the bookkeeping of each message (the
    /// memo of fact terms, a few hundred bytes a fact, is not counted).
    pub fn bytes(&self) -> usize {
        self.bm25.bytes() + self.docs.len() * 112 + self.sample.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn message(id: u64, conversation: &str, seq: u32, content: &str) -> MessageRow {
        MessageRow {
            id,
            conversation_id: ConversationId::parse(conversation).unwrap(),
            seq,
            role: if seq % 2 == 1 {
                Role::Player
            } else {
                Role::Character
            },
            content: content.into(),
            source: None,
            fallback_reason: None,
            truncated: false,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn messages_are_indexed_once_and_placed() {
        let mut index = PairText::build(
            0,
            vec![
                message(1, "c-1", 1, "My sister lives in Riverton"),
                message(2, "c-1", 2, "Riverton is lovely in spring"),
            ],
        );
        assert_eq!(
            index.apply(vec![message(2, "c-1", 2, "again")]),
            Applied::Done
        );
        assert_eq!(index.len(), 2, "a message read twice is indexed once");
        index.apply(vec![message(7, "c-2", 1, "A new conversation")]);
        let c1 = ConversationId::parse("c-1").unwrap();
        let c2 = ConversationId::parse("c-2").unwrap();
        assert_eq!(
            index.behind(&[(c1.clone(), 4), (c2.clone(), 1)]),
            vec![(c1.clone(), 2)]
        );
        assert_eq!(index.range(&c1, 1, 9).len(), 2);
        let doc = index.doc(index.by_message_id(2).unwrap());
        assert_eq!((index.conversation(doc), doc.seq), (&c1, 2));
        assert_eq!(index.at(doc, 1), index.by_message_id(1));
        assert!(index.bytes() > 0);
    }

    #[test]
    fn a_pair_that_turns_out_to_speak_another_language_is_rebuilt() {
        let mut index = PairText::build(0, vec![message(1, "c-1", 1, "ok")]);
        assert_eq!(index.analyzer().language(), "english");
        let french = "Je suis allée au marché hier avec ma sœur, et nous avons acheté des \
                      pommes pour la tarte de dimanche. Elle adore les pommes.";
        assert_eq!(
            index.apply(vec![message(2, "c-1", 2, french)]),
            Applied::LanguageChanged
        );
    }
}
