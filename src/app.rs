//! Start-up and shutdown: database, state, router, listener.

use crate::{
    config::Config,
    http,
    service::{Services, housekeeping, memory::jobs},
    store,
};
use anyhow::Context;
use axum::Router;
use std::{future::Future, net::SocketAddr, sync::Arc};
use tokio::{net::TcpListener, sync::watch};

pub struct Application {
    listener: TcpListener,
    router: Router,
    services: Arc<Services>,
}

impl Application {
    /// Connects (creating the database and applying migrations), binds `BIND_ADDR`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        if !config.auth_enabled() {
            tracing::warn!(
                "NO API KEYS CONFIGURED: every route is open to anyone who can reach {}. \
                 Set GAME_API_KEYS (and READONLY_API_KEYS) in production.",
                config.bind_addr
            );
        }
        if config.llm.api_key.is_none() {
            tracing::warn!(
                "LLM_API_KEY is not set: every reply will be a fallback line (llm_not_configured)"
            );
        }
        tracing::info!(?config, "starting");
        // Before anything is recorded: samples recorded with no recorder are lost.
        crate::metrics::install();
        let config = Arc::new(config);
        let pool =
            store::connect_and_migrate(&config.database_url, store::CONNECT_PATIENCE).await?;
        let services = Arc::new(Services::build(config.clone(), pool).await?);
        let router = http::router(services.clone())?;
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding BIND_ADDR {}", config.bind_addr))?;
        Ok(Self {
            listener,
            router,
            services,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight
    /// requests finish before returning.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        tracing::info!(%address, "listening");
        let (stop_workers, workers_stop) = watch::channel(false);
        let mut workers = jobs::spawn_workers(self.services.clone(), workers_stop.clone());
        let housekeeping = housekeeping::spawn(self.services.clone(), workers_stop);
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        // In-flight requests are done. Turns whose client hung up may still run: they
        // are paid for, so they get to store their reply (within the grace period).
        let turns = &self.services.turns;
        turns.close();
        if tokio::time::timeout(self.services.config.shutdown_grace, turns.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = turns.len(),
                "turns still running after SHUTDOWN_GRACE_MS; stopping without them"
            );
        }
        // Workers hand back what they hold and stop.
        let _ = stop_workers.send(true);
        while workers.join_next().await.is_some() {}
        let _ = housekeeping.await;
        self.services.pool.close().await;
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
