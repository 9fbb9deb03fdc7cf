//! Test harness: real PostgreSQL, real homeservers over real HTTPS on loopback.
//!
//! A throwaway PostgreSQL cluster is started once per test process (or `DATABASE_URL`
//! is used when set); every test gets its own database and its own homeserver on a
//! free port, so tests run in parallel without seeing each other. `process` runs the
//! homeserver binary instead, for tests that kill it. `fake_peer` is a federation peer
//! that misbehaves on purpose; `fake_client_api` a client API behind which a hub accepted
//! what a real one refuses; `patroni` a PostgreSQL primary with a synchronous standby under
//! Patroni, for failover tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod admin;
pub mod balancer;
pub mod clap_help;
pub mod fake_client_api;
pub mod fake_peer;
pub mod mls;
pub mod patroni;
pub mod postgres;
pub mod process;
pub mod server;
pub mod signing_proxy;
pub mod tools;
pub mod totp;
pub mod transparency;

pub use server::{TestServer, wait_until};
