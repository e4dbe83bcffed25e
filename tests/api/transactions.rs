//! The shape of a turn on the database, the design the load benchmark measures: begun in
//! one transaction, stored in a second, and nothing written outside them. Counted with
//! MariaDB's global status counters on a server of the test's own, so that no other
//! test's statements are in them; figures per turn, no timing.

use crate::{helpers::TestApp, own_mariadb::OwnMariaDb};
use sqlx::{Connection, MySqlConnection};
use std::collections::HashMap;

const COUNTERS: [&str; 7] = [
    "Questions",
    "Com_begin",
    "Com_commit",
    "Com_rollback",
    "Com_insert",
    "Com_update",
    "Com_delete",
];

async fn counters(connection: &mut MySqlConnection) -> HashMap<String, f64> {
    let list = COUNTERS.map(|name| format!("'{name}'")).join(", ");
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({list})"
    )))
    .fetch_all(connection)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(name, value)| (name, value.parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_plain_turn_is_two_writing_transactions_and_at_most_28_statements() {
    let database = OwnMariaDb::start();
    let app = TestApp::spawn_on(
        &database.url(),
        &[
            // Only turns reach the database while counting.
            ("JOB_WORKERS", "0"),
            ("HOUSEKEEPING_INTERVAL_MS", "86400000"),
        ],
    )
    .await;
    app.create_mara("mara").await;
    // The conversation and the player exist: the turns counted are plain ones.
    app.say("c-1", "p-1", "mara", "hello").await;
    let mut connection = MySqlConnection::connect(&database.url()).await.unwrap();

    const TURNS: usize = 5;
    let before = counters(&mut connection).await;
    for line in 0..TURNS {
        app.say("c-1", "p-1", "mara", &format!("the king, {line}"))
            .await;
    }
    let after = counters(&mut connection).await;
    let per_turn = |name: &str| (after[name] - before[name]) / TURNS as f64;

    assert_eq!(per_turn("Com_begin"), 2.0, "transactions per turn");
    assert_eq!(per_turn("Com_commit"), 2.0, "commits per turn");
    assert_eq!(per_turn("Com_rollback"), 0.0, "rollbacks per turn");
    // Stop 16 sent 39 statements a turn, 16 of them writes in 5 transactions. The reading
    // of the counters adds one statement in all.
    let writes = per_turn("Com_insert") + per_turn("Com_update") + per_turn("Com_delete");
    assert!(writes <= 13.0, "{writes} writes per turn");
    // Recall by words reads up to three more, none of them a write: the pair's last
    // `seq`s and the messages past what this replica's index holds (MySQL stays the
    // source of truth for every replica), then the texts of the older lines found.
    let statements = per_turn("Questions");
    assert!(statements <= 28.0, "{statements} statements per turn");

    // Lore costs a turn no statement once this replica has read it: the revision comes
    // with the character, and the lore is read again only when it moved.
    let response = app
        .request(reqwest::Method::PUT, "/lore/midwinter")
        .json(&serde_json::json!({"text": "The king died at Midwinter.", "scope": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    // A conversation at the same point as the one above, of another player so that no
    // older line of the first is recalled: the same turns, with lore.
    app.say("c-2", "p-2", "mara", "any news of the king?").await;
    let before = counters(&mut connection).await;
    for line in 0..TURNS {
        app.say("c-2", "p-2", "mara", &format!("the king, {line}"))
            .await;
    }
    let after = counters(&mut connection).await;
    let with_lore = (after["Questions"] - before["Questions"]) / TURNS as f64;
    assert!(
        with_lore <= statements,
        "{with_lore} statements per turn with lore, {statements} without"
    );
    let prompt = &app.provider.last_request().messages()[0].1;
    assert!(prompt.contains("The king died at Midwinter."), "{prompt}");
}
