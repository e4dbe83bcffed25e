//! The character's next line: from the LLM when the quota, the budget and the circuit
//! allow it (primary model, then `LLM_FALLBACK_MODEL`), else a canned line that says why.

use super::{
    Services,
    characters::Character,
    circuit::Admission,
    context::{self, PastMessage, PromptInput},
    fallback::{self, FallbackReason},
    memory,
    spend::{self, Refusal},
    turn::Turn,
    usage::{CallContext, CallCost},
};
use crate::{
    domain::Affinity,
    error::ApiError,
    llm::{
        ChatRequest, Completion, Purpose,
        retry::{self, RetryPolicy},
        tokens,
    },
    metrics,
    store::messages::MessageRow,
};
use tokio::time::Instant;

/// Where a streamed turn's text goes as it arrives (to the game's SSE stream). Sends
/// that fail (the game hung up) are ignored: the turn completes all the same.
pub type DeltaSink = tokio::sync::mpsc::UnboundedSender<String>;

/// The character's line before it is stored.
#[derive(Debug, Clone)]
pub struct Reply {
    pub content: String,
    pub fallback_reason: Option<FallbackReason>,
    pub cost: CallCost,
    /// Provider attempts made for it, over all models.
    pub attempts: u32,
}

/// The models to try, in order. In the budget warning band the cheaper fallback model
/// replaces the primary; otherwise it backs the primary up.
pub fn model_plan(primary: &str, fallback_model: Option<&str>, warning: bool) -> Vec<String> {
    match fallback_model {
        Some(cheaper) if warning => vec![cheaper.to_owned()],
        Some(cheaper) if cheaper != primary => vec![primary.to_owned(), cheaper.to_owned()],
        _ => vec![primary.to_owned()],
    }
}

/// What the character knows of the conversation and the player before answering.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub affinity: Affinity,
    /// From the last fact extraction: label and intensity.
    pub mood: Option<(&'a str, f64)>,
    /// The running summary of the messages older than `recent`.
    pub summary: Option<&'a str>,
    /// The last messages, oldest first.
    pub recent: &'a [MessageRow],
}

#[tracing::instrument(skip_all)]
pub async fn compose(
    services: &Services,
    turn: &Turn,
    character: &Character,
    situation: Situation<'_>,
    deltas: Option<&DeltaSink>,
) -> Result<Reply, ApiError> {
    let Situation {
        affinity,
        mood,
        summary,
        recent,
    } = situation;
    let canned = |reason: FallbackReason, cost: CallCost, attempts: u32| {
        let previous = recent
            .iter()
            .rev()
            .find(|message| message.source.as_deref() == Some("fallback"))
            .map(|message| message.content.as_str());
        tracing::info!(reason = reason.as_str(), "answering with a fallback line");
        metrics::fallback(reason.as_str());
        let content =
            fallback::choose_line(character.fallback_lines.as_ref(), affinity.tier(), previous);
        // Streamed, a canned line is one delta.
        if let Some(sink) = deltas {
            let _ = sink.send(content.clone());
        }
        Reply {
            content,
            fallback_reason: Some(reason),
            cost,
            attempts,
        }
    };
    if !services.llm.is_configured() {
        return Ok(canned(
            FallbackReason::LlmNotConfigured,
            CallCost::default(),
            0,
        ));
    }

    let config = &services.config;
    let past: Vec<PastMessage<'_>> = recent
        .iter()
        .map(|message| PastMessage {
            from_player: message.role == "player",
            content: &message.content,
        })
        .collect();
    let memories = memory::recall(
        &services.pool,
        turn.player_id.as_str(),
        turn.character_id.as_str(),
        turn.content.as_str(),
        config.memory_facts_in_prompt,
    )
    .await?;
    let prompt = context::build_prompt(&PromptInput {
        character_name: &character.name,
        persona: &character.persona,
        affinity,
        game_context: turn.context.as_ref(),
        memories: &memories,
        summary,
        mood,
        recent: &past,
        current: turn.content.as_str(),
    });
    let prompt_tokens = tokens::count_prompt(&prompt);
    // The warning band only changes the plan when there is a cheaper model to switch
    // to; otherwise the reservation below reads the month anyway.
    let warning = match &config.llm.fallback_model {
        Some(_) => spend::status(&services.pool, config, turn.player_id.as_str())
            .await?
            .warning(),
        None => false,
    };
    let primary = character.model.as_deref().unwrap_or(&config.llm.model);
    let models = model_plan(primary, config.llm.fallback_model.as_deref(), warning);

    let deadline = Instant::now() + config.llm.deadline;
    let policy = RetryPolicy {
        base: config.llm.retry_base,
        max_retries: config.llm.max_retries,
        attempt_timeout: config.llm.timeout,
    };
    let mut quota_taken = false;
    let mut reason = FallbackReason::LlmError;
    let mut spent = CallCost::default();
    let mut attempted = 0;
    for model in &models {
        if services.circuits.admit(model) == Admission::Refused {
            reason = FallbackReason::CircuitOpen;
            continue;
        }
        let worst_case = services
            .usage
            .cost(model, prompt_tokens, config.llm.max_tokens);
        let reservation = match spend::reserve(
            &services.pool,
            config,
            turn.player_id.as_str(),
            !quota_taken,
            worst_case,
        )
        .await?
        {
            Ok(reservation) => reservation,
            // The quota counts turns: no other model can help.
            Err(Refusal::RateLimited) => {
                metrics::refusal("quota");
                return Ok(canned(FallbackReason::RateLimited, spent, attempted));
            }
            // A cheaper model further down the plan may still fit.
            Err(Refusal::BudgetExceeded) => {
                metrics::refusal("budget");
                reason = FallbackReason::BudgetExceeded;
                continue;
            }
        };
        quota_taken = true;

        let request = ChatRequest {
            model: model.clone(),
            messages: prompt.clone(),
            max_tokens: config.llm.max_tokens,
            user: turn.player_id.as_str().to_owned(),
            purpose: Purpose::Conversation,
            json_object: false,
        };
        let call = CallContext {
            player_id: turn.player_id.as_str(),
            conversation_id: Some(turn.conversation_id.as_str()),
            character_id: Some(turn.character_id.as_str()),
            purpose: Purpose::Conversation,
            model,
        };
        let mut attempts = policy.begin(deadline);
        let outcome = loop {
            let result: Result<Completion, _> = match deltas {
                Some(sink) => {
                    let mut forward = |text: &str| {
                        let _ = sink.send(text.to_owned());
                    };
                    services
                        .llm
                        .chat_streaming(&request, attempts.timeout(), &mut forward)
                        .await
                }
                None => services.llm.chat(&request, attempts.timeout()).await,
            };
            // The reservation is settled with the answer that ends the chain.
            let settle = result.is_ok().then_some(reservation.budget);
            match services
                .usage
                .record(&services.pool, &call, &result, settle)
                .await
            {
                Ok(cost) => spent.add(cost),
                Err(error) => {
                    spend::release(&services.pool, reservation, true).await?;
                    return Err(ApiError::Internal(error));
                }
            }
            match result {
                Ok(completion) => break Ok(completion),
                Err(error) => match attempts.after_failure(error, retry::random_unit()) {
                    Ok(wait) => {
                        metrics::retry(Purpose::Conversation.as_str(), model);
                        tracing::info!(
                            model,
                            attempts = attempts.made(),
                            ?wait,
                            "LLM call failed; retrying"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    Err(failure) => break Err(failure),
                },
            }
        };
        match outcome {
            Ok(completion) => {
                services.circuits.record_success(model);
                return Ok(Reply {
                    content: completion.content,
                    fallback_reason: None,
                    cost: spent,
                    attempts: attempted + attempts.made() + 1,
                });
            }
            Err(failure) => {
                attempted += failure.attempts;
                spend::release(&services.pool, reservation, true).await?;
                if failure.exhausted {
                    services.circuits.record_failure(model);
                } else {
                    // It answered, if only to refuse: the provider is reachable.
                    services.circuits.record_success(model);
                }
                tracing::warn!(
                    model,
                    attempts = failure.attempts,
                    error = %failure.last_error,
                    "LLM call failed"
                );
                reason = FallbackReason::LlmError;
            }
        }
    }
    Ok(canned(reason, spent, attempted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_model_backs_up_the_primary_and_replaces_it_in_the_warning_band() {
        assert_eq!(model_plan("big", None, false), vec!["big"]);
        assert_eq!(model_plan("big", None, true), vec!["big"]);
        assert_eq!(
            model_plan("big", Some("small"), false),
            vec!["big", "small"]
        );
        assert_eq!(model_plan("big", Some("small"), true), vec!["small"]);
        assert_eq!(model_plan("small", Some("small"), false), vec!["small"]);
    }
}
