//! `/lore`: world knowledge the studio writes, and the scope rule the document states.

use super::{
    super::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{Json, Path, Query},
        wire::{self, GameId},
    },
    name_list,
};
use crate::{
    domain::{LoreId, ScopeId},
    service::world::lore::{
        self, LoreDraft, LoreEntry, MAX_LORE_CHARS, MAX_REQUIRED_FLAGS, MAX_TAGS, Scope,
    },
};
use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{
    AllOfBuilder, Array, Object, ObjectBuilder, OneOfBuilder, OpenApi, RefOr,
    schema::{SchemaType, Type},
};

/// `PUT /lore/{id}` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct LoreInput {
    #[schema(schema_with = lore_text_schema)]
    pub text: String,
    /// Who may know it: `world` (every character), `faction` (the members of the faction
    /// `scope_id`) or `character` (the character `scope_id`).
    #[schema(pattern = "^(world|faction|character)$")]
    pub scope: String,
    /// The faction or character of the scope; null (or absent) for `world`.
    #[serde(default)]
    #[schema(schema_with = scope_id_schema)]
    pub scope_id: Option<String>,
    /// Labels for writers (at most 20, each as ids are); they count as words of the entry
    /// when a turn picks what bears on the line.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    /// Game flags that must all be among a turn's `flags` for the entry to be known (at
    /// most 20, each as ids are; none: always known in scope).
    #[serde(default)]
    #[schema(schema_with = required_flags_schema)]
    pub requires_flags: Vec<String>,
}

/// The scope rule in the document: a `world` entry has no `scope_id`, a `faction` or
/// `character` entry names one. Properties alone cannot say that one field depends on
/// another, so `LoreInput` becomes its properties and one of the two shapes; a client or
/// a fuzzer reading the document then knows what `put_lore` refuses.
pub fn document_scope_rule(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(fields) = components.schemas.remove("LoreInput") else {
        return;
    };
    let shape = |scopes: &[&str], scope_id: ObjectBuilder| {
        ObjectBuilder::new()
            .property(
                "scope",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(scopes.iter().copied())),
            )
            .property("scope_id", scope_id)
    };
    let world = shape(&["world"], ObjectBuilder::new().schema_type(Type::Null));
    let named = shape(
        &["faction", "character"],
        ObjectBuilder::new().schema_type(Type::String),
    )
    .required("scope_id");
    let rule = OneOfBuilder::new()
        .description(Some(
            "A `world` entry has no `scope_id` (null or absent); a `faction` or `character` entry names one.",
        ))
        .item(world)
        .item(named);
    let input = AllOfBuilder::new().item(fields).item(rule);
    components
        .schemas
        .insert("LoreInput".into(), RefOr::T(input.into()));
}

fn lore_text_schema() -> Object {
    wire::not_blank(
        MAX_LORE_CHARS,
        "What the world knows, 1–2000 characters as sent, not blank. Surrounding whitespace is dropped.",
    )
}

fn scope_id_schema() -> Object {
    let mut id = wire::id_schema("A faction name or a character id, as ids are; null for `world`.");
    id.schema_type = SchemaType::from_iter([Type::String, Type::Null]);
    id
}

fn tags_schema() -> Array {
    wire::id_list(MAX_TAGS, "A tag.")
}

fn required_flags_schema() -> Array {
    wire::id_list(MAX_REQUIRED_FLAGS, "A game flag.")
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Lore {
    pub id: String,
    pub text: String,
    /// `world`, `faction` or `character`.
    pub scope: String,
    pub scope_id: Option<String>,
    pub tags: Vec<String>,
    pub requires_flags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<LoreEntry> for Lore {
    fn from(entry: LoreEntry) -> Self {
        Self {
            id: entry.id,
            text: entry.text,
            scope: entry.scope.as_str().to_owned(),
            scope_id: entry.scope_id,
            tags: entry.tags,
            requires_flags: entry.requires_flags,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoreList {
    /// By id.
    pub lore: Vec<Lore>,
}

/// Create or replace a lore entry.
#[utoipa::path(put, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Id chosen by the studio")),
    request_body = LoreInput,
    responses(
        (status = 200, description = "The stored entry", body = Lore),
        (status = 400, description = "Invalid input", body = ErrorBody),
    ))]
pub async fn put_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<LoreInput>,
) -> Result<Json<Lore>, ApiError> {
    let id = LoreId::parse(&id)?;
    let draft = LoreDraft {
        text: input.text,
        scope: input.scope,
        scope_id: input.scope_id,
        tags: input.tags,
        requires_flags: input.requires_flags,
    };
    Ok(Json(lore::put(&state, id, draft).await?.into()))
}

/// Read one lore entry.
#[utoipa::path(get, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Lore id")),
    responses(
        (status = 200, description = "The entry", body = Lore),
        (status = 404, description = "No such entry", body = ErrorBody),
    ))]
pub async fn get_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Lore>, ApiError> {
    let id = LoreId::parse(&id)?;
    Ok(Json(lore::get(&state, &id).await?.into()))
}

/// Delete a lore entry.
#[utoipa::path(delete, path = "/lore/{lore_id}", tag = "world",
    params(("lore_id" = GameId, Path, description = "Lore id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such entry", body = ErrorBody),
    ))]
pub async fn delete_lore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = LoreId::parse(&id)?;
    lore::delete(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /lore` query.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoreQuery {
    /// Only entries of this scope: `world`, `faction` or `character`.
    #[param(pattern = "^(world|faction|character)$")]
    pub scope: Option<String>,
    /// Only entries of this faction or character.
    #[param(value_type = Option<GameId>)]
    pub scope_id: Option<String>,
    /// Only entries carrying every one of these tags, comma-separated.
    #[param(schema_with = tags_filter_schema)]
    pub tags: Option<String>,
}

fn tags_filter_schema() -> Object {
    name_list(MAX_TAGS, "tags")
}

/// The lore, by id: all of it, or of one scope, scope id or set of tags.
#[utoipa::path(get, path = "/lore", tag = "world",
    params(LoreQuery),
    responses(
        (status = 200, description = "The entries", body = LoreList),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ))]
pub async fn list_lore(
    State(state): State<AppState>,
    Query(query): Query<LoreQuery>,
) -> Result<Json<LoreList>, ApiError> {
    let scope = query.scope.as_deref().map(Scope::parse).transpose()?;
    let scope_id = query.scope_id.as_deref().map(ScopeId::parse).transpose()?;
    let tags = crate::domain::parse_names(
        "tags",
        &wire::comma_list(query.tags.as_deref()),
        MAX_TAGS,
        crate::domain::Tag::parse,
    )?;
    let tags: Vec<String> = tags.into_iter().map(|tag| tag.into_string()).collect();
    let entries = lore::list(&state, scope, scope_id.as_ref().map(ScopeId::as_str), &tags).await?;
    Ok(Json(LoreList {
        lore: entries.into_iter().map(Lore::from).collect(),
    }))
}
