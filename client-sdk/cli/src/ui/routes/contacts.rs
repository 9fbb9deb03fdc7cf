//! Contacts (safety numbers, verification), this account's devices, presence.

use actix_web::web;
use parley_specs::DeviceId;

use super::session::forget;
use super::{Answer, Data, messenger, user};
use crate::ui::api::{Contact, Device, Empty, PresenceRequest};
use crate::ui::error::ApiError;
use crate::ui::views;

pub(super) async fn contact(ui: Data, path: web::Path<String>) -> Answer<Contact> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    Ok(web::Json(views::contact(&m.safety_number(&contact).await?)))
}

/// Marks the contact's current devices verified (also how a change is acknowledged after
/// comparing again).
pub(super) async fn verify(ui: Data, path: web::Path<String>) -> Answer<Contact> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    Ok(web::Json(views::contact(&m.mark_verified(&contact).await?)))
}

/// Accepts a verified contact's changed devices without verifying them.
pub(super) async fn acknowledge(ui: Data, path: web::Path<String>) -> Answer<Contact> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    m.acknowledge_change(&contact).await?;
    Ok(web::Json(views::contact(&m.safety_number(&contact).await?)))
}

pub(super) async fn devices(ui: Data) -> Answer<Vec<Device>> {
    let session = {
        let state = ui.state.lock().await;
        state.session.clone().ok_or_else(ApiError::not_signed_in)?
    };
    let list = session.client()?.devices().await?;
    Ok(web::Json(
        list.devices
            .into_iter()
            .map(|d| Device {
                this_device: d.device_id == session.device_id,
                device_id: d.device_id,
                display_name: d.display_name,
                last_seen_at: d.last_seen_at,
            })
            .collect(),
    ))
}

/// Revokes a device at the homeserver and removes it from this device's conversations
/// (when the store is unlocked); this one signs the profile out.
pub(super) async fn delete_device(ui: Data, path: web::Path<String>) -> Answer<Empty> {
    let device_id = DeviceId::parse(&path).map_err(|e| ApiError::invalid_input(format!("Invalid device id: {e}")))?;
    let mut state = ui.state.lock().await;
    let session = state.session.clone().ok_or_else(ApiError::not_signed_in)?;
    match state.messenger.as_mut() {
        Some(m) if device_id != session.device_id => {
            m.delete_device(&device_id).await?;
        }
        _ => session.client()?.delete_device(&device_id).await?,
    }
    if device_id == session.device_id {
        forget(&ui, &mut state)?;
    }
    Ok(web::Json(Empty {}))
}

pub(super) async fn presence(ui: Data, body: web::Json<PresenceRequest>) -> Answer<Empty> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.send_presence(body.presence.into()).await?;
    Ok(web::Json(Empty {}))
}
