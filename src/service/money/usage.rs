//! Usage reports: calls, tokens and cost over a time range, filtered by player,
//! conversation or character, with a breakdown by purpose, model, day, player or character.

use crate::{
    domain::{CharacterId, ConversationId, ParseError, PlayerId, Usd},
    service::{Services, error::ServiceResult},
    store::usage::{self as usage_store, UsageFilter, UsageSums},
};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, Utc};
use std::collections::HashMap;

pub use crate::store::usage::GroupBy;

pub const DEFAULT_REPORT_DAYS: u32 = 30;
pub const MAX_REPORT_DAYS: u32 = 3660;

pub fn parse_group_by(raw: &str) -> Result<GroupBy, ParseError> {
    match raw {
        "purpose" => Ok(GroupBy::Purpose),
        "model" => Ok(GroupBy::Model),
        "day" => Ok(GroupBy::Day),
        "player" => Ok(GroupBy::Player),
        "character" => Ok(GroupBy::Character),
        other => Err(ParseError(format!(
            "group_by must be one of purpose, model, day, player, character (got {other:?})"
        ))),
    }
}

/// Which end of a range a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The date's midnight.
    Start,
    /// The next midnight: the range includes the whole date.
    End,
}

/// An RFC 3339 time (any offset, converted to UTC) or a `YYYY-MM-DD` UTC date.
fn parse_instant(name: &str, raw: &str, end: End) -> Result<DateTime<Utc>, ParseError> {
    let raw = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let date = match end {
            End::Start => Some(date),
            End::End => date.succ_opt(),
        };
        if let Some(midnight) = date.and_then(|date| date.and_hms_opt(0, 0, 0)) {
            return Ok(midnight.and_utc());
        }
    }
    // An unencoded `+` in a query string arrives as a space: `…T10:00:00 01:00`.
    let repaired = match raw.rsplit_once(' ') {
        Some((time, offset)) if time.contains('T') && offset.contains(':') => {
            format!("{time}+{offset}")
        }
        _ => raw.to_owned(),
    };
    DateTime::parse_from_rfc3339(&repaired)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            ParseError(format!(
                "{name} must be an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)"
            ))
        })
}

/// A report's time range: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The report's range from `from`, `to` and `days` as the query gave them.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<TimeRange, ParseError> {
    let to = match to {
        Some(raw) => parse_instant("to", raw, End::End)?,
        None => now,
    };
    let from = match (from, days) {
        (Some(_), Some(_)) => {
            return Err(ParseError("give either from or days, not both".into()));
        }
        (Some(raw), None) => parse_instant("from", raw, End::Start)?,
        (None, days) => {
            let days = days.unwrap_or(DEFAULT_REPORT_DAYS);
            if !(1..=MAX_REPORT_DAYS).contains(&days) {
                return Err(ParseError(format!(
                    "days must be between 1 and {MAX_REPORT_DAYS}"
                )));
            }
            to - ChronoDuration::days(i64::from(days))
        }
    };
    if from > to {
        return Err(ParseError("from must not be after to".into()));
    }
    // What MySQL's DATETIME holds, with room to spare.
    if from.year() < 1970 || to.year() > 9998 {
        return Err(ParseError(
            "from and to must lie between 1970 and 9998".into(),
        ));
    }
    if to - from > ChronoDuration::days(i64::from(MAX_REPORT_DAYS)) {
        return Err(ParseError(format!(
            "a report covers at most {MAX_REPORT_DAYS} days"
        )));
    }
    Ok(TimeRange { from, to })
}

/// Every UTC day the range `[from, to)` touches, as `YYYY-MM-DD`.
fn days_of(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let first = from.date_naive();
    let last = if to > from {
        (to - ChronoDuration::microseconds(1)).date_naive()
    } else {
        first
    };
    first
        .iter_days()
        .take_while(|day| *day <= last)
        .map(|day| day.format("%Y-%m-%d").to_string())
        .collect()
}

/// The rows of a day breakdown with a zero row for each day that had no calls.
fn with_every_day(rows: Vec<UsageSums>, days: Vec<String>) -> Vec<UsageSums> {
    let mut rows: HashMap<String, UsageSums> =
        rows.into_iter().map(|row| (row.key.clone(), row)).collect();
    days.into_iter()
        .map(|day| {
            rows.remove(&day).unwrap_or(UsageSums {
                key: day,
                calls: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                cost_usd: Usd::ZERO,
            })
        })
        .collect()
}

/// What a report covers.
#[derive(Debug, Clone)]
pub struct ReportFilter {
    pub player_id: Option<PlayerId>,
    pub conversation_id: Option<ConversationId>,
    pub character_id: Option<CharacterId>,
    pub range: TimeRange,
    pub group_by: Option<GroupBy>,
}

/// Calls, tokens and cost of one group (or of everything, with an empty key).
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub key: String,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: Usd,
}

impl From<UsageSums> for Totals {
    fn from(sums: UsageSums) -> Self {
        Self {
            key: sums.key,
            calls: sums.calls,
            prompt_tokens: sums.prompt_tokens,
            completion_tokens: sums.completion_tokens,
            total_tokens: sums.total_tokens,
            cost_usd: sums.cost_usd,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub range: TimeRange,
    pub totals: Totals,
    /// Empty unless grouped; ordered by key.
    pub breakdown: Vec<Totals>,
}

#[tracing::instrument(skip_all)]
pub async fn report(services: &Services, filter: &ReportFilter) -> ServiceResult<Report> {
    let pool = &services.pool;
    let TimeRange { from, to } = filter.range;
    let rows = UsageFilter {
        player_id: filter.player_id.clone(),
        conversation_id: filter.conversation_id.clone(),
        character_id: filter.character_id.clone(),
        from,
        to,
    };
    let totals = usage_store::totals(pool, &rows).await?;
    let breakdown = match filter.group_by {
        Some(GroupBy::Day) => with_every_day(
            usage_store::breakdown(pool, &rows, GroupBy::Day).await?,
            days_of(from, to),
        ),
        Some(group_by) => usage_store::breakdown(pool, &rows, group_by).await?,
        None => Vec::new(),
    };
    Ok(Report {
        range: filter.range,
        totals: totals.into(),
        breakdown: breakdown.into_iter().map(Totals::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Query<'a> = (Option<&'a str>, Option<&'a str>, Option<u32>);

    fn query<'a>(from: Option<&'a str>, to: Option<&'a str>, days: Option<u32>) -> Query<'a> {
        (from, to, days)
    }

    fn range_of(
        (from, to, days): &Query<'_>,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ParseError> {
        range(*from, *to, *days, now).map(|range| (range.from, range.to))
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn dates_cover_whole_days_and_times_are_taken_as_given() -> Result<(), ParseError> {
        let now = at("2026-11-24T10:00:00Z");
        assert_eq!(
            range_of(&query(Some("2026-11-01"), Some("2026-11-03"), None), now)?,
            (at("2026-11-01T00:00:00Z"), at("2026-11-04T00:00:00Z"))
        );
        assert_eq!(
            range_of(
                &query(
                    Some("2026-11-01T12:00:00+02:00"),
                    Some("2026-11-02T00:00:00Z"),
                    None
                ),
                now
            )?,
            (at("2026-11-01T10:00:00Z"), at("2026-11-02T00:00:00Z"))
        );
        assert_eq!(
            range_of(&query(Some("2026-11-01T12:00:00 02:00"), None, None), now)?.0,
            at("2026-11-01T10:00:00Z"),
            "a + lost to query-string decoding"
        );
        assert_eq!(
            range_of(&query(None, None, Some(7)), now)?,
            (at("2026-11-17T10:00:00Z"), now)
        );
        assert_eq!(
            range_of(&query(None, Some("2026-11-10"), Some(2)), now)?,
            (at("2026-11-09T00:00:00Z"), at("2026-11-11T00:00:00Z"))
        );
        Ok(())
    }

    #[test]
    fn bad_ranges_are_refused() {
        let now = at("2026-11-24T10:00:00Z");
        for bad in [
            query(Some("yesterday"), None, None),
            query(Some("2026-13-01"), None, None),
            query(Some("2026-11-05"), Some("2026-11-01"), None),
            query(Some("2026-11-01"), None, Some(3)),
            query(None, None, Some(0)),
            query(None, None, Some(MAX_REPORT_DAYS + 1)),
            query(Some("1900-01-01"), None, None),
            query(Some("0000-01-01"), Some("0001-01-01"), None),
            query(None, Some("9999-12-31"), None),
        ] {
            assert!(range_of(&bad, now).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_day_breakdown_lists_every_day_of_the_range() {
        let days = days_of(at("2026-11-29T10:00:00Z"), at("2026-12-02T00:00:00Z"));
        assert_eq!(days, ["2026-11-29", "2026-11-30", "2026-12-01"]);
        let rows = with_every_day(
            vec![UsageSums {
                key: "2026-11-30".into(),
                calls: 2,
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                cost_usd: Usd::new(rust_decimal::Decimal::ONE),
            }],
            days,
        );
        let calls: Vec<(String, i64)> = rows.into_iter().map(|r| (r.key, r.calls)).collect();
        assert_eq!(
            calls,
            [
                ("2026-11-29".to_owned(), 0),
                ("2026-11-30".to_owned(), 2),
                ("2026-12-01".to_owned(), 0)
            ]
        );
        assert_eq!(
            days_of(at("2026-11-29T10:00:00Z"), at("2026-11-29T10:00:00Z")),
            ["2026-11-29"]
        );
    }
}
