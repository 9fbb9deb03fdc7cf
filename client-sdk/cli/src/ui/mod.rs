//! `parley ui`: a local process holding this device's sealed store (through the
//! [`Messenger`](parley_sdk::messenger::Messenger)) that serves the web app, embedded in the
//! binary, and the small JSON API of `specs/local-ui-api.md` on 127.0.0.1 only,
//! protected by a per-launch secret. Private keys never reach the browser, and the
//! browser never talks to the homeserver.

pub mod api;
mod assets;
mod auth;
mod delivery;
mod error;
mod events;
mod routes;
mod server;
#[cfg(test)]
mod typescript;
mod views;

pub use server::{UiOptions, run};
