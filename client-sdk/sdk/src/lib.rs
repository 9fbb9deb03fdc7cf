//! The Parley client SDK: a typed async client for a homeserver's client API, MLS
//! messaging with an encrypted local store ([`messenger`]), and the profiles a device's
//! login and store live in, with the one sign-in flow ([`Profile::sign_in`]). The
//! `parley` command-line client and `parley ui` (crate `parley-cli`) are built on it.
//!
//! Requests, paths and error codes come from the shared contract crate
//! [`parley_specs`] (re-exported as [`specs`]), so the SDK and the homeserver cannot
//! disagree about them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_sdk::Error> {
//! use parley_sdk::{Client, Trust};
//! use parley_sdk::specs::client_api::LoginRequest;
//!
//! let trust = Trust::CaFile(".parley-dev/tls/ca.pem".into());
//! let mut client = Client::new("https://localhost:8443".parse()?, trust)?;
//! let session = client
//!     .login(&LoginRequest {
//!         username: "alice".into(),
//!         password: "a long password".into(),
//!         device_name: Some("my bot".into()),
//!         signature_key: None,
//!         second_factor: None,
//!     })
//!     .await?;
//! client.set_session(&session);
//! println!("{}", client.whoami().await?.user_id);
//! # Ok(()) }
//! ```
//!
//! Calls to the homeserver fail with one type, [`Error`]; a refusal by the server carries
//! its stable [`ErrorCode`](parley_specs::ErrorCode), available through [`Error::code`].
//! Profiles' files fail with [`ProfileError`], signing in with [`SignInError`].

pub mod backup;
mod client;
mod error;
pub mod files;
pub mod messenger;
mod profile;
pub mod sealed;
mod sign_in;
mod stream;
mod tls;

pub use client::{
    Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_POLICY, RetryPolicy,
    retry_safe,
};
pub use error::Error;
pub use parley_specs as specs;
pub use profile::{Profile, ProfileError, Session};
pub use sign_in::{ServerCa, SignIn, SignInError};
pub use stream::InboxStream;
pub use tls::Trust;
