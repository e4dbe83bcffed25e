//! Finding what was said, with embeddings off (the default): BM25 over stemmed words,
//! an answer found through the question before it, a message returned with its
//! neighbours, a fact with the lines it was learned from, older lines dated in the
//! prompt's notes, and nothing left once the player is erased.

use crate::{
    helpers::TestApp,
    memory::{eventually, extraction, jobs_left, with_quick_jobs},
    semantic::search,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A history imported as a studio would: the character asks, the player answers in
/// words the later question does not use.
async fn imported(app: &TestApp) {
    let lines = [
        (
            "character",
            "Evening. What do you call that ginger beast on your shoulder?",
        ),
        (
            "player",
            "That's Mustard. She bit the last man who tried to pet her.",
        ),
        ("character", "Fair enough. Where are you headed after this?"),
        (
            "player",
            "North, to visit my sister in Riverton before the snows.",
        ),
        ("character", "Safe travels, then."),
    ];
    let messages: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (role, content))| {
            json!({
                "client_id": format!("m-{i}"),
                "role": role,
                "content": content,
                "created_at": format!("2025-05-0{}T10:00:00Z", i + 1),
            })
        })
        .collect();
    let response = app
        .request(Method::POST, "/conversations/c-old/import")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "messages": messages}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_answer_is_found_through_its_question_and_comes_with_its_neighbours() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    imported(&app).await;
    let results = search(
        &app,
        "q=What+does+the+player+call+their+cat%3F&kinds=message",
    )
    .await;
    let texts: Vec<&str> = results.iter().filter_map(|r| r["text"].as_str()).collect();
    // "cat" is in no line: the question about the ginger beast shares "call", and the
    // answer after it, which shares no word with the query, ranks by it.
    let answer = results.iter().position(|r| {
        r["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("That's Mustard"))
    });
    assert!(answer.is_some_and(|rank| rank < 2), "{texts:?}");
    let hit = &results[answer.unwrap()];
    assert_eq!(hit["seq"], 2);
    let context: Vec<(u64, &str)> = hit["context"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["seq"].as_u64().unwrap(),
                line["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(context, vec![(1, "character"), (3, "character")]);
    assert_eq!(hit["context"][0]["conversation_id"], "c-old");
    assert!(hit.get("evidence").is_none());

    // Stemmed: "visiting" finds "visit"; every line by its exact words.
    let visiting = search(&app, "q=visiting+Riverton&kinds=message").await;
    assert_eq!(visiting[0]["seq"], 4, "{visiting:?}");
    for exact in ["Safe travels, then.", "Fair enough."] {
        let found = search(
            &app,
            &format!("q={}&kinds=message", urlencoding::encode(exact)),
        )
        .await;
        assert!(
            found
                .iter()
                .any(|r| r["text"].as_str().unwrap().starts_with(exact)),
            "{exact}: {found:?}"
        );
    }
    // Stop words alone find nothing.
    assert!(search(&app, "q=the+and+of").await.is_empty());
}

#[tokio::test]
async fn the_characters_own_name_finds_nothing_but_asked_alone_finds_them_named() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    let lines = [
        ("player", "Good evening, Mara."),
        ("character", "Evening. Sit anywhere."),
        ("player", "Is the stew any good tonight?"),
        ("character", "Mutton stew, best in Fenford."),
        ("player", "Then I'll have a bowl, Mara."),
    ];
    let messages: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (role, content))| {
            json!({"client_id": format!("m-{i}"), "role": role, "content": content,
                   "created_at": format!("2025-05-0{}T10:00:00Z", i + 1)})
        })
        .collect();
    let response = app
        .request(Method::POST, "/conversations/c-stew/import")
        .json(&json!({"player_id": "p-1", "character_id": "mara", "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seqs = |results: &[Value]| -> Vec<u64> {
        results.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
    };
    // Every line is said by Mara or to her: "stew" alone tells them apart, and the
    // greeting that names her is no answer.
    let found = search(&app, "q=What+does+Mara+think+of+the+stew%3F&kinds=message").await;
    let mut top = seqs(&found)[..2].to_vec();
    top.sort();
    assert_eq!(top, vec![3, 4], "{found:?}");
    assert!(!seqs(&found).contains(&1), "{found:?}");
    // Her name alone is what was asked for.
    let named = search(&app, "q=Mara&kinds=message").await;
    let mut named_seqs = seqs(&named)[..2].to_vec();
    named_seqs.sort();
    assert_eq!(named_seqs, vec![1, 5], "{named:?}");
}

#[tokio::test]
async fn a_fact_comes_with_the_lines_it_was_learned_from() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    app.provider.enqueue_for(
        "fact_extraction",
        [extraction(json!({"facts": [
            {"text": "The player's sister lives in Riverton", "importance": 6}
        ]}))],
    );
    for line in [
        "Nice weather",
        "My sister lives in Riverton, by the mill",
        "I miss her",
        "Anyway",
        "Another ale please",
    ] {
        app.say("c-1", "p-1", "mara", line).await;
    }
    eventually("the fact is learned", || async {
        jobs_left(&app).await == 0
    })
    .await;
    let results = search(&app, "q=Where+does+the+sister+live%3F&kinds=fact").await;
    let fact = &results[0];
    assert_eq!(
        fact["text"], "The player's sister lives in Riverton",
        "{results:?}"
    );
    let evidence = fact["evidence"].as_array().unwrap();
    assert_eq!(
        evidence[0]["text"], "My sister lives in Riverton, by the mill",
        "{evidence:?}"
    );
    assert_eq!(evidence[0]["role"], "player");
    assert!(fact.get("context").is_none());
}

#[tokio::test]
async fn older_lines_reach_the_prompt_by_words_dated_and_go_with_an_erasure() {
    let app = TestApp::spawn_with(&with_quick_jobs(&[])).await;
    app.create_mara("mara").await;
    imported(&app).await;
    app.say("c-new", "p-1", "mara", "Is Mustard still biting people?")
        .await;
    let system = app.provider.last_request().messages()[0].1.clone();
    let notes = system
        .split("Earlier lines that bear on this: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no older lines in {system}"));
    assert!(
        notes.contains("The player once said (2 May 2025): That's Mustard"),
        "{notes}"
    );
    assert!(
        notes.contains("You once said (1 May 2025): Evening. What do you call"),
        "the question before the answer comes with it: {notes}"
    );

    let status = app.delete("/players/p-1").await;
    assert!(status.is_success(), "{status}");
    assert!(
        search(&app, "q=Mustard").await.is_empty(),
        "erased, found nowhere"
    );
}
