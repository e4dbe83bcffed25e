//! Reads the configuration, starts telemetry, builds and runs the service.

use npc_dialogue::{app, config::Config, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            // Telemetry is configured by the configuration that just failed.
            eprintln!("npc-dialogue: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let result = async {
        app::Application::build(config)
            .await?
            .run_until_stopped(app::shutdown_signal())
            .await
    }
    .await;
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
