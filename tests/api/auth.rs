//! API keys and the HTTP rate limit.

use crate::helpers::{TestApp, error_code};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn keys_decide_who_may_read_and_who_may_write() {
    let mut app = TestApp::spawn_with(&[
        ("GAME_API_KEYS", "game-key,other-game-key"),
        ("READONLY_API_KEYS", "dash-key"),
    ])
    .await;
    let character = json!({"name": "Mara", "persona": "Gruff."});

    app.api_key = None;
    let response = app.put_character("mara", character.clone()).await;
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let response = app
        .request(Method::GET, "/characters")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );

    app.api_key = Some("wrong-key".into());
    let response = app.request(Method::GET, "/usage").send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );

    app.api_key = Some("dash-key".into());
    let response = app.put_character("mara", character.clone()).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p", "character_id": "mara", "content": "hi"}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    assert_eq!(
        app.count("characters").await,
        0,
        "refused writes change nothing"
    );
    assert_eq!(app.count("messages").await, 0);

    app.api_key = Some("other-game-key".into());
    assert_eq!(
        app.put_character("mara", character).await.status(),
        StatusCode::OK
    );
    app.say("c-1", "p", "mara", "hi").await;

    app.api_key = Some("dash-key".into());
    for path in [
        "/characters",
        "/characters/mara",
        "/conversations/c-1/messages",
        "/usage",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }

    app.api_key = None;
    for path in ["/healthz", "/readyz"] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path} is open");
    }
    let response = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "/metrics needs a key"
    );
    // Pages for people are open (the studio's support): the docs and their document.
    for path in ["/openapi.json", "/docs/", "/studio"] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path} is open");
    }
    app.api_key = Some("dash-key".into());
    for path in ["/openapi.json", "/docs/", "/metrics"] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{path} with a read-only key"
        );
    }
}

#[tokio::test]
async fn requests_over_the_http_rate_get_429_with_retry_after_and_json() {
    let app = TestApp::spawn_with(&[("HTTP_RATE_PER_SECOND", "1"), ("HTTP_RATE_BURST", "3")]).await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let response = app
            .request(Method::GET, "/characters")
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    let response = limited.expect("the burst of 3 is exhausted within 5 quick requests");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        error_code(response).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // Health probes are not rate limited.
    assert_eq!(
        app.request(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_api_key_has_its_own_rate_bucket() {
    let mut app = TestApp::spawn_with(&[
        ("GAME_API_KEYS", "server-a,server-b"),
        ("HTTP_RATE_PER_SECOND", "1"),
        ("HTTP_RATE_BURST", "2"),
    ])
    .await;
    for _ in 0..3 {
        app.request(Method::GET, "/characters")
            .send()
            .await
            .unwrap();
    }
    let response = app
        .request(Method::GET, "/characters")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.api_key = Some("server-b".into());
    let response = app
        .request(Method::GET, "/characters")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "server-b is not starved by server-a"
    );
}
