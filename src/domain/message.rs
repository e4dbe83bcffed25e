//! What a stored message is: who said it, where a character's line came from, and why a
//! line is a canned one. Stored as short strings; unknown strings are refused on read.

use serde::{Deserialize, Serialize};

/// Implements the string form (`as_str`, `parse`) and its sqlx mapping to a VARCHAR column.
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::MySql> for $name {
            fn type_info() -> sqlx::mysql::MySqlTypeInfo {
                <str as sqlx::Type<sqlx::MySql>>::type_info()
            }

            fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::MySql>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::MySql> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<u8>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::MySql>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::MySql> for $name {
            fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <&str as sqlx::Decode<'r, sqlx::MySql>>::decode(value)?;
                Self::parse(raw).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), raw).into()
                })
            }
        }
    };
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Player,
    Character,
}

string_enum!(Role { Player => "player", Character => "character" });

/// Where a character's line came from: the LLM, a canned line, or imported history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Llm,
    Fallback,
    /// Brought in by `POST /conversations/{id}/import`, as the studio's old system had it.
    Import,
}

string_enum!(Source { Llm => "llm", Fallback => "fallback", Import => "import" });

/// Where a remembered fact came from: extracted from a turn's exchange, or from imported
/// history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    Conversation,
    Import,
    /// A game event the character witnessed or its faction learned at once.
    Event,
    /// Hearsay: told by another character of one of its factions.
    Gossip,
}

string_enum!(MemorySource {
    Conversation => "conversation",
    Import => "import",
    Event => "event",
    Gossip => "gossip",
});

/// Why a reply is a canned line rather than the LLM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    RateLimited,
    BudgetExceeded,
    LlmError,
    LlmNotConfigured,
    CircuitOpen,
}

string_enum!(FallbackReason {
    RateLimited => "rate_limited",
    BudgetExceeded => "budget_exceeded",
    LlmError => "llm_error",
    LlmNotConfigured => "llm_not_configured",
    CircuitOpen => "circuit_open",
});

impl FallbackReason {
    /// The source of a reply that has (or has not) a fallback reason.
    pub fn source_of(reason: Option<Self>) -> Source {
        match reason {
            Some(_) => Source::Fallback,
            None => Source::Llm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_forms_round_trip_and_match_serde() -> serde_json::Result<()> {
        for reason in [
            FallbackReason::RateLimited,
            FallbackReason::BudgetExceeded,
            FallbackReason::LlmError,
            FallbackReason::LlmNotConfigured,
            FallbackReason::CircuitOpen,
        ] {
            assert_eq!(FallbackReason::parse(reason.as_str()), Some(reason));
            assert_eq!(serde_json::to_string(&reason)?, format!("\"{reason}\""));
        }
        for role in [Role::Player, Role::Character] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_string(&role)?, format!("\"{role}\""));
        }
        assert_eq!(Source::parse("fallback"), Some(Source::Fallback));
        assert_eq!(Source::parse("LLM"), None);
        assert_eq!(Source::parse("import"), Some(Source::Import));
        assert_eq!(serde_json::to_string(&Source::Import)?, "\"import\"");
        for source in [
            MemorySource::Conversation,
            MemorySource::Import,
            MemorySource::Event,
            MemorySource::Gossip,
        ] {
            assert_eq!(MemorySource::parse(source.as_str()), Some(source));
        }
        Ok(())
    }
}
