//! Wire rules several routes share, written once for the OpenAPI document: what an id
//! chosen by the game looks like, what "not blank" means, and integers as JSON Schema
//! counts them. The parsers in `domain` and `service` decide; these say the same thing in
//! the document, so that a client (or schemathesis) reading it sends only what is accepted.
//!
//! Patterns spell whitespace and control characters out as ranges rather than `\s`, so
//! that ECMA, Python and Rust regex engines read the same sets: whitespace is what Rust's
//! `char::is_whitespace` trims (`\t-\r`, space, U+0085, U+00A0, U+1680, U+2000–U+200A,
//! U+2028, U+2029, U+202F, U+205F, U+3000), control characters what `char::is_control`
//! refuses (`\x00-\x1f`, `\x7f-\x9f`).

use serde::{Deserialize, Deserializer, de::Error as _};
use std::borrow::Cow;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{Object, ObjectBuilder, Schema, Type},
    },
};

/// What `char::is_control` refuses, as the inside of a regex character class.
macro_rules! controls {
    () => {
        r"\x00-\x1f\x7f-\x9f"
    };
}

/// What `char::is_whitespace` (and so `str::trim`) drops, as the inside of a character class.
macro_rules! whitespace {
    () => {
        r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}

/// An id: no control characters anywhere, and no whitespace at either end (`domain::ids`).
pub const ID_PATTERN: &str = concat!(
    "^[^",
    controls!(),
    whitespace!(),
    "](?:[^",
    controls!(),
    "]*[^",
    controls!(),
    whitespace!(),
    "])?$"
);

/// A comma-separated list of at most `max` names as ids are (flags, tags), empty for
/// none: no item is empty, holds a comma, or is longer than 64 characters (`domain::ids`).
pub fn name_list_pattern(max: usize) -> String {
    let edge = concat!("[^,", controls!(), whitespace!(), "]");
    let inner = concat!("[^,", controls!(), "]");
    let item = format!("{edge}(?:{inner}{{0,62}}{edge})?");
    format!("^(?:{item}(?:,{item}){{0,{}}})?$", max.saturating_sub(1))
}

/// A comma-separated list in a query string, as a list (empty for none).
pub fn comma_list(raw: Option<&str>) -> Vec<String> {
    match raw {
        None | Some("") => Vec::new(),
        Some(raw) => raw.split(',').map(str::to_owned).collect(),
    }
}

/// Somewhere a character that is not whitespace: what is left after trimming is not empty.
pub const NOT_BLANK_PATTERN: &str = concat!("[^", whitespace!(), "]");

/// A player's line (`domain::MessageText`): no control characters but tab, line feed and
/// carriage return, and not blank.
pub const MESSAGE_PATTERN: &str = concat!(
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*[^",
    controls!(),
    whitespace!(),
    r"][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
);

/// An `Idempotency-Key`: 1 to 128 printable ASCII characters (what a header value can
/// carry and `to_str` reads), no spaces at either end (`service::turn::idempotency`).
pub const IDEMPOTENCY_KEY_PATTERN: &str = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$";

/// Longest id, in characters (`domain::ids::MAX_ID_CHARS`).
const MAX_ID_CHARS: usize = crate::domain::MAX_ID_CHARS;

/// An id chosen by the game (character, player, conversation), as the document shows it.
pub struct GameId;

impl PartialSchema for GameId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Chosen by the game: 1 to 64 characters, no control characters, no whitespace at either end.",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_ID_CHARS))
            .pattern(Some(ID_PATTERN))
            .examples(["innkeeper_mara"])
            .into()
    }
}

impl ToSchema for GameId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("GameId")
    }
}

/// The `Idempotency-Key` header of a turn, as the document shows it.
pub struct IdempotencyKeyHeader;

impl PartialSchema for IdempotencyKeyHeader {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1 to 128 printable ASCII characters, no space at either end.",
            ))
            .min_length(Some(1))
            .max_length(Some(crate::service::turn::idempotency::MAX_KEY_CHARS))
            .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
            .into()
    }
}

impl ToSchema for IdempotencyKeyHeader {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IdempotencyKey")
    }
}

/// An id as `GameId` describes it, inline.
pub fn id_schema(description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(MAX_ID_CHARS))
        .pattern(Some(ID_PATTERN))
        .build()
}

/// A list of at most `max` ids (names, flags, tags: each as ids are).
pub fn id_list(max: usize, item: &str) -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(id_schema(item))
        .max_items(Some(max))
        .build()
}

/// A text that must not be blank, of at most `max` characters as sent.
pub fn not_blank(max: usize, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(NOT_BLANK_PATTERN))
        .build()
}

/// `12.0` is an integer to JSON Schema (and to JavaScript); serde's integers refuse it.
/// These read any JSON number without a fractional part that fits.
pub mod integer {
    use super::*;

    fn whole<'de, D: Deserializer<'de>>(
        number: serde_json::Number,
        min: f64,
        max: f64,
    ) -> Result<i128, D::Error> {
        if let Some(value) = number.as_i64() {
            return Ok(i128::from(value));
        }
        if let Some(value) = number.as_u64() {
            return Ok(i128::from(value));
        }
        match number.as_f64() {
            // Exact: `value` is whole and within bounds that an i128 holds.
            Some(value) if value.fract() == 0.0 && (min..=max).contains(&value) => {
                Ok(value as i128)
            }
            _ => Err(D::Error::custom(format!(
                "expected an integer, got {number}"
            ))),
        }
    }

    /// A whole number from 0 to `u32::MAX`.
    pub fn u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        let value = whole::<D>(number, 0.0, f64::from(u32::MAX))?;
        u32::try_from(value)
            .map_err(|_| D::Error::custom(format!("expected an integer from 0 to {}", u32::MAX)))
    }

    /// A whole number within `i64`, or null.
    pub fn option_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
            return Ok(None);
        };
        // 2^63 is the first f64 past i64::MAX; `whole` takes it, `try_from` refuses it.
        let value = whole::<D>(number, -(2f64.powi(63)), 2f64.powi(63))?;
        i64::try_from(value)
            .map(Some)
            .map_err(|_| D::Error::custom("expected an integer within 64 bits"))
    }
}

#[cfg(test)]
mod tests {
    use super::integer;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Marker {
        #[serde(deserialize_with = "integer::u32")]
        seq: u32,
        #[serde(default, deserialize_with = "integer::option_i64")]
        affinity: Option<i64>,
    }

    fn read(value: serde_json::Value) -> Result<Marker, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn whole_numbers_written_with_a_fraction_are_integers() {
        let marker = read(json!({"seq": 12.0, "affinity": -35.0})).unwrap();
        assert_eq!((marker.seq, marker.affinity), (12, Some(-35)));
        let marker = read(json!({"seq": 4_294_967_295_u64, "affinity": null})).unwrap();
        assert_eq!((marker.seq, marker.affinity), (u32::MAX, None));
        assert_eq!(read(json!({"seq": 1e2})).unwrap().seq, 100);
    }

    #[test]
    fn fractions_and_numbers_out_of_range_are_refused() {
        for value in [
            json!({"seq": 1.5}),
            json!({"seq": -1}),
            json!({"seq": 4_294_967_296_u64}),
            json!({"seq": 1e300}),
            json!({"seq": "12"}),
            json!({"seq": 1, "affinity": 0.5}),
            json!({"seq": 1, "affinity": 1e19}),
            json!({"seq": 1, "affinity": u64::MAX}),
        ] {
            assert!(read(value.clone()).is_err(), "{value} was accepted");
        }
    }
}
