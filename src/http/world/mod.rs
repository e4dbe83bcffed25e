//! The shared world: `/lore` (world knowledge the studio writes), `/events` (what
//! happened in the game) and `/characters/{id}/knowledge` (what a character would know
//! in a turn, with why).

mod events;
mod lore;

pub use events::*;
pub use lore::*;

use super::wire;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// A comma-separated list of at most `max` names in a query string.
fn name_list(max: usize, what: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "Comma-separated {what} (at most {max}), each as ids are (1–64 characters, no control characters, no whitespace at either end, no comma); empty for none."
        )))
        .pattern(Some(wire::name_list_pattern(max)))
        .build()
}

/// The game flags of a query string, as a turn would send them.
fn flags_query_schema() -> Object {
    name_list(crate::service::world::lore::MAX_TURN_FLAGS, "game flags")
}
