//! What a player says: non-empty, bounded in characters.

use super::ParseError;

/// A writer's text (a name, a persona, lore, an event): not blank and at most `max`
/// characters as sent (what the OpenAPI document says), then trimmed.
pub fn bounded_text(field: &str, raw: &str, max: usize) -> Result<String, ParseError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ParseError(format!("{field} must not be empty")));
    }
    if raw.chars().count() > max {
        return Err(ParseError(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Surrounding whitespace is dropped once the text passed; the limit and the control
    /// characters are judged on the text as sent, as the OpenAPI document states them
    /// (`maxLength`, `pattern`). The limit counts characters, not bytes.
    pub fn parse(raw: &str, max_chars: usize) -> Result<Self, ParseError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(ParseError("content must not be empty".into()));
        }
        let chars = raw.chars().count();
        if chars > max_chars {
            return Err(ParseError(format!(
                "content must be at most {max_chars} characters (got {chars})"
            )));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(ParseError(
                "content must not contain control characters".into(),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_trimmed_and_bounded_by_characters() {
        assert_eq!(
            MessageText::parse("  hi  ", 10).map(MessageText::into_string),
            Ok("hi".into())
        );
        assert!(MessageText::parse(&"ü".repeat(10), 10).is_ok());
        assert!(MessageText::parse(&"ü".repeat(11), 10).is_err());
        assert!(MessageText::parse(" \n ", 10).is_err());
        assert!(MessageText::parse("a\u{7}b", 10).is_err());
    }

    #[test]
    fn the_limit_and_control_characters_count_the_text_as_sent() {
        assert!(MessageText::parse(&format!(" {}", "a".repeat(10)), 10).is_err());
        assert!(MessageText::parse("\u{b}hi", 10).is_err());
        assert!(MessageText::parse("\thi\r\n", 10).is_ok());
    }
}
