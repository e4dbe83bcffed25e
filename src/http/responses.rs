//! The answers every operation can give besides its own: written into the OpenAPI
//! document once, here, rather than on each handler, so that the document says what the
//! layers around the handlers (API key, rate limit, body limits, extractors, an
//! unreachable database) really answer.

use utoipa::openapi::{
    OpenApi, Ref, RefOr, ResponseBuilder,
    path::{Operation, PathItem},
};

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::content::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Open operations (health) declare an empty security requirement.
fn is_open(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|requirements| {
        serde_json::to_value(requirements).is_ok_and(|value| value == serde_json::json!([{}]))
    })
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error(description));
}

fn complete(operation: &mut Operation, writes: bool) {
    if is_open(operation) {
        return;
    }
    add(operation, "401", "Missing or unknown API key");
    if writes {
        add(operation, "403", "A read-only key may not write");
    }
    let takes_input = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty())
        || operation.request_body.is_some();
    if takes_input {
        add(operation, "400", "Invalid input");
    }
    if operation.request_body.is_some() {
        add(operation, "413", "Body too large");
        add(operation, "415", "Body is not JSON");
    }
    add(
        operation,
        "429",
        "Over the HTTP rate limit; see Retry-After",
    );
    add(
        operation,
        "503",
        "Unavailable for now, retry: the database is unreachable or could not record what a paid call cost (`unavailable`), this replica is at its in-flight cap (`overloaded`, with Retry-After), or the answer did not start in time (`timeout`)",
    );
}

/// Adds the common responses to every operation of `doc`.
pub fn add_common_responses(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let PathItem {
            get,
            put,
            post,
            delete,
            patch,
            ..
        } = item;
        for (operation, writes) in [
            (get, false),
            (put, true),
            (post, true),
            (delete, true),
            (patch, true),
        ] {
            if let Some(operation) = operation.as_mut() {
                complete(operation, writes);
            }
        }
    }
}
