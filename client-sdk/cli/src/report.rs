//! How a failed command is reported: `error: <message> (<code>)` on one line, and a
//! `hint:` line when there is something useful to do about it.

use parley_sdk::messenger::MessengerError;
use parley_sdk::{Error, SignInError};
use parley_specs::ErrorCode;

use crate::output::printable;

/// The text printed on stderr for a failed command run with profile `profile`.
pub fn explain(err: &anyhow::Error, profile: &str) -> String {
    let messenger = err
        .downcast_ref::<MessengerError>()
        .or(match err.downcast_ref::<SignInError>() {
            Some(SignInError::Messenger(e)) => Some(e),
            _ => None,
        });
    let sdk = err
        .downcast_ref::<Error>()
        .or(match messenger {
            Some(MessengerError::Api(e)) => Some(e),
            _ => None,
        })
        .or(match err.downcast_ref::<SignInError>() {
            Some(SignInError::Api(e)) => Some(e),
            _ => None,
        });
    let (message, hint) = match sdk {
        Some(Error::NotLoggedIn) => (
            format!("profile \"{profile}\" is not logged in"),
            Some(format!(
                "run `{}login USERNAME --server URL` (or `register`)",
                parley(profile)
            )),
        ),
        Some(sdk) if messenger.is_some() => (
            format!("{err:#}"),
            messaging_api_hint(sdk).or_else(|| hint_for(sdk, profile)),
        ),
        Some(sdk) => (format!("{err:#}"), hint_for(sdk, profile)),
        None => (format!("{err:#}"), messenger.and_then(|e| messenger_hint(e, profile))),
    };
    let mut text = format!("error: {}", printable(&message));
    if let Some(hint) = hint {
        text.push_str("\nhint: ");
        text.push_str(&hint);
    }
    text
}

/// `parley ` with the `--profile` option when it is not the default one.
fn parley(profile: &str) -> String {
    if profile == "default" {
        "parley ".to_owned()
    } else {
        format!("parley --profile {profile} ")
    }
}

fn hint_for(err: &Error, profile: &str) -> Option<String> {
    let hint = match err {
        Error::Transport { reason, .. } if reason.starts_with("TLS") => {
            "the server's certificate is not trusted: --ca-file must be the CA that issued it, \
             and --server must use a name in the certificate"
                .to_owned()
        }
        Error::Transport { .. } => "is the homeserver running and reachable? check --server and --ca-file \
             (or PARLEY_SERVER and PARLEY_CA_FILE)"
            .to_owned(),
        Error::InvalidCaFile { .. } => {
            "--ca-file must be a PEM file with the CA certificate that issued the server's".to_owned()
        }
        Error::Tls(_) => "pass --ca-file with the CA certificate of the server".to_owned(),
        Error::InvalidUrl(_) => "--server looks like https://chat.example.org".to_owned(),
        Error::Decode { .. } => "is --server the address of a Parley homeserver?".to_owned(),
        Error::MalformedToken => format!("the saved session is damaged; run `{}login USERNAME`", parley(profile)),
        Error::Api { .. } => return api_hint(err, profile),
        _ => return None,
    };
    Some(hint)
}

/// Hints for refusals met while messaging, where the generic ones would mislead.
fn messaging_api_hint(err: &Error) -> Option<String> {
    Some(match err.code()? {
        ErrorCode::NotFound => "check the user or group id: the server knows no such user, or no such group \
             with this device in it"
            .to_owned(),
        ErrorCode::NotAMember => "this device is no longer a member of the group".to_owned(),
        _ => return None,
    })
}

/// Hints for the messenger's own errors.
fn messenger_hint(err: &MessengerError, profile: &str) -> Option<String> {
    let parley = parley(profile);
    Some(match err {
        MessengerError::WrongPassphrase { .. } => "use the passphrase chosen when this profile first used \
             messaging (prompted, or --passphrase-file FILE, or PARLEY_PASSPHRASE_FILE)"
            .to_owned(),
        MessengerError::StoreBusy { .. } => {
            "stop the other parley process of this profile (or wait for it), then retry".to_owned()
        }
        MessengerError::UnknownGroup(_) => format!(
            "`{parley}group list` shows this device's conversations; `{parley}sync` fetches groups \
             you were added to"
        ),
        MessengerError::NotAMember(_) => format!("`{parley}group list` shows where this device is a member"),
        MessengerError::CannotAdd { .. } => "each of their devices must have run Parley messaging once \
             (e.g. `parley sync`): that publishes the keys needed to add it"
            .to_owned(),
        MessengerError::NoSharedGroup(user) => {
            format!("start a conversation first: `{parley}group create`, then `{parley}group add GROUP {user}`")
        }
        MessengerError::CannotRemoveSelf => format!("`{parley}group leave GROUP` leaves a group"),
        MessengerError::ConversationRefused { group, .. } => format!(
            "this device refused a change to {group} that added a device its owner's server does not vouch for; \
             `{parley}group leave {group}` deletes it here"
        ),
        MessengerError::DirectoryUnavailable { .. } => {
            "the check of a new device's key needs its owner's server; run the command again later".to_owned()
        }
        MessengerError::VerifiedContactChanged { users } => format!(
            "`{parley}verify {}` shows the new safety number; once you compared it, `{parley}verify {} --mark` \
             verifies the new devices and unblocks sending",
            users.first().map_or("USER", |u| u.as_str()),
            users.first().map_or("USER", |u| u.as_str())
        ),
        _ => return None,
    })
}

fn api_hint(err: &Error, profile: &str) -> Option<String> {
    let retry = || match err.retry_after() {
        Some(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            format!("retry in {} s", secs.max(1))
        }
        None => "retry in a moment".to_owned(),
    };
    Some(match err.code()? {
        ErrorCode::UnknownToken | ErrorCode::MissingToken => format!(
            "your session was revoked (logged out or deleted from another device); run `{}login USERNAME`",
            parley(profile)
        ),
        ErrorCode::RateLimited => retry(),
        ErrorCode::Unavailable | ErrorCode::DatabaseUnavailable => {
            format!("the server is temporarily unavailable; {}", retry())
        }
        ErrorCode::InvalidInviteToken => {
            "this server needs an invite token: ask its operator and pass --invite-token".to_owned()
        }
        ErrorCode::UsernameTaken => "pick another username, or `parley login` if the account is yours".to_owned(),
        ErrorCode::NotFound => "`parley devices list` shows your devices".to_owned(),
        ErrorCode::Internal => "a fault in the server, logged there; retry later".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parley_specs::ErrorBody;

    use super::*;

    fn api(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> anyhow::Error {
        Error::Api {
            status: code.http_status(),
            body: ErrorBody {
                error: code,
                message: message.into(),
                retry_after_ms: None,
                current_epoch: None,
            },
            retry_after,
        }
        .into()
    }

    #[test]
    fn api_errors_show_message_code_and_hint() {
        let text = explain(&api(ErrorCode::UnknownToken, "unknown access token", None), "default");
        assert_eq!(
            text,
            "error: unknown access token (unknown_token)\nhint: your session was revoked \
             (logged out or deleted from another device); run `parley login USERNAME`"
        );
        let text = explain(&api(ErrorCode::UnknownToken, "m", None), "phone");
        assert!(text.contains("`parley --profile phone login"), "{text}");

        let limited = api(ErrorCode::RateLimited, "too many", Some(Duration::from_millis(2500)));
        assert!(explain(&limited, "default").ends_with("hint: retry in 3 s"));

        let plain = explain(&api(ErrorCode::WeakPassword, "too short", None), "default");
        assert_eq!(plain, "error: too short (weak_password)");
    }

    #[test]
    fn other_errors() {
        let transport = Error::Transport {
            url: "https://127.0.0.1:9".into(),
            reason: "connection refused".into(),
        };
        let text = explain(&transport.into(), "default");
        assert!(
            text.starts_with("error: cannot reach https://127.0.0.1:9: connection refused\nhint: "),
            "{text}"
        );
        assert!(text.contains("--server"));

        let text = explain(&Error::NotLoggedIn.into(), "default");
        assert!(text.starts_with("error: profile \"default\" is not logged in\nhint: run `parley login"));

        let plain = explain(&anyhow::anyhow!("the two passwords differ"), "default");
        assert_eq!(plain, "error: the two passwords differ");

        let hostile = explain(&api(ErrorCode::Unknown, "evil\x1b[2J", None), "default");
        assert!(!hostile.contains('\x1b'));
    }

    #[test]
    fn messenger_errors() {
        let wrong = MessengerError::WrongPassphrase {
            path: "/home/ann/.config/parley/profiles/default/messenger.sealed".into(),
        };
        let text = explain(&wrong.into(), "default");
        assert!(text.starts_with("error: cannot open the message store "), "{text}");
        assert!(
            text.contains("wrong passphrase") && text.contains("hint: use the passphrase"),
            "{text}"
        );

        let refused = MessengerError::Api(Error::Api {
            status: 404,
            body: ErrorBody {
                error: ErrorCode::NotFound,
                message: "no such user".into(),
                retry_after_ms: None,
                current_epoch: None,
            },
            retry_after: None,
        });
        let text = explain(&refused.into(), "default");
        assert!(
            text.starts_with("error: no such user (not_found)\nhint: check the user or group id"),
            "{text}"
        );
    }
}
