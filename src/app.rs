//! Start-up and shutdown: database, state, router, listener.

use crate::{
    config::{Config, HttpLimits},
    http,
    service::{Services, housekeeping, jobs, memory, world::gossip},
    store,
};
use anyhow::Context;
use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use std::{future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

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
        // The tokenizer's tables take a while to build (most of a second in a debug build):
        // here, not in the first turns, which would block the runtime's threads meanwhile
        // and see their short database waits run out.
        tokio::task::spawn_blocking(|| crate::llm::tokens::count(""))
            .await
            .context("preparing the tokenizer")?;
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
        let mut workers = jobs::spawn_workers(
            self.services.clone(),
            memory::job_handlers(),
            workers_stop.clone(),
        );
        // Gossip is background work: a replica that runs no workers spreads none either.
        let gossip = (self.services.config.jobs.workers > 0)
            .then(|| gossip::spawn(self.services.clone(), workers_stop.clone()));
        let housekeeping = housekeeping::spawn(self.services.clone(), workers_stop);
        serve(
            self.listener,
            self.router,
            &self.services.config.http,
            shutdown,
        )
        .await;
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
        if let Some(gossip) = gossip {
            let _ = gossip.await;
        }
        self.services.pool.close().await;
        self.services.readiness.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// HTTP/1.1 on `listener` until `shutdown` resolves; then no new connection is accepted
/// and those open finish the requests they serve. hyper is driven directly because
/// `axum::serve` cannot set the header-read timeout: without it, a client that sends
/// half a request head and stalls holds its connection for ever.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        // What `into_make_service_with_connect_info` did: the peer address for the rate
        // limit's key.
        let service = service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client gone, a head too slow or malformed: the connection's own business.
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection closed with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// As `axum::serve` does: a connection that failed before it was accepted is the
/// client's problem; anything else (out of file descriptors) is ours, and accepting again
/// at once would spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
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
