//! The batch as parsed: ids once, times in order and in range.

use super::*;
use crate::domain::{
    CharacterId, ClientMessageId, ConversationId, MessageText, ParseError, PlayerId,
};

fn message(client_id: &str, at: &str) -> ImportedMessage {
    ImportedMessage {
        client_id: ClientMessageId::parse(client_id).unwrap_or_else(|_| unreachable!()),
        role: Role::Player,
        content: MessageText::parse("hello", 100).unwrap_or_else(|_| unreachable!()),
        created_at: parse_time(at, crate::clock::now()).unwrap_or_else(|_| unreachable!()),
    }
}

fn batch(messages: Vec<ImportedMessage>) -> Result<Import, ParseError> {
    Import::new(
        ConversationId::parse("c").unwrap_or_else(|_| unreachable!()),
        PlayerId::parse("p").unwrap_or_else(|_| unreachable!()),
        CharacterId::parse("m").unwrap_or_else(|_| unreachable!()),
        messages,
    )
}

#[test]
fn a_batch_is_one_to_five_hundred_messages_each_once_in_time_order() {
    assert!(batch(vec![]).is_err());
    assert!(batch(vec![message("a", "2026-01-01T00:00:00Z")]).is_ok());
    assert!(
        batch(vec![
            message("a", "2026-01-01T00:00:00Z"),
            message("a", "2026-01-01T00:00:01Z")
        ])
        .is_err()
    );
    assert!(
        batch(vec![
            message("a", "2026-01-01T00:00:01Z"),
            message("b", "2026-01-01T00:00:00Z")
        ])
        .is_err()
    );
    // Equal times are in order.
    assert!(
        batch(vec![
            message("a", "2026-01-01T00:00:00Z"),
            message("b", "2026-01-01T01:00:00+01:00")
        ])
        .is_ok()
    );
    assert!(check_count(MAX_MESSAGES).is_ok());
    assert!(check_count(MAX_MESSAGES + 1).is_err());
}

#[test]
fn times_are_rfc_3339_from_1970_to_now_at_microseconds() {
    let now = crate::clock::now();
    assert!(
        parse_time("2026-11-24T10:00:00.1234567Z", now)
            .is_ok_and(|time| time.timestamp_subsec_nanos() == 123_456_000)
    );
    for bad in [
        "",
        "yesterday",
        "2026-11-24",
        "2026-11-24 10:00:00",
        "1969-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-02-30T00:00:00Z",
    ] {
        assert!(parse_time(bad, now).is_err(), "{bad:?}");
    }
    let soon = (now + chrono::Duration::seconds(60)).to_rfc3339();
    assert!(parse_time(&soon, now).is_ok());
}
