//! Identifiers chosen by the game: characters, players and conversations.

use super::ParseError;

/// Longest id the schema stores (VARCHAR(64), counted in characters).
pub const MAX_ID_CHARS: usize = 64;

fn parse_id(kind: &str, raw: &str) -> Result<String, ParseError> {
    if raw.trim().is_empty() {
        return Err(ParseError(format!("{kind} must not be empty")));
    }
    let chars = raw.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(ParseError(format!(
            "{kind} must be at most {MAX_ID_CHARS} characters (got {chars})"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ParseError(format!(
            "{kind} must not contain control characters"
        )));
    }
    if raw.trim() != raw {
        return Err(ParseError(format!(
            "{kind} must not start or end with whitespace"
        )));
    }
    Ok(raw.to_owned())
}

macro_rules! game_id {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("A ", $kind, " as chosen by the game: 1 to 64 characters, no control characters.")]
        ///
        /// Read back from the database or a stored answer without checks: only parsed
        /// ids are ever written.
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                parse_id($kind, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

game_id!(CharacterId, "character_id");
game_id!(PlayerId, "player_id");
game_id!(ConversationId, "conversation_id");
/// A list of names (factions, flags, tags), each parsed as ids are: at most `max`, a name
/// sent twice kept once, in the order sent.
pub fn parse_names<T: PartialEq>(
    field: &str,
    raw: &[String],
    max: usize,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    if raw.len() > max {
        return Err(ParseError(format!("{field} holds at most {max} names")));
    }
    let mut names: Vec<T> = Vec::with_capacity(raw.len());
    for name in raw {
        let name = parse(name)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

game_id!(ClientMessageId, "client_id");
game_id!(ClientEventId, "client_event_id");
game_id!(LoreId, "lore id");
game_id!(Faction, "faction");
game_id!(Flag, "flag");
game_id!(Tag, "tag");
game_id!(ScopeId, "scope_id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_and_sql_looking_ids_are_accepted_verbatim() {
        for raw in ["innkeeper_mara", "Ünïcødé-🐉", "'; DROP TABLE messages; --"] {
            assert_eq!(
                PlayerId::parse(raw).map(|id| id.to_string()),
                Ok(raw.to_owned())
            );
        }
    }

    #[test]
    fn ids_are_limited_to_64_characters_not_bytes() {
        assert!(PlayerId::parse(&"é".repeat(64)).is_ok());
        assert!(PlayerId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn empty_padded_or_control_ids_are_refused() {
        for raw in ["", "   ", " p1", "p1\n", "a\u{0}b"] {
            assert!(ConversationId::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
