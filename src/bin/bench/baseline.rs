//! The yardsticks `bench recall` holds the service against, computed by the bench itself
//! over the same messages, with nothing of the service's code: a plain BM25 (words
//! lower-cased and split at non-alphanumerics, English stop words dropped, no stemming,
//! Okapi k1 = 1.5, b = 0.75 as `rank_bm25` has them) and a plain e5 (cosine of the local
//! server's vectors, with e5's "query: " / "passage: " prefixes, or "query: " on both
//! sides as the service embedded until issue 24).

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};

const K1: f64 = 1.5;
const B: f64 = 0.75;

fn tokens(text: &str, stop: &HashSet<&str>) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty() && !stop.contains(word))
        .map(str::to_owned)
        .collect()
}

/// A plain BM25 over `documents`.
pub struct PlainBm25 {
    stop: HashSet<&'static str>,
    docs: Vec<HashMap<String, f64>>,
    lengths: Vec<f64>,
    average: f64,
    df: HashMap<String, f64>,
}

impl PlainBm25 {
    pub fn new(documents: &[&str]) -> Self {
        let stop: HashSet<&'static str> = stop_words::get("en").iter().copied().collect();
        let mut docs = Vec::new();
        let mut lengths = Vec::new();
        let mut df: HashMap<String, f64> = HashMap::new();
        for document in documents {
            let words = tokens(document, &stop);
            lengths.push(words.len() as f64);
            let mut counts: HashMap<String, f64> = HashMap::new();
            for word in words {
                *counts.entry(word).or_default() += 1.0;
            }
            for word in counts.keys() {
                *df.entry(word.clone()).or_default() += 1.0;
            }
            docs.push(counts);
        }
        let average = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
        Self {
            stop,
            docs,
            lengths,
            average,
            df,
        }
    }

    /// Document indexes, best first, those sharing no word left out.
    pub fn rank(&self, query: &str) -> Vec<usize> {
        let n = self.docs.len() as f64;
        let words: HashSet<String> = tokens(query, &self.stop).into_iter().collect();
        let mut scored: Vec<(usize, f64)> = self
            .docs
            .iter()
            .enumerate()
            .filter_map(|(i, counts)| {
                let mut score = 0.0;
                for word in &words {
                    let Some(tf) = counts.get(word) else { continue };
                    let df = self.df[word];
                    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                    let norm = K1 * (1.0 - B + B * self.lengths[i] / self.average.max(1.0));
                    score += idf * tf * (K1 + 1.0) / (tf + norm);
                }
                (score > 0.0).then_some((i, score))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().map(|(i, _)| i).collect()
    }
}

/// The local e5 server (`scripts/local-embeddings.sh`), asked directly.
pub struct E5 {
    pub client: reqwest::Client,
    pub base_url: String,
    pub model: String,
}

#[derive(Deserialize)]
struct Embeddings {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    embedding: Vec<f32>,
    index: usize,
}

impl E5 {
    /// Unit vectors of `texts`, embedded as `input_type` ("query" or "passage").
    pub async fn embed(&self, texts: &[String], input_type: &str) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(64) {
            let response = self
                .client
                .post(format!("{}/embeddings", self.base_url))
                .json(&json!({"model": self.model, "input": batch, "input_type": input_type}))
                .send()
                .await
                .context("the local embedding server")?;
            if !response.status().is_success() {
                bail!("the local embedding server: {}", response.status());
            }
            let mut answer: Embeddings = response.json().await?;
            answer.data.sort_by_key(|datum| datum.index);
            vectors.extend(answer.data.into_iter().map(|datum| unit(datum.embedding)));
        }
        Ok(vectors)
    }
}

fn unit(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Document indexes by cosine to `query`, best first.
pub fn rank_by_cosine(query: &[f32], documents: &[Vec<f32>]) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_bm25_prefers_rare_words_and_skips_the_unrelated() {
        let index = PlainBm25::new(&[
            "the cat sat on the mat",
            "the dog sat on the mat",
            "nothing at all",
        ]);
        assert_eq!(index.rank("cat mat"), vec![0, 1]);
        assert!(index.rank("zebra").is_empty());
    }

    #[test]
    fn cosine_ranking() {
        let docs = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        assert_eq!(rank_by_cosine(&[1.0, 0.0], &docs), vec![1, 0]);
    }
}
