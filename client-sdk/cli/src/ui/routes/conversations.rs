//! Conversations and their messages: create, list, members, send, timers, read marks,
//! typing, export, search.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use parley_sdk::messenger::{ExportFormat, MAX_TIMER_SECS, Messenger};
use parley_specs::GroupId;

use super::{Answer, Data, group, messenger, user};
use crate::ui::api::{
    AddMembersRequest, Conversation, CreateConversationRequest, DeleteMessageQuery, EditMessageRequest, Empty,
    ExportFileFormat, ExportQuery, MarkReadRequest, Message, MessagesQuery, ReactRequest, SearchHit, SearchQuery,
    SendFileQuery, SendMessageRequest, ServerEvent, SetAdminRequest, SetTimerRequest, TypingRequest,
    UpdateSettingsRequest,
};
use crate::ui::error::ApiError;
use crate::ui::server::Ui;
use crate::ui::views;

pub(super) async fn list(ui: Data) -> Answer<Vec<Conversation>> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    Ok(web::Json(views::conversations(m, None, &ui.deliveries).await?))
}

pub(super) async fn create(ui: Data, body: web::Json<CreateConversationRequest>) -> Answer<Conversation> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let users = body
        .members
        .iter()
        .map(|u| user(m.user_id(), u))
        .collect::<Result<Vec<_>, _>>()?;
    let group_id = m.create_group().await?;
    if !users.is_empty() {
        m.add_members(&group_id, &users).await?;
    }
    conversation_reply(&ui, m, &group_id).await
}

/// The conversation as the answer, also pushed to the event streams.
async fn conversation_reply(ui: &Ui, m: &mut Messenger, group_id: &GroupId) -> Answer<Conversation> {
    let conversation = views::conversation(m, group_id, &ui.deliveries).await?;
    ui.hub.send(&ServerEvent::Conversation {
        conversation: conversation.clone(),
    });
    Ok(web::Json(conversation))
}

pub(super) async fn get(ui: Data, path: web::Path<String>) -> Answer<Conversation> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    Ok(web::Json(views::conversation(m, &group_id, &ui.deliveries).await?))
}

/// Leaves the group (if still a member) and deletes its local history: both
/// `DELETE /api/conversations/{group_id}` and `POST …/leave`.
pub(super) async fn leave(ui: Data, path: web::Path<String>) -> Answer<Empty> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.leave_group(&group_id).await?;
    ui.deliveries.forget(&group_id);
    Ok(web::Json(Empty {}))
}

pub(super) async fn add_members(
    ui: Data,
    path: web::Path<String>,
    body: web::Json<AddMembersRequest>,
) -> Answer<Conversation> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let users = body
        .users
        .iter()
        .map(|u| user(m.user_id(), u))
        .collect::<Result<Vec<_>, _>>()?;
    if users.is_empty() {
        return Err(ApiError::invalid_input("Name at least one user to add."));
    }
    m.add_members(&group_id, &users).await?;
    conversation_reply(&ui, m, &group_id).await
}

pub(super) async fn remove_member(ui: Data, path: web::Path<(String, String)>) -> Answer<Conversation> {
    let (raw_group, raw_user) = path.into_inner();
    let group_id = group(&raw_group)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let target = user(m.user_id(), &raw_user)?;
    m.remove_members(&group_id, &[target]).await?;
    conversation_reply(&ui, m, &group_id).await
}

/// Renames the group and/or sets its topic (admins only).
pub(super) async fn update_settings(
    ui: Data,
    path: web::Path<String>,
    body: web::Json<UpdateSettingsRequest>,
) -> Answer<Conversation> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    if body.name.is_none() && body.topic.is_none() && body.timer_secs.is_none() {
        return Err(ApiError::invalid_input("Give a name, a topic or a timer."));
    }
    if body.timer_secs.is_some_and(|s| s > MAX_TIMER_SECS) {
        return Err(ApiError::invalid_input("A timer is at most 366 days."));
    }
    if let Some(name) = &body.name {
        m.rename_group(&group_id, name).await?;
    }
    if let Some(topic) = &body.topic {
        m.set_topic(&group_id, topic).await?;
    }
    if let Some(secs) = body.timer_secs {
        let timer = (secs > 0).then(|| Duration::from_secs(secs));
        m.set_group_timer(&group_id, timer).await?;
    }
    conversation_reply(&ui, m, &group_id).await
}

/// Promotes or demotes a member (admins only).
pub(super) async fn set_admin(
    ui: Data,
    path: web::Path<String>,
    body: web::Json<SetAdminRequest>,
) -> Answer<Conversation> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let target = user(m.user_id(), &body.user)?;
    if body.admin {
        m.promote(&group_id, &target).await?;
    } else {
        m.demote(&group_id, &target).await?;
    }
    conversation_reply(&ui, m, &group_id).await
}

pub(super) async fn messages(
    ui: Data,
    path: web::Path<String>,
    query: web::Query<MessagesQuery>,
) -> Answer<Vec<Message>> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    let history = m.history(&group_id, search).await?;
    let others = views::other_devices(m, &group_id).await;
    let me = m.user_id().clone();
    // One request per listing: how far each member server has received the conversation
    // (the last known positions when the homeserver cannot say).
    if let Ok(answer) = m.client().group_delivery(&group_id).await {
        ui.deliveries.record(answer);
    }
    let positions = ui.deliveries.positions(&group_id);
    if let Some(own) = history.iter().rev().find(|msg| msg.sender == me) {
        ui.deliveries.own_message(&group_id, own.seq);
    }
    Ok(web::Json(
        history
            .iter()
            .map(|msg| views::message(&me, msg, others, &positions))
            .collect(),
    ))
}

pub(super) async fn send(ui: Data, path: web::Path<String>, body: web::Json<SendMessageRequest>) -> Answer<Message> {
    let group_id = group(&path)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_input("The message is empty."));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let sent = match body.reply_to {
        Some(to) => m.send_reply(&group_id, to, &body.text, None).await?,
        None => m.send_text(&group_id, &body.text, None).await?,
    };
    ui.deliveries.own_message(&group_id, sent.seq);
    message_reply(&ui, m, group_id, sent.seq, false).await
}

/// Message `seq` as the answer, also pushed to the event streams (as a new message, or
/// as a `changed` one).
async fn message_reply(ui: &Ui, m: &mut Messenger, group_id: GroupId, seq: i64, changed: bool) -> Answer<Message> {
    let history = m.history(&group_id, None).await?;
    let others = views::other_devices(m, &group_id).await;
    let me = m.user_id().clone();
    let positions = ui.deliveries.positions(&group_id);
    let message = match history.iter().find(|msg| msg.seq == seq) {
        Some(msg) => views::message(&me, msg, others, &positions),
        None => {
            return Err(ApiError::server_error(
                "the message was sent but is missing from the history",
            ));
        }
    };
    ui.hub.send(&if changed {
        ServerEvent::MessageChanged {
            group_id,
            message: message.clone(),
        }
    } else {
        ServerEvent::Message {
            group_id,
            message: message.clone(),
        }
    });
    Ok(web::Json(message))
}

/// Largest file the web app may send (the homeserver's default limit).
const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// The file in the body, written to a private temporary file as it arrives, then
/// encrypted, uploaded and sent like `parley send --file`.
pub(super) async fn send_file(
    ui: Data,
    path: web::Path<String>,
    query: web::Query<SendFileQuery>,
    mut body: web::Payload,
) -> Answer<Message> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let group_id = group(&path)?;
    let name = std::path::Path::new(&query.name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != ".." && n != ".")
        .ok_or_else(|| ApiError::invalid_input("The file needs a name."))?;
    let dir = tempfile::tempdir().map_err(|e| ApiError::server_error(format!("a temporary directory: {e}")))?;
    let file_path = dir.path().join(&name);
    let mut file = tokio::fs::File::create(&file_path)
        .await
        .map_err(|e| ApiError::server_error(format!("a temporary file: {e}")))?;
    let mut size = 0u64;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| ApiError::invalid_input(format!("The upload broke off: {e}")))?;
        size += piece.len() as u64;
        if size > MAX_FILE_BYTES {
            return Err(ApiError::invalid_input("The file is larger than 100 MiB."));
        }
        file.write_all(&piece)
            .await
            .map_err(|e| ApiError::server_error(format!("a temporary file: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::server_error(format!("a temporary file: {e}")))?;
    drop(file);
    let text = query.text.as_deref().filter(|t| !t.trim().is_empty());
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let sent = m.send_file(&group_id, &file_path, text, None, &mut |_, _| {}).await?;
    let history = m.history(&group_id, None).await?;
    let others = views::other_devices(m, &group_id).await;
    let me = m.user_id().clone();
    ui.deliveries.own_message(&group_id, sent.seq);
    let positions = ui.deliveries.positions(&group_id);
    let message = match history.iter().find(|msg| msg.seq == sent.seq) {
        Some(msg) => views::message(&me, msg, others, &positions),
        None => {
            return Err(ApiError::server_error(
                "the file was sent but is missing from the history",
            ));
        }
    };
    ui.hub.send(&ServerEvent::Message {
        group_id,
        message: message.clone(),
    });
    Ok(web::Json(message))
}

/// The file of a message, downloaded, checked and decrypted into a private temporary
/// file, then answered.
pub(super) async fn get_file(ui: Data, path: web::Path<(String, i64)>) -> Result<HttpResponse, ApiError> {
    let (raw_group, seq) = path.into_inner();
    let group_id = group(&raw_group)?;
    let dir = tempfile::tempdir().map_err(|e| ApiError::server_error(format!("a temporary directory: {e}")))?;
    let target = dir.path().join("file");
    let attachment = {
        let mut state = ui.state.lock().await;
        let m = messenger(&mut state)?;
        m.download_file(&group_id, seq, &target, &mut |_, _| {}).await?
    };
    let bytes = tokio::fs::read(&target)
        .await
        .map_err(|e| ApiError::server_error(format!("the downloaded file: {e}")))?;
    let previewable = ["image/png", "image/jpeg", "image/gif", "image/webp"].contains(&attachment.media_type.as_str());
    let mut response = HttpResponse::Ok();
    response.insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if previewable {
        response.content_type(attachment.media_type.as_str());
    } else {
        response.content_type("application/octet-stream");
        response.insert_header(header::ContentDisposition::attachment(attachment.name.clone()));
    }
    Ok(response.body(bytes))
}

pub(super) async fn react(ui: Data, path: web::Path<(String, i64)>, body: web::Json<ReactRequest>) -> Answer<Message> {
    let (raw_group, seq) = path.into_inner();
    let group_id = group(&raw_group)?;
    parley_sdk::messenger::check_emoji(&body.emoji).map_err(|e| ApiError::invalid_input(format!("{e}.")))?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.toggle_reaction(&group_id, seq, &body.emoji).await?;
    message_reply(&ui, m, group_id, seq, true).await
}

pub(super) async fn edit_message(
    ui: Data,
    path: web::Path<(String, i64)>,
    body: web::Json<EditMessageRequest>,
) -> Answer<Message> {
    let (raw_group, seq) = path.into_inner();
    let group_id = group(&raw_group)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_input(
            "The new text is empty; delete the message instead.",
        ));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.edit_message(&group_id, seq, &body.text).await?;
    message_reply(&ui, m, group_id, seq, true).await
}

pub(super) async fn delete_message(
    ui: Data,
    path: web::Path<(String, i64)>,
    query: web::Query<DeleteMessageQuery>,
) -> Answer<Empty> {
    let (raw_group, seq) = path.into_inner();
    let group_id = group(&raw_group)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    if query.for_everyone {
        m.delete_for_everyone(&group_id, seq).await?;
    } else {
        m.delete_message(&group_id, seq).await?;
    }
    ui.hub.send(&ServerEvent::MessageDeleted { group_id, seq });
    Ok(web::Json(Empty {}))
}

pub(super) async fn set_timer(
    ui: Data,
    path: web::Path<String>,
    body: web::Json<SetTimerRequest>,
) -> Answer<Conversation> {
    let group_id = group(&path)?;
    if body.timer_secs.is_some_and(|s| s == 0 || s > MAX_TIMER_SECS) {
        return Err(ApiError::invalid_input(
            "The timer must be between 1 second and a year, or null for none.",
        ));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.set_timer(&group_id, body.timer_secs.map(Duration::from_secs)).await?;
    conversation_reply(&ui, m, &group_id).await
}

pub(super) async fn mark_read(ui: Data, path: web::Path<String>, body: web::Json<MarkReadRequest>) -> Answer<Empty> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.mark_read(&group_id, body.up_to).await?;
    Ok(web::Json(Empty {}))
}

pub(super) async fn typing(ui: Data, path: web::Path<String>, body: web::Json<TypingRequest>) -> Answer<Empty> {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.send_typing(&group_id, body.typing).await?;
    Ok(web::Json(Empty {}))
}

/// The conversation as a file to save (`Content-Disposition: attachment`).
pub(super) async fn export(
    ui: Data,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let group_id = group(&path)?;
    let (format, kind, ext) = match query.format {
        ExportFileFormat::Text => (ExportFormat::Text, "text/plain; charset=utf-8", "txt"),
        ExportFileFormat::Json => (ExportFormat::Json, "application/json", "json"),
    };
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let exported = m.export(&group_id, format).await?;
    let name: String = group_id
        .as_str()
        .split('@')
        .next()
        .unwrap_or("conversation")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"parley-{name}.{ext}\""),
        ))
        .body(exported))
}

pub(super) async fn search(ui: Data, query: web::Query<SearchQuery>) -> Answer<Vec<SearchHit>> {
    let word = query.q.as_deref().or(query.search.as_deref()).unwrap_or("").trim();
    if word.is_empty() {
        return Ok(web::Json(Vec::new()));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let found = m.search(word).await?;
    let me = m.user_id().clone();
    let mut devices = BTreeMap::new();
    let mut hits = Vec::new();
    for (group_id, msg) in found {
        if !devices.contains_key(&group_id) {
            let n = views::other_devices(m, &group_id).await;
            devices.insert(group_id.clone(), n);
        }
        let others = devices.get(&group_id).copied().unwrap_or(0);
        let positions = ui.deliveries.positions(&group_id);
        let message = views::message(&me, &msg, others, &positions);
        hits.push(SearchHit { group_id, message });
    }
    Ok(web::Json(hits))
}
