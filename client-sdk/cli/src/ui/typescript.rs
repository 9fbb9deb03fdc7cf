//! The web app's TypeScript types of the local API, generated from [`api`](super::api)
//! with ts-rs into `web/src/generated/api.ts`. The file is committed, so the web app
//! builds without Rust; the test here fails when it no longer matches the Rust types and
//! says how to regenerate it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use ts_rs::{Config, TS};

use super::api::*;

/// The generated file, relative to this crate.
const GENERATED: &str = "web/src/generated/api.ts";
/// Set (to anything) to rewrite the generated file instead of checking it.
const UPDATE_VARIABLE: &str = "PARLEY_UPDATE_TS";
const REGENERATE: &str = "PARLEY_UPDATE_TS=1 cargo test -p parley-cli generated_typescript";

/// The generated file's text, and the names of the types it declares and uses.
struct Declarations {
    text: String,
    declared: BTreeSet<String>,
    used: BTreeSet<String>,
}

impl Declarations {
    fn add<T: TS + 'static>(&mut self, cfg: &Config) {
        self.text.push('\n');
        if let Some(docs) = T::docs() {
            self.text.push_str(&docs);
        }
        self.text.push_str("export ");
        self.text.push_str(&T::decl(cfg));
        self.text.push('\n');
        self.declared.insert(T::ident(cfg));
        self.used.extend(T::dependencies(cfg).into_iter().map(|d| d.ts_name));
    }
}

fn declarations() -> Declarations {
    // JSON numbers: the API's sequence numbers and counts are far below 2^53.
    let cfg = Config::new().with_large_int("number");
    let mut out = Declarations {
        text: format!(
            "// Generated from client-sdk/cli/src/ui/api.rs by ts-rs: do not edit.\n\
             // Regenerate with `{REGENERATE}`.\n"
        ),
        declared: BTreeSet::new(),
        used: BTreeSet::new(),
    };
    macro_rules! declare {
        ($($ty:ty),* $(,)?) => { $(out.add::<$ty>(&cfg);)* };
    }
    declare!(
        SignInRequest,
        ConfirmSecondFactorRequest,
        DisableSecondFactorRequest,
        UnlockRequest,
        CreateConversationRequest,
        AddMembersRequest,
        SendMessageRequest,
        ReactRequest,
        EditMessageRequest,
        SendFileQuery,
        SetTimerRequest,
        UpdateSettingsRequest,
        SetAdminRequest,
        GroupSettingsView,
        MarkReadRequest,
        TypingRequest,
        PresenceRequest,
        ExportFileFormat,
        Empty,
        ErrorBody,
        SessionStatus,
        VerificationState,
        Member,
        DeviceRef,
        ServerReceived,
        ServerPosition,
        DeliveryState,
        Delivery,
        Attachment,
        Message,
        Reaction,
        Encryption,
        Conversation,
        ContactDevice,
        RefusedLeafView,
        Contact,
        Device,
        SearchHit,
        BackupStatusView,
        BackupEnabled,
        RestoreRequest,
        RestoreResult,
        Presence,
        SyncState,
        ConnectionState,
        ServerEvent,
        SecondFactorState,
        SecondFactorEnrollmentView,
        RecoveryCodes,
    );
    out
}

fn generated_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GENERATED)
}

#[test]
fn generated_typescript_declares_every_type_it_uses() {
    let generated = declarations();
    let missing: Vec<_> = generated.used.difference(&generated.declared).collect();
    assert!(missing.is_empty(), "add these types to declarations(): {missing:?}");
}

#[test]
fn generated_typescript_is_current() {
    let expected = declarations().text;
    let path = generated_path();
    if std::env::var_os(UPDATE_VARIABLE).is_some() {
        std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != expected {
        let first_difference = committed
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(expected.lines().count()));
        panic!(
            "{} is stale (it differs from the Rust types from line {}): regenerate it with `{REGENERATE}`, \
             then rebuild the web app",
            path.display(),
            first_difference + 1
        );
    }
}
