//! The mock providers' `/embeddings`: a deterministic vector for a text, shared by the
//! benchmark's mock and the tests' (`#[path]`-included there), so both rank alike.
//!
//! Not a language model: each content word lands on a dimension chosen by a stable hash
//! (FNV-1a), and words of one small concept family ("cat", "dog", "pets"…) also share a
//! concept dimension of their own (no word hashes onto one), weighted higher. So a question about pets lands near a fact about a
//! cat, which a lexical match cannot see, and unrelated texts stay far apart. L2-normed:
//! the cosine is a dot product.

/// Dimensions of every mock vector: enough that unrelated words rarely share one.
pub const DIMENSIONS: usize = 256;

/// Families of words that mean nearly the same thing to the mock.
const CONCEPTS: &[&[&str]] = &[
    &[
        "cat", "kitten", "dog", "puppy", "pet", "animal", "whisker", "hound", "horse", "pony",
        "parrot", "bird", "furry",
    ],
    &[
        "sea", "ocean", "boat", "ship", "sail", "sailor", "water", "swim", "drown", "harbour",
        "harbor", "fish", "fishing",
    ],
    &[
        "sister", "brother", "mother", "father", "family", "daughter", "son", "wife", "husband",
        "uncle", "aunt", "cousin", "sibling", "parent",
    ],
    &[
        "sword", "blade", "axe", "weapon", "bow", "spear", "dagger", "armour", "armor", "shield",
    ],
    &[
        "gold", "coin", "money", "silver", "pay", "debt", "owe", "price", "rich", "poor", "wage",
    ],
    &[
        "food",
        "eat",
        "bread",
        "stew",
        "ale",
        "drink",
        "hungry",
        "meal",
        "cook",
        "beer",
        "wine",
        "pie",
        "cheese",
        "favourite",
        "favorite",
        "dish",
    ],
    &[
        "home", "house", "village", "town", "city", "born", "live", "hometown", "farm", "capital",
    ],
    &[
        "work",
        "job",
        "trade",
        "smith",
        "baker",
        "bakery",
        "merchant",
        "guild",
        "craft",
        "apprentice",
        "mill",
        "miller",
    ],
    &[
        "fear",
        "afraid",
        "scared",
        "terrified",
        "dread",
        "nightmare",
        "phobia",
        "spider",
        "dark",
    ],
    &["name", "called", "named"],
];

const STOPWORDS: &[&str] = &[
    "the", "and", "but", "for", "are", "was", "were", "you", "your", "have", "has", "had", "with",
    "that", "this", "what", "who", "how", "why", "when", "where", "any", "can", "could", "would",
    "should", "will", "not", "from", "they", "them", "their", "there", "about", "just", "player",
    "my", "me", "do", "did", "is", "it", "of", "to", "in", "on", "a", "an", "i",
];

fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A word as the mock compares it: lower case, a plural "s" dropped.
fn stem(word: &str) -> String {
    let word = word.to_lowercase();
    if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_owned()
    } else {
        word
    }
}

/// The mock's vector for `text`: `DIMENSIONS` floats, unit length (all zero for a text
/// with no content word).
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(stem)
        .filter(|word| !STOPWORDS.contains(&word.as_str()))
    {
        let word_dimensions = (DIMENSIONS - CONCEPTS.len()) as u64;
        vector[CONCEPTS.len() + (fnv1a(&word) % word_dimensions) as usize] += 1.0;
        if let Some(family) = CONCEPTS
            .iter()
            .position(|family| family.contains(&word.as_str()))
        {
            vector[family] += 2.0;
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[cfg(test)]
mod tests {
    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn a_question_about_pets_lands_nearer_a_cat_than_the_sea() {
        let query = super::embed("Do you like pets?");
        let cat = super::embed("Player has a cat named Whiskers");
        let sea = super::embed("Player is the captain of a ship");
        assert!(cosine(&query, &cat) > cosine(&query, &sea) + 0.1);
        assert_eq!(
            super::embed("Player has a cat"),
            super::embed("player has a CATS")
        );
        assert!((cosine(&cat, &cat) - 1.0).abs() < 1e-5);
        // Words never land on a concept's dimension.
        let filler = super::embed("line 495 of the weather report");
        assert!(cosine(&query, &filler) < 0.35);
    }
}
