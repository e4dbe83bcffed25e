//! The configuration as each variable reads.

use super::*;
use std::collections::HashMap;

fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn embeddings_default_to_the_llms_url_and_key() -> Result<(), ConfigError> {
    let off = parse(&[])?;
    assert!(off.embedding.is_none());
    assert_eq!(off.memory_messages_in_prompt, 3);
    let on = parse(&[
        ("EMBEDDING_MODEL", "text-embedding-3-small"),
        ("LLM_BASE_URL", "http://gateway:4000/v1/"),
        ("LLM_API_KEY", "sk-llm"),
    ])?;
    let embedding = on.embedding.expect("configured");
    assert_eq!(embedding.base_url.expose(), "http://gateway:4000/v1");
    assert_eq!(
        embedding.api_key.as_ref().map(Secret::expose),
        Some("sk-llm")
    );
    assert_eq!(embedding.turn_timeout, Duration::from_millis(800));
    let own = parse(&[
        ("EMBEDDING_MODEL", "e5"),
        ("EMBEDDING_BASE_URL", "http://127.0.0.1:8092/v1"),
        ("EMBEDDING_API_KEY", "local"),
        ("EMBEDDING_TIMEOUT_MS", "250"),
    ])?
    .embedding
    .expect("configured");
    assert_eq!(own.base_url.expose(), "http://127.0.0.1:8092/v1");
    assert_eq!(own.api_key.as_ref().map(Secret::expose), Some("local"));
    assert_eq!(own.turn_timeout, Duration::from_millis(250));
    assert!(own.sides.is_plain());
    let bad = parse(&[("EMBEDDING_MODEL", "e5"), ("EMBEDDING_BASE_URL", "ftp://x")]);
    assert_eq!(bad.err().map(|e| e.variable), Some("EMBEDDING_BASE_URL"));
    Ok(())
}

#[test]
fn embedding_sides_are_read_as_set() -> Result<(), ConfigError> {
    let sides = parse(&[
        ("EMBEDDING_MODEL", "e5"),
        ("EMBEDDING_INPUT_TYPE", " query , passage "),
        ("EMBEDDING_QUERY_PREFIX", "query: "),
        ("EMBEDDING_DOCUMENT_PREFIX", "passage: "),
    ])?
    .embedding
    .expect("configured")
    .sides;
    assert_eq!(
        sides.input_type,
        Some(("query".to_owned(), "passage".to_owned()))
    );
    assert_eq!(
        (sides.query_prefix.as_str(), sides.document_prefix.as_str()),
        ("query: ", "passage: ")
    );
    for bad in ["query", "query,", ",passage", "a,b,c"] {
        let refused = parse(&[("EMBEDDING_MODEL", "e5"), ("EMBEDDING_INPUT_TYPE", bad)]);
        assert_eq!(
            refused.err().map(|e| e.variable),
            Some("EMBEDDING_INPUT_TYPE"),
            "{bad}"
        );
    }
    Ok(())
}

#[test]
fn defaults_follow_the_spec_table() -> Result<(), ConfigError> {
    let config = parse(&[])?;
    assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(config.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.llm.base_url.expose(), "https://api.openai.com/v1");
    assert!(config.llm.api_key.is_none());
    assert_eq!(config.llm.model, "gpt-4o-mini");
    assert_eq!(config.llm.max_tokens, 120);
    assert_eq!(
        config.gossip,
        GossipConfig {
            min_importance: 7,
            delay: Duration::from_secs(600),
            decay: 0.7,
            max_hops: 1,
        }
    );
    assert_eq!(config.llm.timeout, Duration::from_millis(10_000));
    assert_eq!(config.llm.retry_base, Duration::from_millis(1_000));
    assert_eq!(config.llm.max_retries, 3);
    assert_eq!(config.llm.deadline, Duration::from_millis(20_000));
    assert_eq!(config.llm.circuit_failures, 5);
    assert_eq!(config.llm.circuit_cooldown, Duration::from_millis(30_000));
    assert_eq!(config.llm.turn_queue_wait, Duration::from_millis(10_000));
    assert_eq!(config.player_llm_calls_per_hour, 60);
    assert_eq!(
        config.player_monthly_budget_usd,
        Usd::new(Decimal::new(500, 2))
    );
    assert_eq!(config.global_daily_budget_usd, None);
    assert_eq!(config.budget_warning_ratio, Decimal::new(8, 1));
    assert_eq!(config.context_recent_messages, 10);
    assert_eq!(config.summary_batch, 5);
    assert_eq!(config.fact_extraction_every, 5);
    assert_eq!(config.memory_facts_in_prompt, 5);
    assert_eq!(config.http_rate_per_second, 50);
    assert_eq!(config.http_rate_burst, 100);
    assert_eq!(config.http.header_read_timeout, Duration::from_secs(30));
    assert_eq!(config.http.request_timeout, Duration::from_secs(45));
    assert_eq!(config.http.max_concurrent_requests, 512);
    assert_eq!(config.max_message_chars, 2000);
    assert_eq!(config.log_format, LogFormat::Pretty);
    assert_eq!(config.idempotency_retention, Duration::from_secs(24 * 3600));
    assert!(!config.auth_enabled());
    Ok(())
}

#[test]
fn gossip_settings_out_of_range_are_refused() {
    for (variable, value) in [
        ("GOSSIP_MIN_IMPORTANCE", "0"),
        ("GOSSIP_MIN_IMPORTANCE", "11"),
        ("GOSSIP_DECAY", "1.5"),
        ("GOSSIP_DECAY", "NaN"),
        ("GOSSIP_MAX_HOPS", "-1"),
        ("GOSSIP_DELAY_S", "soon"),
    ] {
        let refused = parse(&[(variable, value)]).err().map(|e| e.variable);
        assert_eq!(refused, Some(variable), "{variable}={value}");
    }
}

#[test]
fn an_invalid_value_names_its_variable() {
    for (name, value) in [
        ("BIND_ADDR", "not-an-address"),
        ("LLM_MAX_TOKENS", "0"),
        ("LLM_TIMEOUT_MS", "-5"),
        ("PLAYER_MONTHLY_BUDGET_USD", "lots"),
        ("GLOBAL_DAILY_BUDGET_USD", "-1"),
        ("BUDGET_WARNING_RATIO", "1.5"),
        ("LOG_FORMAT", "xml"),
        ("LLM_BASE_URL", "ftp://example.com"),
        ("DATABASE_URL", "postgres://localhost/x"),
        ("HTTP_MAX_CONCURRENT_REQUESTS", "0"),
        ("HTTP_REQUEST_TIMEOUT_MS", "soon"),
        ("MODEL_PRICES_FILE", "/nonexistent/prices.json"),
    ] {
        match parse(&[(name, value)]) {
            Ok(_) => panic!("{name}={value} was accepted"),
            Err(error) => assert_eq!(error.variable, name, "{error}"),
        }
    }
}

#[test]
fn secrets_never_appear_in_debug_output() -> Result<(), ConfigError> {
    let config = parse(&[
        ("LLM_API_KEY", "sk-very-secret"),
        ("GAME_API_KEYS", "game-key-1, game-key-2"),
        ("DATABASE_URL", "mysql://root:hunter2@db/npc"),
        (
            "LLM_BASE_URL",
            "https://gw-user:gw-pass-77@gateway.example/v1",
        ),
    ])?;
    let printed = format!("{config:?}");
    for secret in [
        "sk-very-secret",
        "game-key-1",
        "hunter2",
        "gw-user",
        "gw-pass-77",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("gateway.example/v1"), "{printed}");
    assert_eq!(
        config.llm.base_url.expose(),
        "https://gw-user:gw-pass-77@gateway.example/v1"
    );
    assert_eq!(config.game_api_keys.len(), 2);
    assert!(config.auth_enabled());
    Ok(())
}

#[test]
fn urls_lose_their_credentials_when_shown() {
    for (raw, shown) in [
        ("https://u:p@host/v1", "https://[redacted]@host/v1"),
        ("https://key@host:8443", "https://[redacted]@host:8443"),
        ("http://a:b@c@host/x?y=@z", "http://[redacted]@host/x?y=@z"),
        ("https://host/v1/@me", "https://host/v1/@me"),
        ("https://host/v1", "https://host/v1"),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redact_url(raw), shown, "{raw}");
    }
    let url = ServiceUrl::new("https://u:p@host/v1");
    assert_eq!(url.to_string(), "https://[redacted]@host/v1");
    assert_eq!(format!("{url:?}"), "\"https://[redacted]@host/v1\"");
}

#[test]
fn an_invalid_base_url_is_refused_without_showing_its_credentials() {
    match parse(&[("LLM_BASE_URL", "ftp://user:pw-Zq9@host/v1")]) {
        Ok(_) => panic!("an ftp URL was accepted"),
        Err(error) => assert!(!error.to_string().contains("pw-Zq9"), "{error}"),
    }
}

#[test]
fn the_request_timeout_follows_the_turn_bounds_unless_set() -> Result<(), ConfigError> {
    let config = parse(&[("TURN_QUEUE_WAIT_MS", "2000"), ("LLM_DEADLINE_MS", "3000")])?;
    assert_eq!(config.http.request_timeout, Duration::from_secs(20));
    let config = parse(&[("HTTP_REQUEST_TIMEOUT_MS", "1500")])?;
    assert_eq!(config.http.request_timeout, Duration::from_millis(1500));
    Ok(())
}

#[test]
fn blank_values_count_as_unset() -> Result<(), ConfigError> {
    let config = parse(&[("LLM_API_KEY", "  "), ("LLM_MODEL", "")])?;
    assert!(config.llm.api_key.is_none());
    assert_eq!(config.llm.model, "gpt-4o-mini");
    Ok(())
}
