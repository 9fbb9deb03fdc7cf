//! Signing a profile in: registering an account or logging in to one as a new device,
//! and saving the session in the profile. The one flow behind `parley register`,
//! `parley login` and the web app's sign-in.
//!
//! A device that will message signs in with a [`NewDevice`]: its MLS signature key is
//! made first and sent with the request, so its homeserver binds the key to the device
//! as it creates it; then the device's message store is created and its KeyPackages are
//! published at once, so that others can add the new device to groups right away.

use std::path::PathBuf;

use parley_specs::client_api::{LoginRequest, LoginResponse, RegisterRequest};
use url::Url;

use crate::messenger::{Messenger, MessengerError, NewDevice};
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
    /// The device is signed in and its session saved, but its message store could not be
    /// created or its KeyPackages not published (the next messaging operation publishes
    /// them when the store exists).
    #[error("signed in, but the device's messaging was not set up: {0}")]
    Messenger(MessengerError),
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

    /// [`SignIn::register`] for a device that messages: `device`'s signature key is bound
    /// to the new device by the server, its store is created, and its KeyPackages are
    /// published. Returns the saved session and the device's messenger.
    pub async fn register_with_messenger(
        self,
        request: &RegisterRequest,
        device: NewDevice,
    ) -> Result<(Session, Messenger), SignInError> {
        let request = RegisterRequest {
            signature_key: Some(device.signature_key().to_vec().into()),
            ..request.clone()
        };
        let response = self.client.register(&request).await?;
        let session = self.save(response)?;
        set_up_messaging(session, device).await
    }

    /// [`SignIn::login`] for a device that messages (see
    /// [`SignIn::register_with_messenger`]); the device also joins, by itself, every
    /// conversation its user is in.
    pub async fn login_with_messenger(
        self,
        request: &LoginRequest,
        device: NewDevice,
    ) -> Result<(Session, Messenger), SignInError> {
        let request = LoginRequest {
            signature_key: Some(device.signature_key().to_vec().into()),
            ..request.clone()
        };
        let response = self.client.login(&request).await?;
        let session = self.save(response)?;
        let (session, mut messenger) = set_up_messaging(session, device).await?;
        // A new device of an existing account joins its conversations now (the events
        // saying so come with the messenger's next sync).
        messenger
            .join_own_conversations()
            .await
            .map_err(SignInError::Messenger)?;
        Ok((session, messenger))
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

/// Creates the signed-in device's store and publishes its KeyPackages.
async fn set_up_messaging(session: Session, device: NewDevice) -> Result<(Session, Messenger), SignInError> {
    let client = session.client()?;
    let mut messenger = device
        .create(client, session.user_id.clone(), session.device_id.clone())
        .await
        .map_err(SignInError::Messenger)?;
    messenger.top_up_key_packages().await.map_err(SignInError::Messenger)?;
    Ok((session, messenger))
}
