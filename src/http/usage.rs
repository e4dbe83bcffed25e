//! `/usage`: tokens and spend for dashboards.

use super::{
    AppState,
    conversations::page_size,
    error::{ApiError, ErrorBody},
    extract::{Json, Query},
    wire::GameId,
};
use crate::{
    domain::{CharacterId, ConversationId, PlayerId, Usd},
    service::money::{
        budgets::{self, BudgetCursor, PlayerMonth, Threshold},
        usage::{self, ReportFilter, Totals},
    },
};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{
    KnownFormat, RefOr, Schema, SchemaFormat,
    schema::{AnyOfBuilder, Object, ObjectBuilder, Type},
};

/// `GET /usage` query string.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Only this player's calls.
    #[param(value_type = Option<GameId>)]
    pub player_id: Option<String>,
    /// Only this conversation's calls.
    #[param(value_type = Option<GameId>)]
    pub conversation_id: Option<String>,
    /// Only calls made for this character.
    #[param(value_type = Option<GameId>)]
    pub character_id: Option<String>,
    #[param(schema_with = from_schema)]
    pub from: Option<String>,
    #[param(schema_with = to_schema)]
    pub to: Option<String>,
    /// Shortcut for `from`: this many days before `to` (1–3660, default 30).
    #[param(minimum = 1, maximum = 3660)]
    pub days: Option<u32>,
    #[param(schema_with = group_by_schema)]
    pub group_by: Option<String>,
}

// `schema_with` replaces the parameter's whole schema, its description included: these
// carry their own.

/// An RFC 3339 time or a UTC date (`usage::range` parses both).
fn instant(description: &str) -> RefOr<Schema> {
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    AnyOfBuilder::new()
        .description(Some(description))
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .into()
}

fn from_schema() -> RefOr<Schema> {
    instant(
        "Start of the range, inclusive: an RFC 3339 time (`2026-11-01T00:00:00Z`) or a UTC date (`2026-11-01`, from its midnight). Not together with `days` (400).",
    )
}

fn to_schema() -> RefOr<Schema> {
    instant(
        "End of the range, exclusive: an RFC 3339 time, or a UTC date, which includes that whole day. Default: now. The range must not end before it starts, must lie within 1970–9998 and span at most 3660 days (400 otherwise).",
    )
}

fn group_by_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Breakdown by `purpose`, `model`, `player`, `character` or `day` (UTC, `YYYY-MM-DD`, every day of the range, zeros included).",
        ))
        .enum_values(Some(["purpose", "model", "day", "player", "character"]))
        .build()
}

fn status_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "`warning` (at or past the warning ratio, the default) or `over` (at or past the limit).",
        ))
        .enum_values(Some(["warning", "over"]))
        .default(Some("warning".into()))
        .build()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageTotals {
    /// The group's key (purpose, model, player id, character id or day).
    pub key: String,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[schema(value_type = f64)]
    pub cost_usd: Usd,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// Start of the range, inclusive.
    pub from: DateTime<Utc>,
    /// End of the range, exclusive.
    pub to: DateTime<Utc>,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[schema(value_type = f64)]
    pub cost_usd: Usd,
    /// Empty unless `group_by` is given; ordered by key.
    pub breakdown: Vec<UsageTotals>,
}

/// `GET /usage/budget` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub player_id: String,
    /// UTC calendar month, `YYYY-MM`.
    pub month: String,
    #[schema(value_type = f64)]
    pub spent_usd: Usd,
    #[schema(value_type = f64)]
    pub limit_usd: Usd,
    #[schema(value_type = f64)]
    pub remaining_usd: Usd,
    /// Spend reached `BUDGET_WARNING_RATIO` of the limit.
    pub warning: bool,
    pub over_budget: bool,
}

/// `GET /usage/budgets` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetList {
    pub month: String,
    /// Highest spend first.
    pub players: Vec<BudgetView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /usage/budget` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetQuery {
    #[param(value_type = GameId)]
    pub player_id: String,
}

/// `GET /usage/budgets` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BudgetsQuery {
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Players per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`, as given (opaque; any other is refused with 400).
    #[param(pattern = r"^(?:[0-9a-fA-F]{2})+$")]
    pub cursor: Option<String>,
}

impl From<PlayerMonth> for BudgetView {
    fn from(month: PlayerMonth) -> Self {
        Self {
            player_id: month.player_id,
            month: month.month,
            spent_usd: month.spent,
            limit_usd: month.limit,
            remaining_usd: month.remaining,
            warning: month.warning,
            over_budget: month.over_budget,
        }
    }
}

impl From<Totals> for UsageTotals {
    fn from(totals: Totals) -> Self {
        Self {
            key: totals.key,
            calls: totals.calls,
            prompt_tokens: totals.prompt_tokens,
            completion_tokens: totals.completion_tokens,
            total_tokens: totals.total_tokens,
            cost_usd: totals.cost_usd,
        }
    }
}

impl UsageQuery {
    fn filter(&self) -> Result<ReportFilter, ApiError> {
        let group_by = self
            .group_by
            .as_deref()
            .map(usage::parse_group_by)
            .transpose()?;
        let range = usage::range(
            self.from.as_deref(),
            self.to.as_deref(),
            self.days,
            crate::clock::now(),
        )?;
        Ok(ReportFilter {
            player_id: self.player_id.as_deref().map(PlayerId::parse).transpose()?,
            conversation_id: self
                .conversation_id
                .as_deref()
                .map(ConversationId::parse)
                .transpose()?,
            character_id: self
                .character_id
                .as_deref()
                .map(CharacterId::parse)
                .transpose()?,
            range,
            group_by,
        })
    }
}

/// Totals of LLM calls (calls, tokens, cost) over a range (`from`/`to`, or the last
/// `days`), filtered by player, conversation or character, with an optional breakdown.
#[utoipa::path(get, path = "/usage", tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Totals and breakdown", body = UsageReport),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn get_usage(
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let report = usage::report(&state, &query.filter()?).await?;
    let totals = report.totals;
    Ok(Json(UsageReport {
        from: report.range.from,
        to: report.range.to,
        calls: totals.calls,
        prompt_tokens: totals.prompt_tokens,
        completion_tokens: totals.completion_tokens,
        total_tokens: totals.total_tokens,
        cost_usd: totals.cost_usd,
        breakdown: report
            .breakdown
            .into_iter()
            .map(UsageTotals::from)
            .collect(),
    }))
}

/// This month's spend of one player against their limit.
#[utoipa::path(get, path = "/usage/budget", tag = "usage",
    params(BudgetQuery),
    responses(
        (status = 200, description = "The player's month", body = BudgetView),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn get_budget(
    State(state): State<AppState>,
    Query(query): Query<BudgetQuery>,
) -> Result<Json<BudgetView>, ApiError> {
    let player_id = PlayerId::parse(&query.player_id)?;
    Ok(Json(budgets::month(&state, &player_id).await?.into()))
}

/// Players at or past their warning threshold (or their limit) this month, highest
/// spend first, a page at a time (`limit`, then `cursor` = the previous `next_cursor`).
#[utoipa::path(get, path = "/usage/budgets", tag = "usage",
    params(BudgetsQuery),
    responses(
        (status = 200, description = "Players by spend, highest first", body = BudgetList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_budgets(
    State(state): State<AppState>,
    Query(query): Query<BudgetsQuery>,
) -> Result<Json<BudgetList>, ApiError> {
    let threshold = match query.status.as_deref().unwrap_or("warning") {
        "warning" => Threshold::Warning,
        "over" => Threshold::Over,
        other => {
            return Err(ApiError::Validation(format!(
                "status must be warning or over (got {other:?})"
            )));
        }
    };
    let limit = page_size(
        query.limit,
        budgets::DEFAULT_BUDGETS_PAGE,
        budgets::MAX_BUDGETS_PAGE,
    )?;
    let after = query
        .cursor
        .as_deref()
        .map(BudgetCursor::decode)
        .transpose()?;
    let page = budgets::at_or_over(&state, threshold, limit, after.as_ref()).await?;
    Ok(Json(BudgetList {
        month: page.month,
        players: page.players.into_iter().map(BudgetView::from).collect(),
        next_cursor: page.next.as_ref().map(BudgetCursor::encode),
    }))
}
