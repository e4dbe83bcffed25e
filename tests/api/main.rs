//! Black-box tests: the real server on port 0, real MariaDB (a fresh database per test),
//! and a mock OpenAI-compatible provider over a real socket.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

mod databases;
mod helpers;
mod mock_provider;
mod own_mariadb;

mod auth;
mod billing;
mod bounds;
mod budgets;
mod chaos;
mod characters;
mod cli;
mod contract;
mod erasure;
mod errors;
mod history;
mod idempotency;
mod import;
mod inbox;
mod jobs;
mod logs;
mod memory;
mod metrics;
mod mood;
mod openapi;
mod operations;
mod paid_call;
mod recall;

mod replicas;
mod resilience;
mod semantic;
mod streaming;
mod studio;
mod transactions;
mod turns;
mod usage;
mod world;
