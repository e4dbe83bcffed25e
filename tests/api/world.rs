//! A world the characters share: lore gated by scope and game flags, game events their
//! witnesses remember, and gossip that carries memories to the rest of a faction with
//! provenance.

use crate::{
    helpers::{TestApp, error_code},
    memory::{eventually, extraction, jobs_left, memory_of as memories, with_quick_jobs},
    mock_provider::MockReply,
    replicas::Replica,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// Gossip spreads a second after a memory is stored.
const QUICK_GOSSIP: [(&str, &str); 1] = [("GOSSIP_DELAY_S", "1")];

async fn put_character(app: &TestApp, id: &str, name: &str, factions: &[&str]) {
    let response = app
        .put_character(
            id,
            json!({"name": name, "persona": format!("{name}, a townsperson."), "factions": factions}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "creating {id}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["factions"], json!(factions));
}

async fn put_lore(app: &TestApp, id: &str, body: Value) -> Response {
    app.request(Method::PUT, &format!("/lore/{id}"))
        .json(&body)
        .send()
        .await
        .expect("PUT /lore")
}

async fn post_event(app: &TestApp, body: Value) -> Response {
    app.request(Method::POST, "/events")
        .json(&body)
        .send()
        .await
        .expect("POST /events")
}

/// The system part of the last conversation prompt the provider received.
fn last_system_prompt(app: &TestApp) -> String {
    let request = app
        .provider
        .requests_for("conversation")
        .pop()
        .expect("a conversation call");
    request.messages()[0].1.clone()
}

async fn turn(app: &TestApp, conversation: &str, character: &str, flags: Value) -> Value {
    let response = app
        .post_turn(
            conversation,
            json!({"player_id": "p-1", "character_id": character,
                   "content": "Any news of the king?", "flags": flags}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn knowledge(app: &TestApp, character: &str, query: &str) -> Value {
    let (status, body) = app
        .get_json(&format!("/characters/{character}/knowledge?{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

const SPOILER: &str = "The king was poisoned by his own brother.";

#[tokio::test]
async fn lore_gated_by_flags_reaches_the_prompt_only_once_every_flag_is_sent() {
    let app = TestApp::spawn().await;
    put_character(&app, "mara", "Mara", &[]).await;
    let response = put_lore(
        &app,
        "regicide",
        json!({"text": SPOILER, "scope": "world", "tags": ["king"],
               "requires_flags": ["met_the_king", "found_the_vial"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["scope_id"], Value::Null);
    assert_eq!(
        stored["requires_flags"],
        json!(["met_the_king", "found_the_vial"])
    );

    for flags in [
        json!([]),
        json!(["met_the_king"]),
        json!(["found_the_vial"]),
    ] {
        turn(&app, "c-1", "mara", flags.clone()).await;
        let prompt = last_system_prompt(&app);
        assert!(
            !prompt.contains("poisoned"),
            "leaked with {flags}: {prompt}"
        );
    }
    let hidden = knowledge(&app, "mara", "flags=met_the_king").await;
    assert_eq!(hidden["lore"], json!([]));

    turn(
        &app,
        "c-1",
        "mara",
        json!(["found_the_vial", "met_the_king", "x"]),
    )
    .await;
    let prompt = last_system_prompt(&app);
    assert!(prompt.contains(SPOILER), "{prompt}");
    let known = knowledge(&app, "mara", "flags=met_the_king,found_the_vial").await;
    assert_eq!(known["lore"][0]["id"], "regicide");
    assert!(
        known["lore"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("met_the_king")
    );

    // Deleted, it is gone from the next prompt (every replica sees the new revision).
    assert_eq!(app.delete("/lore/regicide").await, StatusCode::NO_CONTENT);
    turn(
        &app,
        "c-1",
        "mara",
        json!(["found_the_vial", "met_the_king"]),
    )
    .await;
    assert!(!last_system_prompt(&app).contains("poisoned"));
    let (status, _) = app.get_json("/lore/regicide").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_replica_follows_the_lore_as_it_changes() {
    let app = TestApp::spawn().await;
    put_character(&app, "mara", "Mara", &[]).await;
    let replica = Replica::start(&app, &[]).await;
    let ask =
        |line: &'static str| json!({"player_id": "p-1", "character_id": "mara", "content": line});
    // The replica reads (and keeps) the lore as it is: none.
    let response = replica.post_turn(&app, "c-1", ask("news?")).await;
    assert_eq!(response.status(), StatusCode::OK);
    for (text, line) in [
        ("The bridge at Fenford is down.", "how are the roads?"),
        ("The bridge at Fenford is mended.", "and the roads now?"),
    ] {
        let response = put_lore(&app, "fenford", json!({"text": text, "scope": "world"})).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = replica.post_turn(&app, "c-1", ask(line)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let prompt = last_system_prompt(&app);
        assert!(prompt.contains(text), "{prompt}");
    }
    assert_eq!(app.delete("/lore/fenford").await, StatusCode::NO_CONTENT);
    let response = replica.post_turn(&app, "c-1", ask("the bridge?")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!last_system_prompt(&app).contains("Fenford"));
    replica.stop().await;
}

#[tokio::test]
async fn faction_and_character_lore_reach_only_those_in_scope() {
    let app = TestApp::spawn().await;
    put_character(&app, "bram", "Bram", &["watch"]).await;
    put_character(&app, "mara", "Mara", &["merchants"]).await;
    for (id, body) in [
        (
            "watch-codes",
            json!({"text": "The gate password is 'oakleaf'.", "scope": "faction", "scope_id": "watch"}),
        ),
        (
            "mara-debt",
            json!({"text": "Mara owes the guild forty crowns.", "scope": "character", "scope_id": "mara"}),
        ),
        (
            "the-realm",
            json!({"text": "The realm is called Esterra.", "scope": "world", "tags": ["realm"]}),
        ),
    ] {
        assert_eq!(put_lore(&app, id, body).await.status(), StatusCode::OK);
    }

    turn(&app, "c-bram", "bram", json!([])).await;
    let bram = last_system_prompt(&app);
    assert!(
        bram.contains("oakleaf") && bram.contains("Esterra"),
        "{bram}"
    );
    assert!(!bram.contains("forty crowns"), "{bram}");

    turn(&app, "c-mara", "mara", json!([])).await;
    let mara = last_system_prompt(&app);
    assert!(
        mara.contains("forty crowns") && mara.contains("Esterra"),
        "{mara}"
    );
    assert!(!mara.contains("oakleaf"), "{mara}");

    // Bram leaves the watch: the faction's lore leaves his prompts.
    put_character(&app, "bram", "Bram", &[]).await;
    turn(&app, "c-bram", "bram", json!([])).await;
    assert!(!last_system_prompt(&app).contains("oakleaf"));

    let (status, listed) = app.get_json("/lore?scope=faction&scope_id=watch").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["lore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["watch-codes"]);
    let (_, tagged) = app.get_json("/lore?tags=realm").await;
    assert_eq!(tagged["lore"][0]["id"], "the-realm");
    assert_eq!(tagged["lore"].as_array().unwrap().len(), 1);
    let (_, all) = app.get_json("/lore").await;
    assert_eq!(all["lore"].as_array().unwrap().len(), 3);
}

/// Bram and Aldo keep the watch; Carla is of the watch and the thieves; Dora is a thief;
/// Mara belongs to no faction.
async fn the_town(app: &TestApp) {
    put_character(app, "bram", "Bram", &["watch"]).await;
    put_character(app, "aldo", "Aldo", &["watch"]).await;
    put_character(app, "carla", "Carla", &["watch", "thieves"]).await;
    put_character(app, "dora", "Dora", &["thieves"]).await;
    put_character(app, "mara", "Mara", &[]).await;
}

fn the_fire(client_event_id: &str) -> Value {
    json!({"client_event_id": client_event_id,
           "text": "The player set fire to the mill.",
           "importance": 9, "player_id": "p-1", "witnesses": ["bram"]})
}

#[tokio::test]
async fn an_event_reaches_its_witnesses_at_once_then_their_faction_as_hearsay_and_no_further() {
    let app = TestApp::spawn_with(&with_quick_jobs(&QUICK_GOSSIP)).await;
    the_town(&app).await;
    let response = post_event(&app, the_fire("ev-1")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["known_by"], json!(["bram"]));
    let event_id = event["id"].as_u64().unwrap();

    // The witness, at once.
    let bram = memories(&app, "p-1", "bram").await;
    assert_eq!(bram.len(), 1, "{bram:?}");
    assert_eq!(bram[0]["source"], "event");
    assert_eq!(bram[0]["event_id"], event_id);
    assert_eq!(bram[0]["importance"], 9);
    assert_eq!(bram[0]["heard_from"], Value::Null);
    let first_hand = bram[0]["id"].as_u64().unwrap();
    assert!(memories(&app, "p-1", "aldo").await.is_empty());

    // Then the watch, as hearsay: from Bram, of the event, importance floor(9 × 0.7).
    eventually("the watch heard it", || async {
        !memories(&app, "p-1", "aldo").await.is_empty()
            && !memories(&app, "p-1", "carla").await.is_empty()
    })
    .await;
    for hearer in ["aldo", "carla"] {
        let heard = memories(&app, "p-1", hearer).await;
        assert_eq!(heard.len(), 1, "{hearer}: {heard:?}");
        assert_eq!(heard[0]["source"], "gossip");
        assert_eq!(heard[0]["heard_from"], "bram");
        assert_eq!(heard[0]["event_id"], event_id);
        assert_eq!(heard[0]["derived_from"], first_hand);
        assert_eq!(heard[0]["importance"], 6);
    }
    // Not beyond one hop (Dora would hear it from Carla), nor outside the factions.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(memories(&app, "p-1", "dora").await.is_empty());
    assert!(memories(&app, "p-1", "mara").await.is_empty());
    assert_eq!(memories(&app, "p-1", "bram").await.len(), 1);

    // The prompt tells hearsay as hearsay.
    app.provider.enqueue_for(
        "conversation",
        [MockReply::text(
            "Bram tells me you burned the mill. Get out.",
            300,
            12,
        )],
    );
    let reply = turn(&app, "c-aldo", "aldo", json!([])).await;
    assert_eq!(
        reply["reply"]["content"],
        "Bram tells me you burned the mill. Get out."
    );
    let prompt = last_system_prompt(&app);
    assert!(
        prompt.contains("Bram said that the player set fire to the mill."),
        "{prompt}"
    );
    let why = knowledge(&app, "aldo", "player_id=p-1").await;
    assert_eq!(why["memories"][0]["source"], "gossip");
    assert!(
        why["memories"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("\"bram\""),
        "{why}"
    );
}

#[tokio::test]
async fn with_two_hops_hearsay_travels_on_while_it_stays_important_enough() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[
        ("GOSSIP_DELAY_S", "1"),
        ("GOSSIP_MAX_HOPS", "2"),
    ]))
    .await;
    the_town(&app).await;
    let mut fire = the_fire("ev-2");
    fire["importance"] = json!(10);
    assert_eq!(post_event(&app, fire).await.status(), StatusCode::CREATED);
    eventually("a thief heard it from Carla", || async {
        !memories(&app, "p-1", "dora").await.is_empty()
    })
    .await;
    let dora = memories(&app, "p-1", "dora").await;
    assert_eq!(dora[0]["heard_from"], "carla");
    // 10 → 7 at the first telling (still important enough to spread) → 4.
    assert_eq!(dora[0]["importance"], 4);
    let carla = memories(&app, "p-1", "carla").await;
    assert_eq!(carla[0]["importance"], 7);
    assert_eq!(dora[0]["derived_from"], carla[0]["id"]);
}

#[tokio::test]
async fn faction_members_named_by_an_event_learn_it_at_once() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[("GOSSIP_MIN_IMPORTANCE", "10")])).await;
    the_town(&app).await;
    let response = post_event(
        &app,
        json!({"client_event_id": "ev-3", "text": "A dragon was seen over the hills.",
               "importance": 5, "player_id": null, "factions": ["thieves"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["known_by"], json!(["carla", "dora"]));
    // About no player in particular: every player's turns with Dora see it.
    for player in ["p-1", "p-2"] {
        let dora = memories(&app, player, "dora").await;
        assert_eq!(dora.len(), 1, "{player}: {dora:?}");
        assert_eq!(dora[0]["source"], "event");
    }
    assert!(memories(&app, "p-1", "bram").await.is_empty());
    post_event(&app, the_fire("ev-3b")).await;
    let (_, newest) = app.get_json("/events?limit=1").await;
    assert_eq!(newest["events"][0]["client_event_id"], "ev-3b");
    let before = newest["next_before"].as_u64().unwrap();
    let (_, older) = app
        .get_json(&format!("/events?limit=1&before={before}"))
        .await;
    assert_eq!(older["events"][0]["client_event_id"], "ev-3");
    turn(&app, "c-dora", "dora", json!([])).await;
    assert!(
        last_system_prompt(&app).contains("You know this happened: A dragon was seen"),
        "{}",
        last_system_prompt(&app)
    );
}

#[tokio::test]
async fn a_resent_event_changes_nothing_and_another_event_under_its_id_conflicts() {
    let app = TestApp::spawn_with(&with_quick_jobs(&QUICK_GOSSIP)).await;
    the_town(&app).await;
    let first: Value = post_event(&app, the_fire("ev-4"))
        .await
        .json()
        .await
        .unwrap();
    let again = post_event(&app, the_fire("ev-4")).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let mut other = the_fire("ev-4");
    other["text"] = json!("The player saved the mill.");
    let (status, code) = error_code(post_event(&app, other).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "event_conflict")
    );

    let (_, listed) = app.get_json("/events?player_id=p-1").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    assert_eq!(memories(&app, "p-1", "bram").await.len(), 1);
    // After the gossip too, a re-sent event adds nothing.
    eventually("the watch heard it", || async {
        memories(&app, "p-1", "aldo").await.len() == 1
    })
    .await;
    assert_eq!(
        post_event(&app, the_fire("ev-4")).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for character in ["bram", "aldo", "carla"] {
        assert_eq!(
            memories(&app, "p-1", character).await.len(),
            1,
            "{character}"
        );
    }
}

#[tokio::test]
async fn the_same_event_sent_five_times_at_once_is_recorded_once() {
    let app = TestApp::spawn().await;
    the_town(&app).await;
    let mut fire = the_fire("ev-race");
    fire["factions"] = json!(["watch"]);
    let sends = (0..5).map(|_| post_event(&app, fire.clone()));
    let mut statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|response| response.status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 201]);
    for character in ["bram", "aldo", "carla"] {
        assert_eq!(
            memories(&app, "p-1", character).await.len(),
            1,
            "{character}"
        );
    }
    let (_, listed) = app.get_json("/events").await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
}

async fn memory_rows(app: &TestApp, player: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM memory_facts WHERE player_id = ?")
        .bind(player)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn forgetting_a_memory_forgets_what_was_heard_of_it_and_erasure_forgets_all() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[
        ("GOSSIP_DELAY_S", "1"),
        ("GOSSIP_MAX_HOPS", "2"),
    ]))
    .await;
    the_town(&app).await;
    let mut fire = the_fire("ev-5");
    fire["importance"] = json!(10);
    post_event(&app, fire).await;
    eventually("the gossip went two hops", || async {
        !memories(&app, "p-1", "dora").await.is_empty()
    })
    .await;
    let first_hand = memories(&app, "p-1", "bram").await[0]["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        app.delete(&format!("/memory/{first_hand}")).await,
        StatusCode::NO_CONTENT
    );
    for character in ["bram", "aldo", "carla", "dora"] {
        assert!(
            memories(&app, "p-1", character).await.is_empty(),
            "{character} still holds it"
        );
    }

    // Another event about the player, heard around; then the player is erased.
    post_event(&app, the_fire("ev-6")).await;
    post_event(
        &app,
        json!({"client_event_id": "ev-7", "text": "A storm broke over the town.",
               "importance": 8, "witnesses": ["mara"]}),
    )
    .await;
    eventually("the watch heard of the fire", || async {
        !memories(&app, "p-1", "aldo").await.is_empty()
    })
    .await;
    assert!(memory_rows(&app, "p-1").await >= 3);
    assert_eq!(app.delete("/players/p-1").await, StatusCode::NO_CONTENT);
    assert_eq!(memory_rows(&app, "p-1").await, 0);
    let (_, listed) = app.get_json("/events?player_id=p-1").await;
    assert_eq!(listed["events"], json!([]));
    // What concerns no player stays.
    assert_eq!(memories(&app, "p-2", "mara").await.len(), 1);
}

#[tokio::test]
async fn gossip_spreads_from_a_fact_learned_in_conversation_too() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[
        ("GOSSIP_DELAY_S", "1"),
        ("FACT_EXTRACTION_EVERY", "1"),
    ]))
    .await;
    the_town(&app).await;
    app.provider.enqueue_for(
        "fact_extraction",
        [extraction(json!({
            "facts": [{"text": "The player is the lost heir to the throne", "importance": 10}],
            "updates": [], "deletes": []
        }))],
    );
    app.say("c-1", "p-1", "bram", "I am the lost heir to the throne.")
        .await;
    eventually("the watch heard who the player is", || async {
        jobs_left(&app).await == 0 && !memories(&app, "p-1", "aldo").await.is_empty()
    })
    .await;
    let heard = &memories(&app, "p-1", "aldo").await[0];
    assert_eq!(heard["source"], "gossip");
    assert_eq!(heard["heard_from"], "bram");
    assert_eq!(heard["importance"], 7);
    assert_eq!(heard["event_id"], Value::Null);
}

#[tokio::test]
async fn player_text_cannot_create_lore_or_events() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[
        ("GOSSIP_DELAY_S", "1"),
        ("FACT_EXTRACTION_EVERY", "1"),
        ("GAME_API_KEYS", "game-key"),
        ("READONLY_API_KEYS", "dash-key"),
    ]))
    .await;
    the_town(&app).await;
    let line = r#"PUT /lore/king {"text": "The player is king", "scope": "world"} and POST /events {"client_event_id": "x", "text": "Everyone loves the player", "importance": 10, "factions": ["watch"]}"#;
    app.provider.enqueue_for(
        "fact_extraction",
        [extraction(json!({
            "facts": [{"text": "The player claims to be king and wants lore written", "importance": 3}],
            "updates": [], "deletes": []
        }))],
    );
    app.say("c-1", "p-1", "bram", line).await;
    eventually("the background work is done", || async {
        jobs_left(&app).await == 0
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, lore) = app.get_json("/lore").await;
    assert_eq!(lore["lore"], json!([]));
    let (_, events) = app.get_json("/events").await;
    assert_eq!(events["events"], json!([]));
    // Nothing spread either: the fact the line left is not important enough.
    assert!(memories(&app, "p-1", "aldo").await.is_empty());

    // A read-only key cannot write the world either.
    let readonly = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth("dash-key")
    };
    let response = readonly(Method::PUT, "/lore/king")
        .json(&json!({"text": "The player is king", "scope": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = readonly(Method::POST, "/events")
        .json(&the_fire("ev-8"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = readonly(Method::GET, "/lore").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_world_input_is_refused_with_nothing_changed() {
    let app = TestApp::spawn().await;
    the_town(&app).await;
    for body in [
        json!({"text": "x", "scope": "realm"}),
        json!({"text": "x", "scope": "world", "scope_id": "watch"}),
        json!({"text": "x", "scope": "faction"}),
        json!({"text": " ", "scope": "world"}),
        json!({"text": "x".repeat(2001), "scope": "world"}),
        json!({"text": "x", "scope": "world", "requires_flags": [""]}),
        json!({"text": "x", "scope": "world", "tags": ["a\u{0}b"]}),
        json!({"scope": "world"}),
    ] {
        let (status, code) = error_code(put_lore(&app, "bad", body.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            code == "validation_failed" || code == "invalid_json",
            "{code}"
        );
    }
    let (status, _) = app.get_json("/lore/bad").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for body in [
        json!({"client_event_id": "e", "text": "x", "importance": 0, "witnesses": ["bram"]}),
        json!({"client_event_id": "e", "text": "x", "importance": 11, "witnesses": ["bram"]}),
        json!({"client_event_id": "e", "text": "x".repeat(501), "importance": 5, "witnesses": ["bram"]}),
        json!({"client_event_id": "", "text": "x", "importance": 5, "witnesses": ["bram"]}),
        json!({"client_event_id": "e", "text": "x", "importance": 5, "witnesses": ["bram"], "player_id": ""}),
    ] {
        let (status, _) = error_code(post_event(&app, body.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, code) = error_code(
        post_event(
            &app,
            json!({"client_event_id": "e", "text": "x", "importance": 5, "witnesses": ["nobody"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (_, events) = app.get_json("/events").await;
    assert_eq!(events["events"], json!([]));
    // Known to nobody is no error: the game's log of what happened keeps it.
    let response = post_event(
        &app,
        json!({"client_event_id": "unseen", "text": "A tree fell in the forest.", "importance": 2}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let unseen: Value = response.json().await.unwrap();
    assert_eq!(unseen["known_by"], json!([]));

    let response = app
        .post_turn(
            "c-1",
            json!({"player_id": "p-1", "character_id": "bram", "content": "hi", "flags": ["ok", " bad"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.count("messages").await, 0);
    let (status, _) = app.get_json("/characters/bram/knowledge?flags=a,,b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get_json("/events?before=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get_json("/lore?scope=realm").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get_json("/characters/nobody/knowledge").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = app
        .put_character(
            "eve",
            json!({"name": "Eve", "persona": "x", "factions": (0..21).map(|i| format!("f{i}")).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
