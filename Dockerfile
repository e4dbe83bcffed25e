# syntax=docker/dockerfile:1

# ---- build -------------------------------------------------------------------------
# The slim Rust image already has gcc and libc6-dev. That is all the C toolchain the
# dependency tree needs: TLS is rustls, and aws-lc-sys builds through the cc crate with
# its pregenerated bindings on x86_64 and aarch64 Linux (no cmake, clang or OpenSSL).
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Not built, but Cargo.toml names the test and bench targets and cargo checks they exist.
COPY tests ./tests
COPY benches ./benches
# sqlx::migrate! embeds the migrations into the binary at compile time.
COPY migrations ./migrations

# BuildKit cache mounts keep downloaded crates and compiled dependencies between
# builds, so a change under src/ recompiles only this crate. target/ is a cache mount,
# so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked --bin npc-dialogue \
 && install -D -m 0755 target/release/npc-dialogue /out/npc-dialogue

# ---- runtime -----------------------------------------------------------------------
# Same Debian release as the builder, so the binary's glibc matches.
FROM debian:bookworm-slim

# ca-certificates: the LLM provider over HTTPS. curl: the HEALTHCHECK below.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 npc \
 && useradd --uid 10001 --gid npc --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin npc

COPY --from=builder /out/npc-dialogue /usr/local/bin/npc-dialogue

ENV BIND_ADDR=0.0.0.0:8080 \
    LOG_FORMAT=json

EXPOSE 8080

# Assumes the port of BIND_ADDR above; change both together. Any non-zero exit of
# curl counts as unhealthy. Start-up waits up to 30 s for the database before giving
# up, hence the start period.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "http://127.0.0.1:8080/healthz"]

USER 10001:10001

# The service handles SIGTERM itself (graceful shutdown), also as PID 1.
ENTRYPOINT ["/usr/local/bin/npc-dialogue"]
