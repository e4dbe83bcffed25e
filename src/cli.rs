//! The command line: `npc-dialogue [serve|migrate|check-config|openapi]`.
//!
//! With no subcommand the binary serves, configured by the environment alone, so that
//! containers and the plain `npc-dialogue` keep working unchanged.

use crate::{app, config::Config, http, store, telemetry};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Conversations with non-player characters, driven by an LLM.
///
/// Configured by environment variables (and a `.env` file when present); see the
/// README's configuration table.
#[derive(Debug, Parser)]
#[command(name = "npc-dialogue", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default): migrate, then serve until SIGTERM or Ctrl-C.
    Serve,
    /// Create the database if it is missing, apply the migrations, and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted); exit 2 naming the variable
    /// when a value is invalid.
    CheckConfig,
    /// Print the OpenAPI document (the committed `openapi/openapi.json`).
    Openapi,
}

/// Exit code of a configuration refused at start-up (as before the CLI existed).
const INVALID_CONFIG: u8 = 2;

pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    if command == Command::Openapi {
        // No configuration needed: the document does not depend on it.
        return openapi();
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            // Telemetry is configured by the configuration that just failed.
            eprintln!("npc-dialogue: {error}");
            return ExitCode::from(INVALID_CONFIG);
        }
    };
    match command {
        Command::CheckConfig => check_config(&config),
        Command::Migrate => {
            telemetry::init(config.log_format);
            finish(migrate(config).await)
        }
        Command::Serve | Command::Openapi => {
            telemetry::init(config.log_format);
            finish(serve(config).await)
        }
    }
}

fn openapi() -> ExitCode {
    match http::openapi().to_pretty_json() {
        Ok(document) => {
            println!("{document}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("npc-dialogue: serializing the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: &Config) -> ExitCode {
    // Config's Debug redacts every secret (API keys, the provider key, the database URL).
    println!("{config:#?}");
    println!(
        "api keys: {}",
        if config.auth_enabled() {
            "configured"
        } else {
            "NONE: every route is open"
        }
    );
    println!(
        "llm: {}",
        if config.llm.api_key.is_some() {
            "configured"
        } else {
            "LLM_API_KEY unset: every reply is a fallback (llm_not_configured)"
        }
    );
    println!("configuration is valid");
    ExitCode::SUCCESS
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pool = store::connect_and_migrate(&config.database_url, store::CONNECT_PATIENCE).await?;
    pool.close().await;
    tracing::info!("database created if missing and migrations applied");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    app::Application::build(config)
        .await?
        .run_until_stopped(app::shutdown_signal())
        .await
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "npc-dialogue stopped on an error"
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve() -> Result<(), clap::Error> {
        assert_eq!(Cli::try_parse_from(["npc-dialogue"])?.command, None);
        assert_eq!(
            Cli::try_parse_from(["npc-dialogue", "check-config"])?.command,
            Some(Command::CheckConfig)
        );
        assert!(Cli::try_parse_from(["npc-dialogue", "frobnicate"]).is_err());
        Ok(())
    }
}
