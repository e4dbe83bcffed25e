//! The character's own name is no evidence in the character's memory of a player: every
//! line of the pair is said by the character or to them, so in "What did Idris claim his
//! rival's saffron was made of?" only "claim", "rival", "saffron" tell the lines apart.
//! Left in, the name ranks every line that happens to say "Idris" above the answer
//! (measured with `bench recall --in-process`: recall@5 by words 0.547 with the name,
//! 0.558 without; hybrid 0.589 and 0.635).

/// `query` without the words of `name` (case as written, a possessive "'s" with them), so
/// "Master Idris's camel" leaves "camel" but "who is the caravan master" keeps "master".
/// A query that is nothing but the name stays whole: the lines that name them are then
/// what was asked for.
pub fn unnamed(query: &str, name: &str) -> String {
    let parts: Vec<&str> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|part| part.chars().count() >= 2)
        .collect();
    if parts.is_empty() {
        return query.to_owned();
    }
    let mut kept = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find(|c: char| c.is_alphanumeric()) {
        kept.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if parts.contains(&word) {
            rest = strip_possessive(rest);
        } else {
            kept.push_str(word);
        }
    }
    kept.push_str(rest);
    match kept.chars().any(char::is_alphanumeric) {
        true => kept,
        false => query.to_owned(),
    }
}

/// `rest` past a possessive ending ("'s", "’s", or a bare apostrophe after an s).
fn strip_possessive(rest: &str) -> &str {
    for ending in ["'s", "\u{2019}s", "'", "\u{2019}"] {
        if let Some(after) = rest.strip_prefix(ending)
            && !after.starts_with(|c: char| c.is_alphanumeric())
        {
            return after;
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_and_its_possessive_go_the_rest_stays() {
        assert_eq!(
            unnamed("What did Idris's wife say?", "Master Idris"),
            "What did  wife say?"
        );
        assert_eq!(
            unnamed("Master Idris’s camel, Nadira", "Master Idris"),
            "  camel, Nadira"
        );
        assert_eq!(
            unnamed("Who is the caravan master?", "Master Idris"),
            "Who is the caravan master?",
            "the name's case as written: a lower-case word is no name"
        );
        assert_eq!(
            unnamed("Did Idrisa come?", "Idris"),
            "Did Idrisa come?",
            "whole words only"
        );
        assert_eq!(unnamed("Idris's don't", "Idris"), " don't");
    }

    #[test]
    fn a_query_of_the_name_alone_stays_whole() {
        assert_eq!(unnamed("Idris?", "Master Idris"), "Idris?");
        assert_eq!(unnamed("anything", "A"), "anything", "no part long enough");
        assert_eq!(unnamed("", "Mara"), "");
    }
}
