//! Black-box tests of the client API: real homeservers over HTTPS on real PostgreSQL.
//! One test binary, so the throwaway PostgreSQL cluster starts once per run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod admin;
mod backup;
mod client_checks;
mod dashboard;
mod database_tls;
mod deploy;
mod dev_federation;
mod device_keys;
mod errors;
mod federated_groups;
mod federated_processes;
mod federation;
mod files;
mod groups;
mod helpers;
mod history_backup;
mod key_packages;
mod message_actions;
mod messenger;
mod mls_interop;
mod new_device;
mod ops;
mod restart;
mod retention;
mod revocation;
mod roles;
mod routes;
mod scale_out;
mod second_factor;
mod shutdown;
mod transparency;
mod ui;
