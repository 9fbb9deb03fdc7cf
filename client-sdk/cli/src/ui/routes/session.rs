//! Signing in (through the SDK's one sign-in flow), unlocking the sealed store, signing
//! out.

use actix_web::web;
use parley_sdk::messenger::{Messenger, MessengerError, NewDevice};
use parley_sdk::{Error, ServerCa};
use parley_specs::ErrorCode;
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use tokio::sync::MutexGuard;

use super::{Answer, Data};
use crate::ui::api::{Empty, ServerEvent, SessionStatus, SignInRequest, SyncState, UnlockRequest};
use crate::ui::error::ApiError;
use crate::ui::events;
use crate::ui::server::{Signed, Ui};

/// Shortest passphrase for a new store made from the web app.
const MIN_NEW_PASSPHRASE_CHARS: usize = 12;
/// The name of a device signed in from the web app, unless the request names it.
const DEFAULT_DEVICE_NAME: &str = "Parley web app";

fn status(state: &Signed) -> SessionStatus {
    match &state.session {
        None => SessionStatus {
            signed_in: false,
            locked: false,
            user_id: None,
            device_id: None,
            server: None,
        },
        Some(s) => SessionStatus {
            signed_in: state.messenger.is_some(),
            locked: state.messenger.is_none(),
            user_id: Some(s.user_id.clone()),
            device_id: Some(s.device_id.clone()),
            server: Some(s.server.as_str().trim_end_matches('/').to_owned()),
        },
    }
}

pub(super) async fn session(ui: Data) -> Answer<SessionStatus> {
    Ok(web::Json(status(&*ui.state.lock().await)))
}

pub(super) async fn register(ui: Data, body: web::Json<SignInRequest>) -> Answer<SessionStatus> {
    sign_in(&ui, body.into_inner(), true).await
}

pub(super) async fn login(ui: Data, body: web::Json<SignInRequest>) -> Answer<SessionStatus> {
    sign_in(&ui, body.into_inner(), false).await
}

async fn sign_in(ui: &Ui, body: SignInRequest, register: bool) -> Answer<SessionStatus> {
    let mut state = ui.state.lock().await;
    if let Some(s) = &state.session {
        return Err(ApiError::not_allowed(format!(
            "This profile is signed in as {} already; sign out first{}.",
            s.user_id,
            if state.messenger.is_none() { " or unlock it" } else { "" }
        )));
    }
    let server: url::Url = body
        .server
        .trim()
        .parse()
        .map_err(|e| ApiError::invalid_input(format!("Invalid server address: {e}")))?;
    // Signing in makes a new device, with a new store.
    if body.passphrase.chars().count() < MIN_NEW_PASSPHRASE_CHARS {
        return Err(ApiError::invalid_input(format!(
            "Choose a passphrase of at least {MIN_NEW_PASSPHRASE_CHARS} characters: it protects your keys and \
             messages on this computer."
        )));
    }
    let ca = match body.ca_pem.filter(|pem| !pem.trim().is_empty()) {
        Some(pem) => ServerCa::Pem(pem),
        None => ServerCa::SystemRoots,
    };
    let sign_in = ui.profile.sign_in(server, ca)?;
    let username = body.username.trim().to_owned();
    let device_name = Some(body.device_name.unwrap_or_else(|| DEFAULT_DEVICE_NAME.to_owned()));
    // The device's key goes with the request; its store is created and its KeyPackages
    // published as it is signed in (an earlier device's store is set aside, not deleted).
    let device = NewDevice::new(ui.profile.messenger_store(), &body.passphrase)?;
    let (session, messenger) = if register {
        sign_in
            .register_with_messenger(
                &RegisterRequest {
                    username,
                    password: body.password,
                    device_name,
                    invite_token: body.invite_token,
                    signature_key: None,
                },
                device,
            )
            .await?
    } else {
        sign_in
            .login_with_messenger(
                &LoginRequest {
                    username,
                    password: body.password,
                    device_name,
                    signature_key: None,
                    second_factor: body.second_factor.filter(|c| !c.trim().is_empty()),
                },
                device,
            )
            .await?
    };
    state.session = Some(session);
    first_sync(ui, &mut state, messenger).await?;
    Ok(web::Json(status(&state)))
}

pub(super) async fn unlock(ui: Data, body: web::Json<UnlockRequest>) -> Answer<SessionStatus> {
    unlock_with(&ui, &body.passphrase).await?;
    Ok(web::Json(status(&*ui.state.lock().await)))
}

/// Opens the profile's store with `passphrase` (the session must be known).
pub(crate) async fn unlock_with(ui: &Ui, passphrase: &str) -> Result<(), ApiError> {
    let mut state = ui.state.lock().await;
    if state.messenger.is_some() {
        return Ok(());
    }
    if state.session.is_none() {
        return Err(ApiError::not_signed_in());
    }
    open_store(ui, &mut state, passphrase).await
}

/// Opens (or creates) the store for the session, then the first sync.
async fn open_store(ui: &Ui, state: &mut MutexGuard<'_, Signed>, passphrase: &str) -> Result<(), ApiError> {
    let Some(session) = state.session.clone() else {
        return Err(ApiError::not_signed_in());
    };
    let path = ui.profile.messenger_store();
    let open = |client| {
        Messenger::open(
            client,
            session.user_id.clone(),
            session.device_id.clone(),
            &path,
            passphrase,
        )
    };
    let messenger = match open(session.client()?).await {
        Err(MessengerError::StoreOfAnotherDevice { store_device, .. }) => {
            // A store left by an earlier device of this profile: kept aside, not deleted.
            let aside = path.with_extension(format!("sealed.{store_device}"));
            std::fs::rename(&path, &aside)
                .map_err(|e| ApiError::server_error(format!("cannot move the old store aside: {e}")))?;
            open(session.client()?).await?
        }
        other => other?,
    };
    first_sync(ui, state, messenger).await
}

/// The first sync of an opened store; the messenger is the session's from then on.
async fn first_sync(ui: &Ui, state: &mut MutexGuard<'_, Signed>, mut messenger: Messenger) -> Result<(), ApiError> {
    let sync = |state| ServerEvent::Sync { state, pending: None };
    ui.hub.send(&sync(SyncState::Syncing));
    match messenger.sync().await {
        Ok(received) => {
            ui.hub.connection(true, None);
            for event in events::translate(&mut messenger, received, &ui.deliveries).await {
                ui.hub.send(&event);
            }
        }
        Err(MessengerError::Api(Error::Transport { .. })) => {
            ui.hub
                .connection(false, Some("The homeserver cannot be reached; retrying.".to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    ui.hub.send(&sync(SyncState::Idle));
    state.messenger = Some(messenger);
    Ok(())
}

pub(super) async fn logout(ui: Data) -> Answer<Empty> {
    let mut state = ui.state.lock().await;
    let Some(session) = state.session.clone() else {
        return Err(ApiError::not_signed_in());
    };
    match session.client()?.logout().await {
        Ok(()) => {}
        Err(e) if matches!(e.code(), Some(ErrorCode::UnknownToken | ErrorCode::MissingToken)) => {}
        Err(e) => return Err(e.into()),
    }
    forget(&ui, &mut state)?;
    Ok(web::Json(Empty {}))
}

/// Forgets the profile's session (the sealed store stays on disk).
pub(super) fn forget(ui: &Ui, state: &mut Signed) -> Result<(), ApiError> {
    ui.profile.forget()?;
    state.messenger = None;
    state.session = None;
    Ok(())
}
