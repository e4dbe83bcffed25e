//! One relevance from two rankings of the same items: by words (BM25, as a share of the
//! query's weight an item holds) and by meaning (cosine), fused by their ranks, not
//! their scores (reciprocal rank fusion, Cormack, Clarke and Büttcher, SIGIR 2009).
//! Ranks because the two scales have nothing in common: e5's cosines sit between 0.7
//! and 0.9 for anything, BM25 grows with rare words; a mix of scores lets one drown
//! the other.

/// RRF's constant. The usual 60 flattens the head of each list; over a pair's few
/// hundred to few thousand lines the first ranks matter more: 10 measured best on the
/// repository's natural conversations (`bench recall --in-process`: recall@5 0.574 at
/// 60, 0.589 at 10, 0.604 at 5; within noise below 30). Still an item near the top of
/// both beats one at the very top of only one.
pub const RRF_K: f64 = 10.0;

/// The relevance of each item, 0 to 1: its lexical relevance when there is no dense
/// ranking; else the fused one, 1 for the first of both lists, 0.5 for the first of
/// one that the other does not hold. An item found by neither is 0.
///
/// `lexical[i]` is item i's lexical relevance (0: no query word), `dense[i]` its cosine
/// with the query (`None`: no vector of the current model; an orthogonal or opposite
/// one counts as none).
pub fn relevance(lexical: &[f64], dense: Option<&[Option<f64>]>) -> Vec<f64> {
    let Some(dense) = dense else {
        return lexical.to_vec();
    };
    let mut fused = vec![0.0; lexical.len()];
    let lexical_ranks = ranks(lexical.iter().map(|score| (*score > 0.0).then_some(*score)));
    let dense_ranks = ranks(dense.iter().map(|cosine| cosine.filter(|c| *c > 0.0)));
    for ranked in [lexical_ranks, dense_ranks] {
        for (rank, item) in ranked.into_iter().enumerate() {
            fused[item] += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let best = 2.0 / (RRF_K + 1.0);
    fused.iter_mut().for_each(|score| *score /= best);
    fused
}

/// The items that have a score, best first (ties: the later item first, as the newer
/// of two equally good memories).
fn ranks(scores: impl Iterator<Item = Option<f64>>) -> Vec<usize> {
    let mut scored: Vec<(usize, f64)> = scores
        .enumerate()
        .filter_map(|(i, score)| Some((i, score?)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    scored.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_meaning_the_lexical_relevance_stands() {
        assert_eq!(relevance(&[0.2, 0.0, 0.9], None), vec![0.2, 0.0, 0.9]);
    }

    #[test]
    fn ranks_not_scores_are_fused() {
        // Item 0 is first by words and last of ten by meaning; item 1 second by both;
        // item 2 first by meaning only; item 3 has no vector and no word.
        let mut lexical = vec![0.9, 0.5, 0.0, 0.0];
        let mut dense = vec![Some(0.70), Some(0.89), Some(0.90), None];
        for i in 0..6 {
            lexical.push(0.1);
            dense.push(Some(0.8 + f64::from(i) / 100.0));
        }
        let fused = relevance(&lexical, Some(&dense));
        assert!(
            fused[1] > fused[0],
            "second in both beats first of one, last of other"
        );
        assert!(fused[1] > fused[2], "in both beats first of one only");
        assert!((fused[2] - 0.5).abs() < 1e-9);
        assert_eq!(fused[3], 0.0);
        let first_of_both = relevance(&[1.0], Some(&[Some(0.9)]));
        assert!((first_of_both[0] - 1.0).abs() < 1e-9);
    }
}
