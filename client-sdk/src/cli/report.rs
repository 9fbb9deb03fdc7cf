//! How a failed command is reported: `error: <message> (<code>)` on one line, and a
//! `hint:` line when there is something useful to do about it.

use parley_specs::ErrorCode;

use super::output::printable;
use crate::Error;

/// The text printed on stderr for a failed command run with profile `profile`.
pub fn explain(err: &anyhow::Error, profile: &str) -> String {
    let (message, hint) = match err.downcast_ref::<Error>() {
        Some(Error::NotLoggedIn) => (
            format!("profile \"{profile}\" is not logged in"),
            Some(format!(
                "run `{}login USERNAME --server URL` (or `register`)",
                parley(profile)
            )),
        ),
        Some(sdk) => (format!("{err:#}"), hint_for(sdk, profile)),
        None => (format!("{err:#}"), None),
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
        ErrorCode::Unavailable => format!("the server is temporarily unavailable; {}", retry()),
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
}
