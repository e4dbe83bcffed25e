//! The `npc-dialogue` command line, run as operators run it.

use crate::helpers::shared_server;
use std::process::{Command, Output};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Runs the binary with only these variables (and away from any `.env`).
fn npc_dialogue(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_npc-dialogue"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running npc-dialogue")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn openapi_prints_the_committed_document() {
    let output = npc_dialogue(&["openapi"], &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        text(&output.stdout) == committed,
        "openapi/openapi.json is out of date: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn help_lists_every_subcommand() {
    let output = npc_dialogue(&["--help"], &[]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for command in ["serve", "migrate", "check-config", "openapi"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    let wrong = npc_dialogue(&["frobnicate"], &[]);
    assert!(!wrong.status.success());
}

#[test]
fn check_config_prints_the_configuration_without_secrets() {
    let output = npc_dialogue(
        &["check-config"],
        &[
            ("GAME_API_KEYS", "game-secret-1,game-secret-2"),
            ("READONLY_API_KEYS", "reader-secret"),
            ("LLM_API_KEY", "sk-provider-secret"),
            ("DATABASE_URL", "mysql://app:db-password@db:3306/npc"),
            ("LLM_MODEL", "gpt-4o"),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let printed = text(&output.stdout) + &text(&output.stderr);
    assert!(printed.contains("gpt-4o"), "{printed}");
    assert!(printed.contains("redacted"), "{printed}");
    for secret in [
        "game-secret-1",
        "game-secret-2",
        "reader-secret",
        "sk-provider-secret",
        "db-password",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

#[test]
fn check_config_names_an_invalid_variable_and_fails() {
    let output = npc_dialogue(&["check-config"], &[("LLM_MAX_TOKENS", "many")]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("LLM_MAX_TOKENS"), "{stderr}");
}

#[test]
fn migrate_creates_the_database_applies_migrations_and_exits() {
    let name = format!("npc_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{name}", shared_server().trim_end_matches('/'));
    let output = npc_dialogue(&["migrate"], &[("DATABASE_URL", &url)]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tables: Vec<String> = runtime.block_on(async {
        use sqlx::migrate::MigrateDatabase;
        let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
        let tables = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        sqlx::MySql::drop_database(&url).await.unwrap();
        tables
    });
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    for table in ["_sqlx_migrations", "messages", "usage_records", "jobs"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}
