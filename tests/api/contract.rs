//! The document and the server agree at the edges schemathesis (`--checks all`) found:
//! what the served OpenAPI document allows is accepted, what it forbids is refused with
//! 400. Each test reads the rule from the served document, then asks the server.

use crate::helpers::{TestApp, decimal, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    document
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    &document["components"]["schemas"][name]
}

/// The schema of one parameter of one operation, `$ref`s followed one level.
fn parameter<'a>(document: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let parameter = document["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has parameters"))
        .iter()
        .find(|parameter| parameter["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"));
    match parameter["schema"]["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            schema(document, name)
        }
        None => &parameter["schema"],
    }
}

#[tokio::test]
async fn ids_with_control_characters_or_padding_are_outside_the_document_and_refused() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let document = document(&app).await;
    for (path, method, name) in [
        ("/characters/{character_id}", "get", "character_id"),
        ("/characters/{character_id}", "put", "character_id"),
        ("/conversations/{conversation_id}", "get", "conversation_id"),
        (
            "/conversations/{conversation_id}/read",
            "post",
            "conversation_id",
        ),
        ("/players/{player_id}", "delete", "player_id"),
        ("/players/{player_id}/budget", "put", "player_id"),
        ("/conversations", "get", "player_id"),
        ("/memory", "get", "character_id"),
        ("/usage/budget", "get", "player_id"),
    ] {
        let id = parameter(&document, path, method, name);
        assert_eq!(
            (&id["minLength"], &id["maxLength"]),
            (&json!(1), &json!(64)),
            "{method} {path} {name}"
        );
        assert_eq!(
            id["pattern"],
            npc_dialogue::http::wire::ID_PATTERN,
            "{method} {path} {name}"
        );
    }
    for path in [
        "/characters/ma%01ra",
        "/characters/%18F",
        "/characters/%20mara",
        "/characters/mara%0A",
        "/conversations/c%C2%851",
        "/conversations?player_id=",
        "/conversations?player_id=p-1&character_id=",
        "/memory?character_id=&player_id=",
        "/usage/budget?player_id=%09p-1",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{path}"
        );
    }
    let (status, _) = app.get_json("/characters/Ünïcødé-🐉%20x").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "inner spaces and Unicode are ids"
    );
}

#[tokio::test]
async fn a_read_marker_is_any_integer_json_allows_up_to_the_documented_maximum() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.say("c-1", "p-1", "mara", "Hello").await;
    let document = document(&app).await;
    let up_to_seq = &schema(&document, "ReadMarker")["properties"]["up_to_seq"];
    assert_eq!(up_to_seq["type"], "integer");
    assert_eq!(
        (&up_to_seq["minimum"], &up_to_seq["maximum"]),
        (&json!(0), &json!(u32::MAX))
    );
    let mark = |up_to_seq: Value| {
        app.request(Method::POST, "/conversations/c-1/read")
            .json(&json!({ "up_to_seq": up_to_seq }))
            .send()
    };
    let response = mark(json!(1.0)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "12.0 is an integer to JSON"
    );
    assert_eq!(response.json::<Value>().await.unwrap()["read_seq"], 1);
    let response = mark(json!(u32::MAX)).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["read_seq"], 2);
    for beyond in [json!(u64::from(u32::MAX) + 1), json!(1.5), json!(-1)] {
        let response = mark(beyond.clone()).await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_json".into()),
            "{beyond}"
        );
    }
}

#[tokio::test]
async fn an_affinity_written_as_a_whole_float_is_an_integer() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-1", "character_id": "mara", "content": "Hi", "affinity": 90.0}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let affinity: i32 = sqlx::query_scalar("SELECT affinity FROM affinities")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(affinity, 90);
}

/// `PUT /players/p-1/budget` with `body` as written, digits and all.
async fn put_budget(app: &TestApp, body: &'static str) -> reqwest::Response {
    app.request(Method::PUT, "/players/p-1/budget")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_budget_limit_in_exponent_form_is_a_number() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    let limit = &schema(&document, "BudgetInput")["properties"]["monthly_limit_usd"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(0), &json!(999_999))
    );
    for (sent, stored) in [
        (r#"{"monthly_limit_usd": 2.5e3}"#, "2500"),
        (r#"{"monthly_limit_usd": 2.225073858507e-311}"#, "0"),
        (r#"{"monthly_limit_usd": 1E-6}"#, "0.000001"),
        (r#"{"monthly_limit_usd": -0.0}"#, "0"),
    ] {
        let response = put_budget(&app, sent).await;
        assert_eq!(response.status(), StatusCode::OK, "{sent}");
        let budget: Value = response.json().await.unwrap();
        assert_eq!(
            decimal(&budget["limit_usd"]),
            stored.parse().unwrap(),
            "{sent}"
        );
    }
    // Read to the nearest double, as the document's reader reads it: the default
    // float parser could land on 999999.0 exactly and let a limit past the maximum in.
    // And a negative far below a cent is still below the minimum (-0.0 is not).
    for sent in [
        r#"{"monthly_limit_usd": 999999.0000000001}"#,
        r#"{"monthly_limit_usd": 999999.000001}"#,
        r#"{"monthly_limit_usd": -1.4811937430252458e-239}"#,
        r#"{"monthly_limit_usd": -1e-7}"#,
    ] {
        let response = put_budget(&app, sent).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn a_lore_entrys_scope_rule_is_in_the_document_and_refused() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    // A world entry has no scope_id; the other scopes name one. Stated as one of two shapes,
    // so that a client filling scope_id from another entry knows a null is refused.
    let shapes = &schema(&document, "LoreInput")["allOf"][1]["oneOf"];
    assert_eq!(shapes[0]["properties"]["scope"]["enum"], json!(["world"]));
    assert_eq!(shapes[0]["properties"]["scope_id"]["type"], "null");
    assert_eq!(
        shapes[1]["properties"]["scope"]["enum"],
        json!(["faction", "character"])
    );
    assert_eq!(shapes[1]["properties"]["scope_id"]["type"], "string");
    assert_eq!(shapes[1]["required"], json!(["scope_id"]));
    let fields = &schema(&document, "LoreInput")["allOf"][0];
    assert_eq!(fields["required"], json!(["text", "scope"]));
    for (body, status) in [
        (
            json!({"text": "x", "scope": "character", "scope_id": null}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"text": "x", "scope": "faction"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"text": "x", "scope": "world", "scope_id": "mara"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"text": "x", "scope": "world", "scope_id": null}),
            StatusCode::OK,
        ),
        (
            json!({"text": "x", "scope": "character", "scope_id": "mara"}),
            StatusCode::OK,
        ),
    ] {
        let response = app
            .request(Method::PUT, "/lore/l-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
    }
}

#[tokio::test]
async fn character_texts_are_not_blank_and_bounded_as_sent() {
    let app = TestApp::spawn().await;
    let document = document(&app).await;
    let input = &schema(&document, "CharacterInput")["properties"];
    assert_eq!(
        input["model"]["minLength"], 1,
        "an empty model is documented"
    );
    assert_eq!(input["name"]["maxLength"], 100);
    let character =
        |model: Value, name: &str| json!({"name": name, "persona": "Gruff.", "model": model});
    for (body, why) in [
        (character(json!(""), "Mara"), "an empty model"),
        (character(json!("  "), "Mara"), "a blank model"),
        (character(Value::Null, " \t"), "a blank name"),
        (
            character(Value::Null, &format!(" {}", "a".repeat(100))),
            "101 characters as sent",
        ),
    ] {
        let response = app.put_character("mara", body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{why}"
        );
    }
    let response = app
        .put_character("mara", character(Value::Null, &"a".repeat(100)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = response.json().await.unwrap();
    assert!(stored["model"].is_null(), "null is the default model");
}

#[tokio::test]
async fn a_players_line_is_bounded_as_sent_and_refuses_control_characters_anywhere() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    let document = document(&app).await;
    let content = &schema(&document, "TurnInput")["properties"]["content"];
    assert_eq!(
        (&content["minLength"], &content["maxLength"]),
        (&json!(1), &json!(2000))
    );
    for content in [
        format!("{} ", "a".repeat(2000)),
        "\u{b}Hello".to_owned(),
        "Hello\u{85}".to_owned(),
    ] {
        let response = app
            .post_turn(
                "c-1",
                json!({"player_id": "p-1", "character_id": "mara", "content": content}),
            )
            .await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{content:?}"
        );
    }
    let turn = app.say("c-1", "p-1", "mara", "\tHello\r\n").await;
    assert_eq!(turn["player_message"]["content"], "Hello");
}

#[tokio::test]
async fn rules_across_parameters_are_documented_and_refused() {
    let app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.say("c-1", "p-1", "mara", "Hello").await;
    let document = document(&app).await;
    let from = parameter(&document, "/usage", "get", "from");
    assert!(
        from["description"]
            .as_str()
            .unwrap()
            .contains("Not together with `days`"),
        "{from}"
    );
    let after_seq =
        &document["paths"]["/conversations/{conversation_id}/messages"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "after_seq")
            .unwrap()["description"];
    assert!(
        after_seq
            .as_str()
            .unwrap()
            .contains("Not together with `before_seq`")
    );
    for path in [
        "/usage?from=2026-03-01&days=3",
        "/conversations/c-1/messages?before_seq=2&after_seq=0",
        "/conversations?player_id=p-1&cursor=00",
        "/usage/budgets?cursor=6869",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "validation_failed".into()),
            "{path}"
        );
    }
}
