//! The `npc-dialogue` binary: parses the command line and hands over to `cli`.

use clap::Parser;
use npc_dialogue::cli::{self, Cli};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Cli::parse()).await
}
