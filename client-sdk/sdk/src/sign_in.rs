//! Signing a profile in: registering an account or logging in to one as a new device,
//! and saving the session in the profile. The one flow behind `parley register`,
//! `parley login` and the web app's sign-in.

use std::path::PathBuf;

use parley_specs::client_api::{LoginRequest, LoginResponse, RegisterRequest};
use url::Url;

use crate::profile::{Profile, ProfileError, Session, trust};
use crate::{Client, Error};

/// Which certificate authorities to trust for the homeserver; the session remembers it.
#[derive(Debug, Clone)]
pub enum ServerCa {
    /// The operating system's roots (a server with a public WebPKI certificate).
    SystemRoots,
    /// A PEM file of CA certificates on this computer (give an absolute path: the
    /// session keeps it as given).
    File(PathBuf),
    /// A CA certificate (PEM), saved in the profile.
    Pem(String),
}

/// Why signing in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The server address or CA is not usable, the server cannot be reached, or it
    /// refused (wrong password, username taken, ...).
    #[error(transparent)]
    Api(#[from] Error),
    /// The CA certificate could not be saved in the profile.
    #[error(transparent)]
    CaNotSaved(ProfileError),
    /// The server signed the device in, but its session could not be saved: the device
    /// is on the account without anyone holding its token.
    #[error("logged in, but the session could not be saved: {0}")]
    SessionNotSaved(ProfileError),
}

/// A sign-in under way: the server and CA are settled (and checked, before any password
/// is asked for); [`SignIn::register`] or [`SignIn::login`] finishes it.
pub struct SignIn<'a> {
    profile: &'a Profile,
    client: Client,
    ca_file: Option<PathBuf>,
}

impl Profile {
    /// Starts signing this profile in to `server`, trusting `ca` for its certificate.
    /// A PEM certificate is saved in the profile now.
    pub fn sign_in(&self, server: Url, ca: ServerCa) -> Result<SignIn<'_>, SignInError> {
        let ca_file = match ca {
            ServerCa::SystemRoots => None,
            ServerCa::File(path) => Some(path),
            ServerCa::Pem(pem) => Some(self.save_ca(&pem).map_err(SignInError::CaNotSaved)?),
        };
        let client = Client::new(server, trust(ca_file.as_deref()))?;
        Ok(SignIn {
            profile: self,
            client,
            ca_file,
        })
    }
}

impl SignIn<'_> {
    /// Creates the account with this profile as its first device; returns the saved session.
    pub async fn register(self, request: &RegisterRequest) -> Result<Session, SignInError> {
        let response = self.client.register(request).await?;
        self.save(response)
    }

    /// Logs this profile in as a new device of an existing account; returns the saved
    /// session.
    pub async fn login(self, request: &LoginRequest) -> Result<Session, SignInError> {
        let response = self.client.login(request).await?;
        self.save(response)
    }

    fn save(self, response: LoginResponse) -> Result<Session, SignInError> {
        let session = Session {
            server: self.client.base_url().clone(),
            ca_file: self.ca_file,
            user_id: response.user_id,
            device_id: response.device_id,
            access_token: response.access_token,
        };
        self.profile.save(&session).map_err(SignInError::SessionNotSaved)?;
        Ok(session)
    }
}
