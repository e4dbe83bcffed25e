//! Health, readiness while the database comes and goes, start-up and graceful shutdown.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
    own_mariadb::OwnMariaDb,
};
use npc_dialogue::{config::Secret, store};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, MySqlConnection};
use std::time::{Duration, Instant};

#[tokio::test]
async fn readyz_says_503_while_the_database_is_down_and_recovers_after() {
    let mut database = OwnMariaDb::start();
    let app = TestApp::spawn_on(&database.url(), &[]).await;
    app.create_mara("innkeeper_mara").await;
    assert_eq!(app.get_json("/readyz").await.0, StatusCode::OK);

    database.kill();
    let response = app.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into())
    );
    assert_eq!(
        app.get_json("/healthz").await.0,
        StatusCode::OK,
        "the process is alive"
    );
    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p", "character_id": "innkeeper_mara", "content": "hi"}),
        )
        .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into()),
        "a missing database is a 503, not a 500"
    );

    database.resume();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get_json("/readyz").await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "readyz did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.say("c-1", "p", "innkeeper_mara", "back again").await;
}

#[tokio::test]
async fn during_a_database_outage_a_turn_answers_a_json_503_within_two_seconds() {
    let mut database = OwnMariaDb::start();
    let app = TestApp::spawn_on(&database.url(), &[("JOB_WORKERS", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    app.say("c-1", "p", "innkeeper_mara", "hello").await;

    database.kill();
    // First with the pool's connections gone stale, then with none left at all.
    for attempt in 1..=2 {
        let started = Instant::now();
        let response = app
            .post_turn(
                "c-1",
                json!({"player_id": "p", "character_id": "innkeeper_mara", "content": "still there?"}),
            )
            .await;
        let answered = started.elapsed();
        assert_eq!(
            error_code(response).await,
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into()),
            "attempt {attempt}"
        );
        assert!(
            answered < Duration::from_secs(2),
            "attempt {attempt} answered after {answered:?}"
        );
    }
    // The world's routes too: a 503, never a 500.
    let writes = [
        (
            Method::PUT,
            "/lore/news",
            json!({"text": "The bridge is down.", "scope": "world"}),
        ),
        (
            Method::POST,
            "/events",
            json!({"client_event_id": "e-1", "text": "A fire.", "importance": 8,
                   "player_id": "p", "witnesses": ["innkeeper_mara"]}),
        ),
    ];
    for (method, path, body) in writes {
        let response = app.request(method, path).json(&body).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable".into()),
            "{path}"
        );
    }
    for path in ["/lore", "/events", "/characters/innkeeper_mara/knowledge"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
    }
    let started = Instant::now();
    assert_eq!(
        app.get_json("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_while_turns_hold_every_pooled_connection() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    // Every turn reads its character first: with the table locked, each one that gets a
    // connection keeps it, waiting, until the pool is empty.
    let mut locker = MySqlConnection::connect(app.database_url()).await.unwrap();
    sqlx::raw_sql("LOCK TABLES characters WRITE")
        .execute(&mut locker)
        .await
        .unwrap();
    let turns: Vec<_> = (0..store::POOL_SIZE + 4)
        .map(|turn| {
            let request = app
                .request(Method::POST, &format!("/conversations/c-{turn}/messages"))
                .json(&json!({"player_id": format!("p-{turn}"), "character_id": "innkeeper_mara", "content": "hi"}));
            tokio::spawn(request.send())
        })
        .collect();
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE db = DATABASE() AND state LIKE '%metadata lock%'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting >= i64::from(store::POOL_SIZE) {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "only {waiting} turns hold a connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "readyz took {:?}",
        started.elapsed()
    );

    sqlx::raw_sql("UNLOCK TABLES")
        .execute(&mut locker)
        .await
        .unwrap();
    for turn in turns {
        let _ = turn.await;
    }
}

#[tokio::test]
async fn start_up_gives_up_on_an_unreachable_database_with_an_error() {
    let started = Instant::now();
    let url = Secret::new("mysql://root@127.0.0.1:1/npc_dialogue");
    let result = store::connect_and_migrate(&url, Duration::from_secs(1)).await;
    let error = result.expect_err("nothing listens on port 1");
    assert!(format!("{error:#}").contains("unreachable"), "{error:#}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_turn_finish() {
    let mut app = TestApp::spawn().await;
    app.create_mara("innkeeper_mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(800),
        Box::new(MockReply::text("Closing time.", 10, 2)),
    )]);
    let request = app
        .request(Method::POST, "/conversations/c-1/messages")
        .json(&json!({"player_id": "p", "character_id": "innkeeper_mara", "content": "One more?"}));
    let in_flight = tokio::spawn(request.send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.stop().await;

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let turn: serde_json::Value = response.json().await.unwrap();
    assert_eq!(turn["reply"]["content"], "Closing time.");
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_turn_finish_then_refuses_new_connections() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    app.create_mara("innkeeper_mara").await;
    let replica = crate::replicas::Replica::start(&app, &[]).await;
    let address = replica.address().to_owned();
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1500),
        Box::new(MockReply::text("Last orders.", 10, 2)),
    )]);
    let request = app
        .client
        .post(format!("{address}/conversations/c-1/messages"))
        .json(&json!({"player_id": "p", "character_id": "innkeeper_mara", "content": "One more?"}));
    let in_flight = tokio::spawn(request.send());
    // The turn has reached the provider before the signal.
    let give_up = Instant::now() + Duration::from_secs(10);
    while app.provider.request_count() == 0 {
        assert!(
            Instant::now() < give_up,
            "the turn never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = tokio::spawn(replica.terminate());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = app.client.get(format!("{address}/healthz")).send().await;
    assert!(
        refused.is_err(),
        "no new connections once stopping: {refused:?}"
    );

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let turn: serde_json::Value = response.json().await.unwrap();
    assert_eq!(turn["reply"]["content"], "Last orders.");
    assert!(stopping.await.unwrap().success(), "a clean exit");
    assert_eq!(app.stored_messages("c-1").await.len(), 2);
}

#[tokio::test]
async fn shutdown_waits_for_a_turn_whose_client_hung_up() {
    let mut app = TestApp::spawn().await;
    app.create_mara("mara").await;
    app.provider.enqueue([MockReply::Delayed(
        Duration::from_millis(1500),
        Box::new(MockReply::text("Worth the wait.", 5, 3)),
    )]);
    let hung_up = app
        .request(Method::POST, "/conversations/c-1/messages")
        .timeout(Duration::from_millis(200))
        .json(&json!({"player_id": "p-1", "character_id": "mara", "content": "Hello"}))
        .send()
        .await;
    assert!(hung_up.is_err(), "the client gave up before the reply");
    // No request is in flight any more: only the detached turn runs.
    app.stop().await;
    let stored = app.stored_messages("c-1").await;
    assert_eq!(
        stored.len(),
        2,
        "the paid reply was stored before the pool closed"
    );
    assert_eq!(stored[1].2, "Worth the wait.");
    assert_eq!(app.count("usage_records").await, 1);
}
