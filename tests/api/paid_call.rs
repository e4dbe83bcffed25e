//! The one paid LLM call (`Services::paid_call`) behaves the same for every purpose: the
//! usage of a call the database could not record is spooled and replayed, its reservation
//! counted meanwhile; and background calls tell the circuit breaker how its half-open probe went, without ever opening it
//! themselves.
//!
//! Some tests drive the service over HTTP; others call `paid_call` on a `Services` of
//! their own, built over the test app's database and mock provider, to aim at exactly one
//! call of one purpose.

use crate::{
    helpers::{TestApp, error_code},
    mock_provider::MockReply,
};
use npc_dialogue::{
    config::Config,
    domain::PlayerId,
    llm::{ChatMessage, ChatRole, Purpose, retry::RetryPolicy},
    metrics::CircuitState,
    service::{
        ServiceResult, Services,
        money::ledger::CallFor,
        paid_call::{CallOutcome, Delivery, NotCalled, PaidCall},
    },
};
use reqwest::StatusCode;
use serde_json::json;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

/// What the trigger of `refuse_usage_rows_of` answers with.
const REFUSAL: &str = "test: usage write refused";

/// A `Services` of the test's own over the app's database and provider: its own circuit
/// breakers, the app's data.
async fn services_for(app: &TestApp, overrides: &[(&str, &str)]) -> Services {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", app.database_url()),
        ("LLM_BASE_URL", app.provider.base_url.as_str()),
        ("LLM_API_KEY", "test-provider-key"),
        ("LLM_RETRY_BASE_MS", "10"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    for (name, value) in overrides {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration");
    Services::build(Arc::new(config), app.pool.clone())
        .await
        .expect("building the services")
}

/// From now on the database refuses every usage row of this purpose, as a failing disk
/// or a broken replica would; other purposes are recorded as usual.
async fn refuse_usage_rows_of(app: &TestApp, purpose: &str) {
    let trigger = format!(
        "CREATE TRIGGER refuse_{purpose}_usage BEFORE INSERT ON usage_records FOR EACH ROW \
         IF NEW.purpose = '{purpose}' THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{REFUSAL}'; \
         END IF"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(trigger))
        .execute(&app.pool)
        .await
        .expect("creating the trigger");
}

/// Reservations held, expired or not: a released one is deleted.
async fn reservations(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM budget_reservations")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Waits (up to 10 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < give_up, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn player(id: &str) -> PlayerId {
    PlayerId::parse(id).unwrap()
}

/// One call of `purpose` as background work makes it: one attempt, no retry.
fn one_attempt(player_id: &PlayerId, purpose: Purpose) -> PaidCall<'_> {
    PaidCall::new(
        CallFor {
            player_id,
            generation: 0,
            conversation_id: None,
            character_id: None,
            purpose,
        },
        vec![
            ChatMessage::new(ChatRole::System, "Summarize the conversation."),
            ChatMessage::new(ChatRole::User, "Player: a room, please. Mara: one left."),
        ],
        200,
        RetryPolicy {
            base: Duration::from_millis(10),
            max_retries: 0,
            attempt_timeout: Duration::from_secs(5),
        },
        tokio::time::Instant::now() + Duration::from_secs(5),
    )
}

async fn call(
    services: &Services,
    player_id: &PlayerId,
    purpose: Purpose,
) -> ServiceResult<CallOutcome> {
    let model = &services.config.llm.model;
    services
        .paid_call(&one_attempt(player_id, purpose), model, Delivery::Whole)
        .await
}

fn circuit(services: &Services) -> CircuitState {
    services.circuits.state(&services.config.llm.model)
}

/// A conversation call whose attempts are all exhausted: with `LLM_CIRCUIT_FAILURES=1`,
/// the circuit opens.
async fn open_the_circuit(app: &TestApp, services: &Services, player_id: &PlayerId) {
    app.provider.enqueue([MockReply::Status(500)]);
    let outcome = call(services, player_id, Purpose::Conversation)
        .await
        .unwrap();
    assert!(matches!(outcome, CallOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(circuit(services), CircuitState::Open);
}

/// Longer than the `LLM_CIRCUIT_COOLDOWN_MS` of these tests.
const PAST_THE_COOLDOWN: Duration = Duration::from_millis(150);
const QUICK_CIRCUIT: [(&str, &str); 2] = [
    ("LLM_CIRCUIT_FAILURES", "1"),
    ("LLM_CIRCUIT_COOLDOWN_MS", "50"),
];

/// What a call whose usage the database refused answers (a 503 for a turn).
const UNRECORDED: &str = "LLM usage could not be recorded";

async fn usage_rows(app: &TestApp) -> i64 {
    app.count("usage_records").await
}

async fn accept_usage_rows_of(app: &TestApp, purpose: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TRIGGER refuse_{purpose}_usage"
    )))
    .execute(&app.pool)
    .await
    .expect("dropping the trigger");
}

#[tokio::test]
async fn a_background_call_whose_usage_cannot_be_recorded_keeps_its_reservation_and_replays_the_usage()
 {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    refuse_usage_rows_of(&app, "summarization").await;
    let services = services_for(&app, &[]).await;
    let p1 = player("p-1");

    // The provider answers (slowly enough to see the reservation held), then the usage
    // row that would settle the reservation is refused.
    app.provider.enqueue_for(
        "summarization",
        [MockReply::Delayed(
            Duration::from_millis(300),
            Box::new(MockReply::text("Summary: a room was rented.", 40, 8)),
        )],
    );
    let (answered, ()) = tokio::join!(
        call(&services, &p1, Purpose::Summarization),
        eventually("the call holds a reservation", || async {
            reservations(&app).await == 1
        }),
    );
    let error = answered.expect_err("the usage row was refused, so the call is an error");
    assert!(format!("{error:#}").contains(UNRECORDED), "{error:#}");
    assert_eq!(
        reservations(&app).await,
        1,
        "the money stays counted while its usage is not recorded"
    );

    // The provider fails, and the usage row of the failed attempt is refused.
    app.provider
        .enqueue_for("summarization", [MockReply::Status(500)]);
    let error = call(&services, &p1, Purpose::Summarization)
        .await
        .expect_err("the usage row was refused, so the call is an error");
    assert!(format!("{error:#}").contains(UNRECORDED), "{error:#}");
    assert_eq!(reservations(&app).await, 2);
    assert_eq!(services.ledger.spooled(), 2);
    assert_eq!(usage_rows(&app).await, 0);

    // Nothing is lost: once the database takes them, the spooled rows are written and
    // settle the reservations they stood for.
    assert_eq!(services.ledger.replay_spool().await, 0, "still refused");
    accept_usage_rows_of(&app, "summarization").await;
    assert_eq!(services.ledger.replay_spool().await, 2);
    assert_eq!(usage_rows(&app).await, 2);
    assert_eq!(reservations(&app).await, 0);
    let spent: Option<rust_decimal::Decimal> =
        sqlx::query_scalar("SELECT spent_usd FROM player_monthly_spend WHERE player_id = 'p-1'")
            .fetch_optional(&app.pool)
            .await
            .unwrap();
    assert!(
        spent.is_some_and(|spent| spent > rust_decimal::Decimal::ZERO),
        "{spent:?}"
    );
    assert_eq!(
        app.provider.requests_for("summarization").len(),
        2,
        "one attempt each"
    );
}

#[tokio::test]
async fn a_background_job_whose_usage_cannot_be_recorded_fails_and_its_usage_is_replayed() {
    let app = TestApp::spawn_with(&[
        ("JOB_POLL_MS", "20"),
        ("JOB_MAX_ATTEMPTS", "1"),
        ("FACT_EXTRACTION_EVERY", "1"),
    ])
    .await;
    app.create_mara("mara").await;
    refuse_usage_rows_of(&app, "fact_extraction").await;
    let parked = |jobs: i64| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE status = 'parked'")
                .fetch_one(&app.pool)
                .await
                .unwrap()
                == jobs
        }
    };

    // The extractor answers; the usage row that would settle the reservation is refused.
    app.say("c-1", "p-1", "mara", "I hail from Rivia.").await;
    eventually("the first extraction job is parked", || parked(1)).await;
    // The extractor fails; the usage row of the failed attempt is refused.
    app.provider
        .enqueue_for("fact_extraction", [MockReply::Status(500)]);
    app.say("c-1", "p-1", "mara", "I keep two swords.").await;
    eventually("the second extraction job is parked", || parked(2)).await;

    let errors: Vec<String> = sqlx::query_scalar("SELECT last_error FROM jobs ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(errors.len(), 2);
    for error in &errors {
        assert!(error.contains(UNRECORDED), "{error}");
    }
    assert_eq!(app.provider.requests_for("fact_extraction").len(), 2);
    assert_eq!(reservations(&app).await, 2, "counted until recorded");

    accept_usage_rows_of(&app, "fact_extraction").await;
    eventually("the spooled usage is recorded", || async {
        reservations(&app).await == 0
    })
    .await;
    let extraction_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE purpose = 'fact_extraction'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(extraction_rows, 2);
}

#[tokio::test]
async fn a_turn_whose_usage_cannot_be_recorded_answers_503_and_its_usage_is_replayed() {
    let app = TestApp::spawn_with(&[("LLM_MAX_RETRIES", "0"), ("JOB_WORKERS", "0")]).await;
    app.create_mara("mara").await;
    refuse_usage_rows_of(&app, "conversation").await;
    let turn = json!({"player_id": "p-1", "character_id": "mara", "content": "A room?"});

    // Answered: the usage row that settles the reservation is refused.
    let (status, code) = error_code(app.post_turn("c-1", turn.clone()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert_eq!(reservations(&app).await, 1, "the money stays counted");

    // Failed: the usage row of the failed attempt is refused.
    app.provider.enqueue([MockReply::Status(500)]);
    let (status, _) = error_code(app.post_turn("c-1", turn).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reservations(&app).await, 2);
    assert_eq!(app.provider.request_count(), 2);
    assert_eq!(app.count("messages").await, 0, "no turn stored half-done");

    accept_usage_rows_of(&app, "conversation").await;
    eventually("the spooled usage is recorded", || async {
        usage_rows(&app).await == 2 && reservations(&app).await == 0
    })
    .await;
}

#[tokio::test]
async fn a_background_call_that_is_the_half_open_probe_closes_or_reopens_the_circuit() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    let services = services_for(&app, &QUICK_CIRCUIT).await;
    let p1 = player("p-1");

    open_the_circuit(&app, &services, &p1).await;
    // Open: background work waits like turns do.
    let outcome = call(&services, &p1, Purpose::Summarization).await.unwrap();
    assert!(
        matches!(outcome, CallOutcome::NotCalled(NotCalled::CircuitOpen)),
        "{outcome:?}"
    );
    assert!(app.provider.requests_for("summarization").is_empty());

    // Past the cooldown, a background call is the probe, and the provider answers it.
    tokio::time::sleep(PAST_THE_COOLDOWN).await;
    let outcome = call(&services, &p1, Purpose::Summarization).await.unwrap();
    assert!(
        matches!(outcome, CallOutcome::Answered { .. }),
        "{outcome:?}"
    );
    assert_eq!(circuit(&services), CircuitState::Closed);

    // Open again; this time the background probe fails.
    open_the_circuit(&app, &services, &p1).await;
    tokio::time::sleep(PAST_THE_COOLDOWN).await;
    app.provider
        .enqueue_for("summarization", [MockReply::Status(500)]);
    let outcome = call(&services, &p1, Purpose::Summarization).await.unwrap();
    assert!(matches!(outcome, CallOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(circuit(&services), CircuitState::Open);

    assert_eq!(app.provider.requests_for("summarization").len(), 2);
    assert_eq!(reservations(&app).await, 0);
}

#[tokio::test]
async fn background_failures_never_open_a_closed_circuit() {
    let app = TestApp::spawn_with(&[("JOB_WORKERS", "0")]).await;
    let services = services_for(&app, &QUICK_CIRCUIT).await;
    let p1 = player("p-1");

    app.provider
        .enqueue_for("summarization", (0..3).map(|_| MockReply::Status(500)));
    app.provider
        .enqueue_for("fact_extraction", (0..3).map(|_| MockReply::Status(503)));
    for purpose in [Purpose::Summarization, Purpose::FactExtraction] {
        for _ in 0..3 {
            let outcome = call(&services, &p1, purpose).await.unwrap();
            assert!(matches!(outcome, CallOutcome::Failed { .. }), "{outcome:?}");
            assert_eq!(circuit(&services), CircuitState::Closed);
        }
    }
    assert_eq!(app.provider.requests_for("summarization").len(), 3);
    assert_eq!(app.provider.requests_for("fact_extraction").len(), 3);

    // The same failure on a turn's call opens it at once (LLM_CIRCUIT_FAILURES=1).
    open_the_circuit(&app, &services, &p1).await;
}
