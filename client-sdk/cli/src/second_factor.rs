//! `parley 2fa enable|disable|status`, the second-factor prompt of `parley login`, and
//! the QR codes of an enrolment (text for the terminal, SVG for the web app).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};
use parley_specs::client_api::SecondFactorDisableRequest;
use qrcode::QrCode;
use qrcode::render::{svg, unicode};
use serde::Serialize;

use crate::commands::{Ctx, logged_in_client};
use crate::password::{PasswordSource, read_password};

/// The `otpauth://` URI as a QR code of Unicode half blocks (two rows per line), with
/// the quiet zone authenticator apps need, dark on light whatever the terminal's colours.
pub(crate) fn qr_text(uri: &str) -> anyhow::Result<String> {
    let code = QrCode::new(uri.as_bytes()).context("cannot make a QR code of the enrolment")?;
    Ok(code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The `otpauth://` URI as an SVG document, for the web app.
pub(crate) fn qr_svg(uri: &str) -> anyhow::Result<String> {
    let code = QrCode::new(uri.as_bytes()).context("cannot make a QR code of the enrolment")?;
    Ok(code
        .render()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// Reads a code: `given` if set, otherwise a line from stdin after a prompt on stderr
/// (a terminal or a pipe: a code is good for seconds only, so it may be typed visibly).
pub(crate) fn read_code(given: Option<String>, prompt: &str) -> anyhow::Result<String> {
    if let Some(code) = given {
        return Ok(code.trim().to_owned());
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the code from stdin")?;
    let code = line.trim().to_owned();
    if code.is_empty() {
        bail!("no code entered");
    }
    Ok(code)
}

#[derive(Serialize)]
struct Enrolled {
    enabled: bool,
    recovery_codes: Vec<String>,
}

pub(crate) async fn enable(ctx: &Ctx, code: Option<String>) -> anyhow::Result<()> {
    let (client, session) = logged_in_client(&ctx.profile)?;
    let enrollment = client.enroll_second_factor().await?;
    if ctx.out.json {
        // One line before the prompt, so that a script can read the secret from it.
        println!(
            "{}",
            serde_json::json!({"secret": enrollment.secret, "otpauth_uri": enrollment.otpauth_uri})
        );
    } else {
        println!(
            "Second factor for {}: scan this QR code with an authenticator app (TOTP, 6 digits, 30 s):\n",
            session.user_id
        );
        println!("{}", qr_text(&enrollment.otpauth_uri)?);
        println!("or enter this secret by hand: {}", enrollment.secret);
        println!("otpauth URI: {}", enrollment.otpauth_uri);
    }
    std::io::stdout().flush().ok();
    let code = read_code(code, "Code shown by the authenticator app")?;
    let confirmed = client.confirm_second_factor(&code).await?;
    let enrolled = Enrolled {
        enabled: true,
        recovery_codes: confirmed.recovery_codes,
    };
    ctx.out.print(&enrolled, || {
        format!(
            "Second factor on: logins now need a code from the app.\n\n\
             Recovery codes (each works once instead of a code; keep them somewhere safe, \
             they are not shown again):\n  {}",
            enrolled.recovery_codes.join("\n  ")
        )
    })
}

pub(crate) async fn disable(ctx: &Ctx, password_file: Option<&Path>, code: Option<String>) -> anyhow::Result<()> {
    let (client, _) = logged_in_client(&ctx.profile)?;
    let password = read_password(PasswordSource {
        file: password_file,
        flag: "--password-file",
        prompt: "Password",
        confirm: false,
    })?;
    let code = read_code(code, "Code shown by the authenticator app (or a recovery code)")?;
    client
        .disable_second_factor(&SecondFactorDisableRequest { password, code })
        .await?;
    ctx.out
        .ok(|| "Second factor off: logins need the password only.".to_owned())
}

pub(crate) async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let (client, _) = logged_in_client(&ctx.profile)?;
    let status = client.second_factor_status().await?;
    ctx.out.print(&status, || match (status.enabled, status.pending) {
        (true, _) => format!(
            "Second factor on{}; {} recovery code(s) left.",
            status
                .enabled_at
                .map(|at| format!(" since {}", crate::output::when(at)))
                .unwrap_or_default(),
            status.recovery_codes_left
        ),
        (false, true) => {
            "Second factor off (an enrolment waits for its code: run `parley 2fa enable` again).".to_owned()
        }
        (false, false) => "Second factor off. `parley 2fa enable` turns it on.".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_render_as_text_and_svg() {
        let uri = "otpauth://totp/a.example:alice%40a.example?secret=JBSWY3DPEHPK3PXP&issuer=a.example";
        let text = qr_text(uri).expect("text");
        assert!(text.lines().count() > 10 && text.contains('█'), "{text}");
        let svg = qr_svg(uri).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
}
