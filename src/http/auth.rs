//! `/auth`: what the caller's API key may do, for tools (the studio) that hide what
//! the key could not do anyway.

use super::{error::ApiError, extract::Json, middleware::Access};
use axum::Extension;
use serde::Serialize;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// A `GAME_API_KEYS` key, or any request while no keys are configured: may do
    /// everything.
    Game,
    /// A `READONLY_API_KEYS` key: may only read (GET); writes answer 403.
    Readonly,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// `game` (may read and write) or `readonly` (may only read). With no keys configured
    /// the service is open and every caller is `game`.
    pub role: KeyRole,
}

/// What the API key of this request may do.
#[utoipa::path(get, path = "/auth/whoami", tag = "operations",
    responses(
        (status = 200, description = "The key's role", body = WhoAmI),
    ))]
pub async fn whoami(access: Option<Extension<Access>>) -> Result<Json<WhoAmI>, ApiError> {
    // The key middleware marks every request it lets through; none means a route wired
    // outside it, a bug.
    let Some(Extension(access)) = access else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "/auth/whoami is not behind the API key middleware"
        )));
    };
    let role = match access {
        Access::Full => KeyRole::Game,
        Access::ReadOnly => KeyRole::Readonly,
    };
    Ok(Json(WhoAmI { role }))
}
