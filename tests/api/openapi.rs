//! The committed `openapi/openapi.json` is the document the code generates.
//! Regenerate with `cargo run -- openapi > openapi/openapi.json` (or
//! `UPDATE_OPENAPI=1 cargo test --test api openapi`).

use crate::helpers::TestApp;
use reqwest::StatusCode;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = npc_dialogue::http::openapi()
        .to_pretty_json()
        .expect("serializing the OpenAPI document")
        + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("writing openapi/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_docs_work_offline() {
    let app = TestApp::spawn().await;
    let (status, served) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let generated: serde_json::Value =
        serde_json::from_str(&npc_dialogue::http::openapi().to_json().unwrap()).unwrap();
    assert_eq!(served, generated);
    for path in [
        "/characters/{character_id}",
        "/characters",
        "/conversations/{conversation_id}/messages",
        "/usage",
        "/healthz",
        "/readyz",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }

    let page = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "the Swagger UI page is served");
    let bundle = app
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bundle.status(),
        StatusCode::OK,
        "assets are vendored, not fetched from a CDN"
    );
}
