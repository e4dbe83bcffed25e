//! Two service processes over one database: the in-process `TestApp` and the real
//! `npc-dialogue` binary, sharing the database and the mock provider. Quotas and
//! per-conversation serialization live in MySQL, so the pair behaves as one service.

use crate::helpers::TestApp;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

/// The `npc-dialogue` binary, running as a second replica.
pub struct Replica {
    address: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    /// Starts the binary over `app`'s database and provider, with these variables on
    /// top, and waits until `/healthz` answers.
    pub async fn start(app: &TestApp, overrides: &[(&str, &str)]) -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        let log = std::env::temp_dir().join(format!(
            "npc-dialogue-replica-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let log_file = std::fs::File::create(&log).expect("creating the replica's log");
        let mut vars: HashMap<&str, String> = [
            ("DATABASE_URL", app.database_url().to_owned()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("LLM_BASE_URL", app.provider.base_url.clone()),
            ("LLM_API_KEY", "test-provider-key".to_owned()),
            ("LLM_RETRY_BASE_MS", "10".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
        ]
        .into_iter()
        .collect();
        if let Ok(path) = std::env::var("PATH") {
            vars.insert("PATH", path);
        }
        if let Ok(filter) = std::env::var("RUST_LOG") {
            vars.insert("RUST_LOG", filter);
        }
        for (name, value) in overrides {
            vars.insert(name, (*value).to_owned());
        }
        let child = Command::new(env!("CARGO_BIN_EXE_npc-dialogue"))
            .env_clear()
            .envs(vars)
            // Away from any `.env` a developer keeps in the repository.
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("sharing the log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("starting the npc-dialogue binary");
        let mut replica = Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        replica.wait_until_healthy(app).await;
        replica
    }

    async fn wait_until_healthy(&mut self, app: &TestApp) {
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the replica") {
                panic!(
                    "the replica exited with {status} before it was healthy:\n{}",
                    self.log_text()
                );
            }
            let health = app
                .client
                .get(format!("{}/healthz", self.address))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&health, Ok(response) if response.status() == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "the replica was not healthy within 30 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn post_turn(&self, app: &TestApp, conversation_id: &str, body: Value) -> Response {
        app.client
            .post(format!(
                "{}/conversations/{}/messages",
                self.address,
                urlencoding::encode(conversation_id)
            ))
            .json(&body)
            .send()
            .await
            .expect("POST /conversations/{id}/messages on the replica")
    }

    /// Kills the process; the log goes with it unless the test failed before this.
    /// Sends SIGTERM, as an orchestrator stopping the replica would, and waits for the
    /// process to exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the replica is running");
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(signalled.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the replica stops within 30 s")
            .expect("waiting for the replica");
        let _ = std::fs::remove_file(&self.log);
        status
    }

    pub async fn stop(mut self) {
        self.child.kill().await.expect("killing the replica");
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Has both servers open a few database connections, so that neither starts the race
/// below behind on connecting.
async fn warm_up(app: &TestApp, replica: &Replica) {
    let reads = [app.address.as_str(), replica.address.as_str()]
        .into_iter()
        .flat_map(|address| std::iter::repeat_n(address, 8))
        .map(|address| app.client.get(format!("{address}/characters")).send());
    for response in futures::future::join_all(reads).await {
        assert_eq!(response.expect("GET /characters").status(), StatusCode::OK);
    }
}

/// Dialogue calls the provider received, and their usage rows (background work, if any,
/// is not what these tests count).
async fn dialogue_calls(app: &TestApp) -> (usize, i64) {
    let requests = app
        .provider
        .requests()
        .iter()
        .filter(|request| request.header("x-request-purpose") == Some("conversation"))
        .count();
    let rows =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE purpose = 'conversation'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    (requests, rows)
}

/// A turn sent to the in-process server (`false`) or to the replica (`true`).
async fn turn_on(
    app: &TestApp,
    replica: &Replica,
    on_replica: bool,
    conversation_id: String,
    body: Value,
) -> (StatusCode, Value) {
    let response = if on_replica {
        replica.post_turn(app, &conversation_id, body).await
    } else {
        app.post_turn(&conversation_id, body).await
    };
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_make_more_calls_than_the_quota() {
    const QUOTA: usize = 4;
    const TURNS: usize = 12;
    let overrides = [("PLAYER_LLM_CALLS_PER_HOUR", "4")];
    let app = TestApp::spawn_with(&overrides).await;
    let replica = Replica::start(&app, &overrides).await;
    app.create_mara("innkeeper_mara").await;
    warm_up(&app, &replica).await;
    // The player exists already, so the turns race for its quota, not to create it.
    let response = app
        .request(reqwest::Method::PUT, "/players/p-7/budget")
        .json(&json!({"monthly_limit_usd": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // One player, a conversation per turn: nothing serializes them but the quota.
    let turns = (0..TURNS).map(|i| {
        turn_on(
            &app,
            &replica,
            i % 2 == 1,
            format!("quota-{i:02}"),
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": format!("line {i}")}),
        )
    });
    let answers = futures::future::join_all(turns).await;

    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let from_llm = answers
        .iter()
        .filter(|(_, body)| body["source"] == "llm")
        .count();
    let rate_limited = answers
        .iter()
        .filter(|(_, body)| {
            body["source"] == "fallback" && body["fallback_reason"] == "rate_limited"
        })
        .count();
    let calls = app.provider.request_count();
    let quota_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM quota_calls WHERE player_id = ?")
            .bind("p-7")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let usage_rows = app.count("usage_records").await;
    let llm_on_replica = answers
        .iter()
        .enumerate()
        .filter(|(i, (_, body))| i % 2 == 1 && body["source"] == "llm")
        .count();
    eprintln!(
        "replicas/quota: {TURNS} concurrent turns of one player over 2 processes, quota {QUOTA}/h: \
         {from_llm} llm ({} in-process, {llm_on_replica} on the binary), {rate_limited} rate_limited, \
         {calls} provider calls, {quota_rows} quota rows, {usage_rows} usage rows",
        from_llm - llm_on_replica
    );
    assert_eq!(from_llm, QUOTA, "{answers:?}");
    assert_eq!(rate_limited, TURNS - QUOTA, "{answers:?}");
    assert_eq!(calls, QUOTA, "provider calls");
    assert_eq!(quota_rows, 4, "quota_calls rows");
    assert_eq!(usage_rows, 4, "usage_records rows");

    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_turns_on_one_conversation_across_replicas_stay_gapless() {
    const TURNS: usize = 30;
    let overrides = [("PLAYER_LLM_CALLS_PER_HOUR", "1000")];
    let app = TestApp::spawn_with(&overrides).await;
    let replica = Replica::start(&app, &overrides).await;
    app.create_mara("innkeeper_mara").await;
    warm_up(&app, &replica).await;

    let started = Instant::now();
    let turns = (0..TURNS).map(|i| {
        turn_on(
            &app,
            &replica,
            i % 2 == 1,
            "shared".to_owned(),
            json!({"player_id": "p-7", "character_id": "innkeeper_mara", "content": format!("line {i:02}")}),
        )
    });
    let answers = futures::future::join_all(turns).await;
    let elapsed = started.elapsed();

    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        let player_seq = body["player_message"]["seq"].as_u64().expect("player seq");
        assert_eq!(player_seq % 2, 1, "a player line at an odd seq: {body}");
        assert_eq!(
            body["reply"]["seq"].as_u64(),
            Some(player_seq + 1),
            "{body}"
        );
    }
    let mut answered_seqs: Vec<u64> = answers
        .iter()
        .map(|(_, body)| body["player_message"]["seq"].as_u64().unwrap_or_default())
        .collect();
    answered_seqs.sort_unstable();
    assert_eq!(
        answered_seqs,
        (0..TURNS as u64).map(|i| 2 * i + 1).collect::<Vec<_>>(),
        "each turn answered with its own seq"
    );

    let stored = app.stored_messages("shared").await;
    let seqs: Vec<u32> = stored.iter().map(|m| m.0).collect();
    assert_eq!(
        seqs,
        (1..=2 * TURNS as u32).collect::<Vec<_>>(),
        "gapless seq"
    );
    for pair in stored.chunks(2) {
        let [
            (player_seq, player_role, _, _),
            (reply_seq, reply_role, _, source),
        ] = pair
        else {
            panic!("an odd number of messages: {stored:?}");
        };
        assert_eq!(player_role, "player", "seq {player_seq}");
        assert_eq!(reply_role, "character", "seq {reply_seq}");
        assert_eq!(*reply_seq, player_seq + 1);
        assert_eq!(source.as_deref(), Some("llm"), "seq {reply_seq}");
    }
    let mut player_lines: Vec<&str> = stored
        .iter()
        .filter(|m| m.1 == "player")
        .map(|m| m.2.as_str())
        .collect();
    player_lines.sort_unstable();
    let sent: Vec<String> = (0..TURNS).map(|i| format!("line {i:02}")).collect();
    assert_eq!(player_lines, sent, "every line stored exactly once");
    let (calls, usage_rows) = dialogue_calls(&app).await;
    eprintln!(
        "replicas/gapless: {TURNS} concurrent turns on one conversation over 2 processes in {elapsed:?}: \
         {} messages, seq 1..={} gapless, {calls} dialogue calls, {usage_rows} dialogue usage rows",
        stored.len(),
        seqs.last().copied().unwrap_or_default()
    );
    assert_eq!(calls, TURNS, "one provider call per turn");
    assert_eq!(usage_rows, TURNS as i64);

    replica.stop().await;
}
