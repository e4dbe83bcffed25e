//! npc-dialogue: non-player characters that answer in character, remember players and
//! keep LLM spending under control.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod service;
pub mod store;
pub mod telemetry;
