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
        "/conversations/{conversation_id}/messages/stream",
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

fn generated() -> serde_json::Value {
    serde_json::from_str(&npc_dialogue::http::openapi().to_json().unwrap()).unwrap()
}

fn media_types(response: &serde_json::Value) -> Vec<&str> {
    response["content"]
        .as_object()
        .map(|content| content.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A generated client gets one type per answer: the plain turn's 200 is JSON only, and
/// streaming is an operation of its own with the same body and parameters.
#[test]
fn a_turn_answers_json_only_and_streaming_is_its_own_operation() {
    let document = generated();
    let plain = &document["paths"]["/conversations/{conversation_id}/messages"]["post"];
    let stream = &document["paths"]["/conversations/{conversation_id}/messages/stream"]["post"];
    assert_eq!(
        media_types(&plain["responses"]["200"]),
        ["application/json"]
    );
    assert_eq!(
        plain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TurnResponse"
    );
    assert_eq!(
        media_types(&stream["responses"]["200"]),
        ["text/event-stream"]
    );
    assert_eq!(
        stream["responses"]["200"]["content"]["text/event-stream"]["schema"]["$ref"],
        "#/components/schemas/TurnStreamEvent"
    );
    assert_eq!(stream["requestBody"], plain["requestBody"]);
    let names = |operation: &serde_json::Value| -> Vec<String> {
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(stream), names(plain));
    for (status, response) in stream["responses"].as_object().unwrap() {
        if status != "200" {
            assert_eq!(media_types(response), ["application/json"], "{status}");
        }
    }

    // Each event: its name, and its data's JSON shape by name.
    let event = &document["components"]["schemas"]["TurnStreamEvent"];
    let variants: Vec<(&str, &serde_json::Value)> = event["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| {
            let data = &variant["properties"]["data"];
            assert_eq!(data["contentMediaType"], "application/json");
            (
                variant["properties"]["event"]["const"].as_str().unwrap(),
                &data["contentSchema"],
            )
        })
        .collect();
    let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["typing", "delta", "done", "error"]);
    assert_eq!(
        variants[2].1["$ref"], "#/components/schemas/TurnResponse",
        "done carries the plain turn's JSON"
    );
    assert_eq!(variants[3].1["$ref"], "#/components/schemas/ErrorBody");
}

/// Every id in a path or a query string is a `GameId` (no control characters, no padding,
/// 1–64 characters), and every integer parameter states both its bounds.
#[test]
fn parameters_state_the_rules_the_server_applies() {
    let document = generated();
    let id = &document["components"]["schemas"]["GameId"];
    assert_eq!(id["pattern"], npc_dialogue::http::wire::ID_PATTERN);
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let schema = &parameter["schema"];
                if name.ends_with("_id") && name != "fact_id" {
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/GameId",
                        "{method} {path} {name}"
                    );
                }
                if schema["type"] == "integer" && name != "fact_id" {
                    assert!(
                        schema["minimum"].is_number() && schema["maximum"].is_number(),
                        "{method} {path} {name}: {schema}"
                    );
                }
                if schema["type"] == "string" && name != "query" {
                    assert!(
                        schema.get("pattern").is_some() || schema.get("enum").is_some(),
                        "{method} {path} {name}: free text where the server has rules"
                    );
                }
            }
        }
    }
}
