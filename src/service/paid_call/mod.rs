//! The one paid LLM call, for every purpose (conversation, summarization, fact
//! extraction): the circuit asked first, the worst case reserved, the attempts made with
//! the one retry helper, every attempt that reached the provider recorded, the
//! reservation settled with the answer or released on every other path (a cancelled
//! call releases it from `Drop`), and the outcome told to the circuit.
//!
//! Callers add their differences on top: the turn chooses models in order and streams;
//! background work chooses its model and when to defer.

pub mod circuit;

use crate::{
    domain::Usd,
    llm::{ChatMessage, ChatRequest, Completion, LlmError, Purpose, retry::RetryPolicy, tokens},
    metrics,
    service::{
        Services,
        error::{ServiceError, ServiceResult},
        money::{
            Spent,
            ledger::{CallFor, Ledger, PendingUsage, Refusal, Reservation, Unrecorded},
        },
    },
};
use circuit::Admission;
use tokio::time::Instant;

/// Where a streamed call's text goes as it arrives (to the game's SSE stream). It must
/// not fail: a game that hung up is the sink's business, the call completes all the same.
pub type TextSink = dyn Fn(&str) + Send + Sync;

/// How the answer travels back from the provider.
#[derive(Clone, Copy)]
pub enum Delivery<'a> {
    Whole,
    /// Streamed, each piece forwarded to the sink as it arrives.
    Streamed(&'a TextSink),
}

/// One call as its caller describes it; `call` runs it against one model.
#[derive(Debug)]
pub struct PaidCall<'a> {
    pub who: CallFor<'a>,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    /// Ask for a JSON object (`response_format`).
    pub json_object: bool,
    /// Take one slot of the player's hourly quota (a turn's first reservation).
    pub take_quota: bool,
    /// An answer's usage is handed back unwritten (`CallOutcome::Answered::pending`), for
    /// the caller's own transaction; usage of every other attempt is written at once.
    pub defer_usage: bool,
    pub retries: RetryPolicy,
    /// All attempts end by then.
    pub deadline: Instant,
    /// Counted once: the worst case of every model is priced from it.
    prompt_tokens: u32,
}

/// Why no call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCalled {
    CircuitOpen,
    Refused(Refusal),
}

#[derive(Debug)]
pub enum CallOutcome {
    Answered {
        completion: Completion,
        spent: Spent,
        attempts: u32,
        /// With `defer_usage`: the answer's usage, for the caller to write.
        pending: Option<Box<PendingUsage>>,
    },
    NotCalled(NotCalled),
    Failed {
        error: LlmError,
        spent: Spent,
        attempts: u32,
    },
}

impl<'a> PaidCall<'a> {
    pub fn new(
        who: CallFor<'a>,
        messages: Vec<ChatMessage>,
        max_tokens: u32,
        retries: RetryPolicy,
        deadline: Instant,
    ) -> Self {
        let prompt_tokens = tokens::count_prompt(&messages);
        Self {
            who,
            messages,
            max_tokens,
            json_object: false,
            take_quota: false,
            defer_usage: false,
            retries,
            deadline,
            prompt_tokens,
        }
    }

    /// The worst case of the call against `model`: the prompt and `max_tokens` at its price.
    pub fn worst_case(&self, ledger: &Ledger, model: &str) -> Usd {
        ledger.cost(model, self.prompt_tokens, self.max_tokens)
    }

    fn request(&self, model: &str) -> ChatRequest {
        ChatRequest {
            model: model.to_owned(),
            messages: self.messages.clone(),
            max_tokens: self.max_tokens,
            user: self.who.player_id.as_str().to_owned(),
            purpose: self.who.purpose,
            json_object: self.json_object,
        }
    }
}

/// A paid attempt whose usage the database would not take: the caller answers 503
/// (the usage is spooled for replay, the reservation stays counted meanwhile).
pub fn unrecorded(error: Unrecorded) -> ServiceError {
    ServiceError::Unavailable(format!("{error}; retry shortly"))
}

impl Services {
    /// Makes the call against `model`, start to end. `Err` only when the database fails:
    /// a usage it could not record is spooled and the reservation kept (it expires
    /// counted); the provider's failures are a `Failed` outcome.
    #[tracing::instrument(skip_all, fields(model = model, purpose = call.who.purpose.as_str()))]
    pub async fn paid_call(
        &self,
        call: &PaidCall<'_>,
        model: &str,
        delivery: Delivery<'_>,
    ) -> ServiceResult<CallOutcome> {
        let admission = self.circuits.admit(model);
        if admission == Admission::Refused {
            return Ok(CallOutcome::NotCalled(NotCalled::CircuitOpen));
        }
        let worst_case = call.worst_case(&self.ledger, model);
        let reservation = match self
            .ledger
            .reserve(&call.who, call.take_quota, worst_case)
            .await
        {
            Ok(Ok(reservation)) => reservation,
            Ok(Err(refusal)) => {
                self.circuits.not_called(model, admission);
                return Ok(CallOutcome::NotCalled(NotCalled::Refused(refusal)));
            }
            Err(error) => {
                self.circuits.not_called(model, admission);
                return Err(error);
            }
        };
        self.call_reserved(call, model, reservation, delivery).await
    }

    /// The call against `model` whose worst case is already reserved (and the circuit
    /// asked): a turn reserves its first model in the transaction that begins it.
    #[tracing::instrument(skip_all, fields(model = model, purpose = call.who.purpose.as_str()))]
    pub async fn call_reserved(
        &self,
        call: &PaidCall<'_>,
        model: &str,
        reservation: Reservation,
        delivery: Delivery<'_>,
    ) -> ServiceResult<CallOutcome> {
        let request = call.request(model);
        let mut attempts = call.retries.begin(call.deadline);
        let mut spent = Spent::default();
        loop {
            let result = match delivery {
                Delivery::Whole => self.llm.chat(&request, attempts.timeout()).await,
                Delivery::Streamed(sink) => {
                    let mut forward = |text: &str| sink(text);
                    self.llm
                        .chat_streaming(
                            &request,
                            attempts.timeout(),
                            attempts.deadline(),
                            &mut forward,
                        )
                        .await
                }
            };
            let error = match result {
                Ok(completion) => {
                    self.circuits.record_success(model);
                    let pending = if call.defer_usage {
                        let (cost, pending) =
                            self.ledger
                                .close_later(reservation, &call.who, model, &completion);
                        spent.add(cost);
                        Some(Box::new(pending))
                    } else {
                        let closed = self
                            .ledger
                            .close(reservation, &call.who, model, Ok(&completion))
                            .await;
                        spent.add(closed.map_err(unrecorded)?);
                        None
                    };
                    return Ok(CallOutcome::Answered {
                        completion,
                        spent,
                        attempts: attempts.made() + 1,
                        pending,
                    });
                }
                Err(error) => error,
            };
            let unit = crate::llm::retry::random_unit();
            match attempts.after_failure(error.clone(), unit) {
                Ok(wait) => {
                    match self.ledger.record_retried(&call.who, model, &error).await {
                        Ok(cost) => spent.add(cost),
                        Err(failure) => {
                            // The call stops here; its reservation stays counted until
                            // it expires.
                            reservation.keep();
                            return Err(unrecorded(failure));
                        }
                    }
                    metrics::retry(call.who.purpose.as_str(), model);
                    tracing::info!(
                        model,
                        attempts = attempts.made(),
                        ?wait,
                        "LLM call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(failure) => {
                    if !failure.exhausted {
                        // It answered, if only to refuse: the provider is reachable.
                        self.circuits.record_success(model);
                    } else if call.who.purpose == Purpose::Conversation {
                        self.circuits.record_failure(model);
                    } else {
                        self.circuits.record_background_failure(model);
                    }
                    tracing::warn!(
                        model,
                        attempts = failure.attempts,
                        error = %failure.last_error,
                        "LLM call failed"
                    );
                    let closed = self
                        .ledger
                        .close(reservation, &call.who, model, Err(&failure.last_error))
                        .await;
                    spent.add(closed.map_err(unrecorded)?);
                    return Ok(CallOutcome::Failed {
                        error: failure.last_error,
                        spent,
                        attempts: failure.attempts,
                    });
                }
            }
        }
    }
}
