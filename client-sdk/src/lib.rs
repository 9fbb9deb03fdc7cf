//! The Parley client SDK: a typed async client for a homeserver's client API, and the
//! logic of the `parley` command-line client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_sdk::Error> {
//! use parley_sdk::{Client, Trust};
//! use parley_specs::client_api::LoginRequest;
//!
//! let mut client = Client::new("https://localhost:8443".parse()?, Trust::CaFile(".parley-dev/tls/ca.pem".into()))?;
//! let session = client
//!     .login(&LoginRequest { username: "alice".into(), password: "a long password".into(), device_name: None })
//!     .await?;
//! client.set_access_token(session.access_token);
//! println!("{}", client.whoami().await?.user_id);
//! # Ok(()) }
//! ```

pub mod cli;
mod client;
mod error;
mod tls;

pub use client::Client;
pub use error::Error;
pub use parley_specs as specs;
pub use tls::Trust;
