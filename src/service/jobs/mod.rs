//! Background work as its own room: scheduled with the turn or import that causes it,
//! done by workers in every replica after the answer, never on the player's critical
//! path. `policy` says what is due, `runner` claims, runs and settles jobs, `queue` counts
//! them. The capabilities that do the work (summaries, facts, embeddings) hand the runner
//! their handlers at start-up (`Handlers`): this room imports none of them.

pub mod policy;
pub mod queue;
pub mod runner;

pub use policy::{
    Arrival, IMPORT_EXTRACTION_FACTOR, JobKind, Owner, Policy, Progress, due, due_after,
    next_batch, retry_delay, schedule_for_new_messages,
};
pub use queue::{queue_sample, stats};
pub use runner::{Handler, Handlers, JobDone, spawn_workers};
