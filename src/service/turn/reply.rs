//! The character's next line: from the LLM when the quota, the budget and the circuit
//! allow it (the primary model, then `LLM_FALLBACK_MODEL`), else a canned line that says
//! why. Each model is one paid call (`service::paid_call`); this module only chooses
//! the models, builds the prompt and falls back.

use super::{
    fallback,
    input::Turn,
    prompt::{self, PastMessage, PromptInput},
};
use crate::{
    domain::{Affinity, FallbackReason, Role, Source},
    llm::{Purpose, retry::RetryPolicy},
    metrics,
    service::memory::recall::{self, Recalled},
    service::{
        ServiceResult, Services,
        characters::Character,
        money::{
            Spent,
            ledger::{CallFor, PendingUsage, Refusal, Reservation},
        },
        paid_call::{CallOutcome, Delivery, NotCalled, PaidCall, TextSink},
    },
    store::messages::MessageRow,
};
use tokio::time::Instant;

/// The character's line before it is stored.
#[derive(Debug)]
pub struct Reply {
    pub content: String,
    pub fallback_reason: Option<FallbackReason>,
    /// Cut short (deadline or byte cap); what was said is kept.
    pub truncated: bool,
    pub spent: Spent,
    /// Provider attempts made for it, over all models.
    pub attempts: u32,
    /// From the first LLM call (its reservation included) to the end of the reply:
    /// retries, their waits and the fallback model included; zero when no call was made.
    pub llm_time: std::time::Duration,
    /// The answer's usage, for the transaction that stores the turn to write.
    pub pending: Option<Box<PendingUsage>>,
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
    /// The player's erasure count when the turn began: an erasure since fences the call.
    pub generation: u32,
    pub affinity: Affinity,
    /// From the last fact extraction: label and intensity.
    pub mood: Option<(&'a str, f64)>,
    /// The running summary of the messages older than `since_summary`.
    pub summary: Option<&'a str>,
    /// Messages the summary does not cover yet and the window no longer holds, oldest
    /// first: between the two, so that none is in no prompt.
    pub since_summary: &'a [MessageRow],
    /// The last messages, oldest first.
    pub recent: &'a [MessageRow],
}

/// The fallback reason a call that was not made gives.
fn reason(not_called: NotCalled) -> FallbackReason {
    match not_called {
        NotCalled::CircuitOpen => FallbackReason::CircuitOpen,
        NotCalled::Refused(Refusal::RateLimited) => FallbackReason::RateLimited,
        NotCalled::Refused(Refusal::BudgetExceeded) => FallbackReason::BudgetExceeded,
    }
}

/// The turn's call as the transaction that begins the turn left it: the prompt, the
/// models in order, and what became of the first.
#[derive(Debug)]
pub struct Planned<'a> {
    pub call: PaidCall<'a>,
    pub models: Vec<String>,
    pub first: FirstModel,
}

/// The first model's call, decided with the turn's reads.
#[derive(Debug)]
pub enum FirstModel {
    /// Its worst case is reserved (and its quota slot taken): call it.
    Reserved(Reservation),
    NotCalled(NotCalled),
}

/// The turn's call, before any model is chosen: the prompt (persona and situation, what
/// the character remembers, the recent window) and its terms. Its answer's usage is left
/// to the transaction that stores the turn.
pub fn plan_call<'t>(
    services: &Services,
    turn: &'t Turn,
    character: &Character,
    situation: Situation<'_>,
    recalled: &Recalled,
) -> PaidCall<'t> {
    let config = &services.config;
    fn past(message: &MessageRow) -> PastMessage<'_> {
        PastMessage {
            from_player: message.role == Role::Player,
            content: &message.content,
            said_at: None,
        }
    }
    fn dated(message: &MessageRow) -> PastMessage<'_> {
        PastMessage {
            said_at: Some(message.created_at),
            ..past(message)
        }
    }
    let recent: Vec<PastMessage<'_>> = situation.recent.iter().map(past).collect();
    let since_summary: Vec<PastMessage<'_>> = situation.since_summary.iter().map(past).collect();
    let older: Vec<PastMessage<'_>> = recalled.messages.iter().map(dated).collect();
    let memories: Vec<String> = recalled.facts.iter().map(recall::worded).collect();
    let prompt = prompt::build_prompt(&PromptInput {
        character_name: &character.name,
        persona: &character.persona,
        affinity: situation.affinity,
        game_context: turn.context.as_ref(),
        memories: &memories,
        lore: &recalled.lore,
        older: &older,
        summary: situation.summary,
        since_summary: &since_summary,
        mood: situation.mood,
        recent: &recent,
        current: turn.content.as_str(),
    });
    let retries = RetryPolicy {
        base: config.llm.retry_base,
        max_retries: config.llm.max_retries,
        attempt_timeout: config.llm.timeout,
    };
    let who = CallFor {
        player_id: &turn.player_id,
        generation: situation.generation,
        conversation_id: Some(&turn.conversation_id),
        character_id: Some(&turn.character_id),
        purpose: Purpose::Conversation,
    };
    // One deadline for all models: a turn's whole LLM work.
    let mut call = PaidCall::new(
        who,
        prompt,
        config.llm.max_tokens,
        retries,
        Instant::now() + config.llm.deadline,
    );
    // The quota counts turns: the first reservation takes the slot for every model.
    call.take_quota = true;
    call.defer_usage = true;
    call
}

/// The models a turn tries, in order. In the budget warning band the cheaper fallback
/// model replaces the primary.
pub fn models(services: &Services, character: &Character, warning: bool) -> Vec<String> {
    let config = &services.config;
    let primary = character.model.as_deref().unwrap_or(&config.llm.model);
    model_plan(primary, config.llm.fallback_model.as_deref(), warning)
}

/// The reply: from the models of `planned` in order, else a canned line that says why
/// (`None`: no LLM is configured).
#[tracing::instrument(skip_all)]
pub async fn compose(
    services: &Services,
    character: &Character,
    situation: Situation<'_>,
    planned: Option<Planned<'_>>,
    deltas: Option<&TextSink>,
) -> ServiceResult<Reply> {
    let Some(Planned {
        mut call,
        models,
        first,
    }) = planned
    else {
        return Ok(canned(
            character,
            situation,
            deltas,
            FallbackReason::LlmNotConfigured,
            Spent::default(),
            0,
        ));
    };
    let delivery = deltas.map_or(Delivery::Whole, Delivery::Streamed);
    let (mut spent, mut attempts) = (Spent::default(), 0);
    // Set when a call reaches the provider: a call refused before it (quota, budget,
    // circuit) took no LLM time.
    let started = Instant::now();
    let mut called = false;
    let mut why = FallbackReason::LlmError;
    let mut first = Some(first);
    for model in &models {
        let outcome = match first.take() {
            Some(FirstModel::Reserved(reservation)) => {
                services
                    .call_reserved(&call, model, reservation, delivery)
                    .await?
            }
            Some(FirstModel::NotCalled(not_called)) => CallOutcome::NotCalled(not_called),
            None => services.paid_call(&call, model, delivery).await?,
        };
        match outcome {
            CallOutcome::Answered {
                completion,
                spent: cost,
                attempts: made,
                pending,
            } => {
                spent.add(cost);
                return Ok(Reply {
                    truncated: completion.truncated,
                    content: completion.content,
                    fallback_reason: None,
                    spent,
                    attempts: attempts + made,
                    llm_time: started.elapsed(),
                    pending,
                });
            }
            CallOutcome::Failed {
                spent: cost,
                attempts: made,
                ..
            } => {
                spent.add(cost);
                attempts += made;
                called |= made > 0;
                call.take_quota = false;
                why = FallbackReason::LlmError;
            }
            // No other model can help: the quota counts turns.
            CallOutcome::NotCalled(refused @ NotCalled::Refused(Refusal::RateLimited)) => {
                metrics::refusal("quota");
                why = reason(refused);
                break;
            }
            // A cheaper model further down the plan may still fit or be closed.
            CallOutcome::NotCalled(not_called) => {
                if not_called == NotCalled::Refused(Refusal::BudgetExceeded) {
                    metrics::refusal("budget");
                }
                why = reason(not_called);
            }
        }
    }
    let mut reply = canned(character, situation, deltas, why, spent, attempts);
    if called {
        reply.llm_time = started.elapsed();
    }
    Ok(reply)
}

/// A canned line for the affinity tier, never the conversation's last canned line.
fn canned(
    character: &Character,
    situation: Situation<'_>,
    deltas: Option<&TextSink>,
    reason: FallbackReason,
    spent: Spent,
    attempts: u32,
) -> Reply {
    let previous = situation
        .recent
        .iter()
        .rev()
        .find(|message| message.source == Some(Source::Fallback))
        .map(|message| message.content.as_str());
    tracing::info!(reason = reason.as_str(), "answering with a fallback line");
    metrics::fallback(reason.as_str());
    let content = fallback::choose_line(
        character.fallback_lines.as_ref(),
        situation.affinity.tier(),
        previous,
    );
    // Streamed, a canned line is one delta.
    if let Some(sink) = deltas {
        sink(&content);
    }
    Reply {
        content,
        pending: None,
        truncated: false,
        fallback_reason: Some(reason),
        spent,
        attempts,
        llm_time: std::time::Duration::ZERO,
    }
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
