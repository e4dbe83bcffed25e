//! `TestApp::spawn()`: the real server on port 0 over a fresh database, talking to a
//! fresh mock provider.

use crate::mock_provider::MockProvider;
use npc_dialogue::{app::Application, config::Config};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::MySqlPool;
use std::collections::HashMap;
use tokio::{sync::oneshot, task::JoinHandle};

/// A database of its own, dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
}

/// The shared server tests use unless they start their own.
pub fn shared_server() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

impl TestDatabase {
    fn on(server: &str) -> Self {
        let name = format!("npc_test_{}", uuid::Uuid::new_v4().simple());
        Self {
            url: format!("{}/{name}", server.trim_end_matches('/')),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop runs on the test's runtime thread, which stays blocked until this returns,
        // so the server's tasks (workers mid-transaction) cannot finish: their connections
        // are killed first, or DROP DATABASE would wait on their metadata locks forever.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::databases::drop_database(&url))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test database: {error:#}");
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub provider: MockProvider,
    /// Held for its Drop: the database goes when the test does.
    _database: TestDatabase,
    pub pool: MySqlPool,
    /// Sent as the bearer key by `request()`, when set.
    pub api_key: Option<String>,
    vars: HashMap<String, String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts with these environment variables over the test defaults; a variable set
    /// to "" is removed (so `("LLM_API_KEY", "")` runs without an LLM key).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on(&shared_server(), overrides).await
    }

    /// As `spawn_with`, on another MySQL server (`mysql://user@host:port`).
    pub async fn spawn_on(server: &str, overrides: &[(&str, &str)]) -> Self {
        let provider = MockProvider::start().await;
        let db = TestDatabase::on(server);
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", db.url.as_str()),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("LLM_BASE_URL", provider.base_url.as_str()),
            ("LLM_API_KEY", "test-provider-key"),
            // Retries as in production, but waits of 10, 20, 40 ms.
            ("LLM_RETRY_BASE_MS", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, value) in overrides {
            if value.is_empty() {
                vars.remove(*name);
            } else {
                vars.insert((*name).to_owned(), (*value).to_owned());
            }
        }
        let (address, shutdown, server) = start_server(&vars).await;
        let pool = MySqlPool::connect(&db.url)
            .await
            .expect("connecting to the test database");
        Self {
            address,
            client: reqwest::Client::new(),
            provider,
            _database: db,
            pool,
            api_key: vars
                .get("GAME_API_KEYS")
                .and_then(|keys| keys.split(',').next().map(str::to_owned)),
            vars,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// The test database's URL, for a second service process over the same data.
    pub fn database_url(&self) -> &str {
        &self._database.url
    }

    /// Stops the server gracefully (as on SIGTERM).
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database and provider.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (address, shutdown, server) = start_server(&self.vars).await;
        self.address = address;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    /// As `restart`, with these variables changed ("" removes one).
    pub async fn restart_with(&mut self, overrides: &[(&str, &str)]) {
        for (name, value) in overrides {
            if value.is_empty() {
                self.vars.remove(*name);
            } else {
                self.vars.insert((*name).to_owned(), (*value).to_owned());
            }
        }
        self.restart().await;
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.address));
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    pub async fn put_character(&self, id: &str, body: Value) -> Response {
        self.request(
            Method::PUT,
            &format!("/characters/{}", urlencoding::encode(id)),
        )
        .json(&body)
        .send()
        .await
        .expect("PUT /characters")
    }

    /// Registers the SPEC's innkeeper under `id`.
    pub async fn create_mara(&self, id: &str) {
        let response = self
            .put_character(
                id,
                json!({
                    "name": "Mara",
                    "persona": "Gruff innkeeper of the Crooked Stag. Speaks plainly.",
                    "model": null,
                    "fallback_lines": {"high": ["Ah, my favourite guest!"], "medium": ["What'll it be?"], "low": ["Make it quick."]}
                }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "creating {id}");
    }

    pub async fn post_turn(&self, conversation_id: &str, body: Value) -> Response {
        self.request(
            Method::POST,
            &format!(
                "/conversations/{}/messages",
                urlencoding::encode(conversation_id)
            ),
        )
        .json(&body)
        .send()
        .await
        .expect("POST /conversations/{id}/messages")
    }

    /// A turn that must succeed; returns its JSON.
    pub async fn say(
        &self,
        conversation_id: &str,
        player_id: &str,
        character_id: &str,
        content: &str,
    ) -> Value {
        let response = self
            .post_turn(
                conversation_id,
                json!({"player_id": player_id, "character_id": character_id, "content": content}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("turn JSON")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.request(Method::GET, path).send().await.expect("GET");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The status of a `DELETE` of `path`.
    pub async fn delete(&self, path: &str) -> StatusCode {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE")
            .status()
    }

    /// Every stored message of a conversation, straight from the database.
    pub async fn stored_messages(
        &self,
        conversation_id: &str,
    ) -> Vec<(u32, String, String, Option<String>)> {
        sqlx::query_as(
            "SELECT seq, role, content, source FROM messages WHERE conversation_id = ? ORDER BY seq",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await
        .expect("reading messages")
    }

    pub async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "messages" => "SELECT COUNT(*) FROM messages",
            "conversations" => "SELECT COUNT(*) FROM conversations",
            "usage_records" => "SELECT COUNT(*) FROM usage_records",
            "characters" => "SELECT COUNT(*) FROM characters",
            "players" => "SELECT COUNT(*) FROM players",
            "idempotency_keys" => "SELECT COUNT(*) FROM idempotency_keys",
            "budget_reservations" => "SELECT COUNT(*) FROM budget_reservations",
            "quota_calls" => "SELECT COUNT(*) FROM quota_calls",
            "memory_vectors" => "SELECT COUNT(*) FROM memory_vectors",
            other => panic!("no count for {other}"),
        };
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("counting rows")
    }
}

async fn start_server(
    vars: &HashMap<String, String>,
) -> (String, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration");
    // `TEST_LOG=1 cargo test …` shows the service's logs.
    if std::env::var_os("TEST_LOG").is_some() {
        npc_dialogue::telemetry::init(config.log_format);
    }
    let app = Application::build(config).await.expect("building the app");
    let address = format!("http://{}", app.local_addr().expect("local address"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (address, shutdown, server)
}

/// The error code of a JSON error body, asserting its shape on the way.
pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("error body is JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(
        body["error"]["message"].is_string(),
        "error.message in {body}"
    );
    (status, code)
}

/// Parses a JSON number as an exact decimal (through its text).
pub fn decimal(value: &Value) -> rust_decimal::Decimal {
    value
        .to_string()
        .parse()
        .unwrap_or_else(|_| panic!("{value} is not a decimal"))
}
