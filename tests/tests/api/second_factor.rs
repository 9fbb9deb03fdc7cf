//! The second factor (TOTP, RFC 6238): enrolment, logins that need a code, the ±1-step
//! window, replay, recovery codes, disabling, the admin reset, the login limits, and
//! secrets that never reach the database in clear. Codes are computed here from the
//! secret for chosen times around now, as an authenticator app with a skewed clock
//! would; nothing sleeps through a step.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use parley_sdk::Client;
use parley_specs::ErrorCode;
use parley_specs::client_api::{LoginRequest, SecondFactorDisableRequest};
use parley_specs::endpoints::admin;
use parley_tests::TestServer;
use parley_tests::admin::{AdminApi, enable_admin};
use parley_tests::totp::{code_now, dump_database, with_time_left_in_step};

use crate::helpers::{PASSWORD, code, login_request, registered};

/// A server whose second-factor key file is in `dir`, with an admin API.
async fn server(dir: &Path) -> TestServer {
    TestServer::spawn_with(|config| {
        config.second_factor.key_file = Some(dir.join("second-factor.key"));
        enable_admin(config, dir);
    })
    .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn with_code(username: &str, second_factor: Option<String>) -> LoginRequest {
    LoginRequest {
        second_factor,
        ..login_request(username, PASSWORD)
    }
}

/// Registers `name` and turns its second factor on (confirmed with the code of the
/// previous step); returns the client, the secret and the recovery codes.
async fn enabled(server: &TestServer, name: &str) -> (Client, String, Vec<String>) {
    let (client, _) = registered(server, name).await;
    let enrollment = client.enroll_second_factor().await.expect("enroll");
    let codes = client
        .confirm_second_factor(&code_now(&enrollment.secret, -1))
        .await
        .expect("confirm");
    (client, enrollment.secret, codes.recovery_codes)
}

#[tokio::test]
async fn enrolment_then_logins_need_a_current_unused_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    // What follows computes codes for "now": it runs well within one 30 s step.
    with_time_left_in_step(20).await;
    let (client, _) = registered(&server, "ann").await;
    let status = client.second_factor_status().await.expect("status");
    assert!(!status.enabled && !status.pending);

    let enrollment = client.enroll_second_factor().await.expect("enroll");
    assert_eq!(enrollment.secret.len(), 32, "160 bits in base32");
    assert!(
        enrollment
            .otpauth_uri
            .starts_with("otpauth://totp/test.parley:ann%40test.parley?secret=")
            && enrollment.otpauth_uri.contains(&enrollment.secret)
            && enrollment.otpauth_uri.contains("&digits=6&period=30"),
        "{}",
        enrollment.otpauth_uri
    );
    let status = client.second_factor_status().await.expect("status");
    assert!(!status.enabled && status.pending);
    // Pending: logins need no code yet.
    server
        .sdk()
        .login(&login_request("ann", PASSWORD))
        .await
        .expect("pending is not on");

    let secret = &enrollment.secret;
    assert_eq!(
        code(client.confirm_second_factor("000000").await),
        ErrorCode::InvalidSecondFactor
    );
    assert_eq!(
        code(client.confirm_second_factor(&code_now(secret, -2)).await),
        ErrorCode::InvalidSecondFactor,
        "two steps back is outside the window"
    );
    // One step back (an authenticator 30 s slow) is inside it.
    let recovery = client
        .confirm_second_factor(&code_now(secret, -1))
        .await
        .expect("confirm with the previous step's code");
    assert_eq!(recovery.recovery_codes.len(), 10);
    let status = client.second_factor_status().await.expect("status");
    assert!(status.enabled && !status.pending && status.enabled_at.is_some());
    assert_eq!(status.recovery_codes_left, 10);
    assert_eq!(
        code(client.enroll_second_factor().await),
        ErrorCode::SecondFactorEnabled
    );

    let sdk = server.sdk();
    let required = sdk
        .login(&login_request("ann", PASSWORD))
        .await
        .expect_err("needs a code");
    assert_eq!(
        (required.code(), required.status()),
        (Some(ErrorCode::SecondFactorRequired), Some(401))
    );
    let wrong = sdk.login(&with_code("ann", Some("123456".into()))).await;
    let wrong = wrong.expect_err("a wrong code");
    assert_eq!(
        (wrong.code(), wrong.status()),
        (Some(ErrorCode::InvalidSecondFactor), Some(401))
    );
    // A wrong password with a right code says nothing about the code.
    let bad_password = LoginRequest {
        password: "not the password at all".into(),
        ..with_code("ann", Some(code_now(secret, 0)))
    };
    assert_eq!(code(sdk.login(&bad_password).await), ErrorCode::InvalidCredentials);
    for offset in [-2, 2] {
        assert_eq!(
            code(sdk.login(&with_code("ann", Some(code_now(secret, offset)))).await),
            ErrorCode::InvalidSecondFactor,
            "{offset} steps"
        );
    }
    assert_eq!(
        code(sdk.login(&with_code("ann", Some(code_now(secret, -1)))).await),
        ErrorCode::InvalidSecondFactor,
        "the confirming code's step is used"
    );
    sdk.login(&with_code("ann", Some(code_now(secret, 0))))
        .await
        .expect("the current code");
    assert_eq!(
        code(sdk.login(&with_code("ann", Some(code_now(secret, 0)))).await),
        ErrorCode::InvalidSecondFactor,
        "the same code again is a replay"
    );
    // One step ahead (an authenticator 30 s fast) is inside the window, and later.
    sdk.login(&with_code("ann", Some(code_now(secret, 1))))
        .await
        .expect("the next step's code");
    assert_eq!(
        code(sdk.login(&with_code("ann", Some(code_now(secret, 0)))).await),
        ErrorCode::InvalidSecondFactor,
        "an earlier step than one used"
    );
}

#[tokio::test]
async fn wrong_codes_count_toward_the_login_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(|config| {
        config.second_factor.key_file = Some(dir.path().join("second-factor.key"));
        config.limits.login_failures_per_account_and_address_per_minute = 3;
    })
    .await;
    with_time_left_in_step(10).await;
    let (_, secret, _) = enabled(&server, "cat").await;
    let sdk = server.sdk();
    // Asking for the code is not a failure: the password was right.
    for _ in 0..5 {
        assert_eq!(
            code(sdk.login(&login_request("cat", PASSWORD)).await),
            ErrorCode::SecondFactorRequired
        );
    }
    for _ in 0..3 {
        assert_eq!(
            code(sdk.login(&with_code("cat", Some("999999".into()))).await),
            ErrorCode::InvalidSecondFactor
        );
    }
    assert_eq!(
        code(sdk.login(&with_code("cat", Some(code_now(&secret, 0)))).await),
        ErrorCode::RateLimited,
        "three wrong codes spent the budget, as three wrong passwords would"
    );
}

#[tokio::test]
async fn recovery_codes_work_once_and_disabling_needs_password_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    with_time_left_in_step(10).await;
    let (client, secret, recovery) = enabled(&server, "dan").await;
    let sdk = server.sdk();
    // Typed loosely: upper case, without dashes.
    let loosely = recovery[0].to_ascii_uppercase().replace('-', "");
    sdk.login(&with_code("dan", Some(loosely)))
        .await
        .expect("a recovery code");
    assert_eq!(
        code(sdk.login(&with_code("dan", Some(recovery[0].clone()))).await),
        ErrorCode::InvalidSecondFactor,
        "a recovery code works once"
    );
    assert_eq!(
        client.second_factor_status().await.expect("status").recovery_codes_left,
        9
    );

    let disable = |password: &str, code: &str| SecondFactorDisableRequest {
        password: password.into(),
        code: code.into(),
    };
    assert_eq!(
        code(
            client
                .disable_second_factor(&disable("a wrong password!", &code_now(&secret, 0)))
                .await
        ),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code(client.disable_second_factor(&disable(PASSWORD, "111111")).await),
        ErrorCode::InvalidSecondFactor
    );
    assert_eq!(
        code(client.disable_second_factor(&disable(PASSWORD, &recovery[0])).await),
        ErrorCode::InvalidSecondFactor,
        "a used recovery code"
    );
    client
        .disable_second_factor(&disable(PASSWORD, &code_now(&secret, 0)))
        .await
        .expect("password and a current code");
    assert!(!client.second_factor_status().await.expect("status").enabled);
    sdk.login(&login_request("dan", PASSWORD))
        .await
        .expect("password only again");
    assert_eq!(
        code(client.disable_second_factor(&disable(PASSWORD, &recovery[1])).await),
        ErrorCode::SecondFactorNotEnabled
    );
    // Another recovery code disables too, once on again.
    let enrollment = client.enroll_second_factor().await.expect("enroll again");
    let recovery = client
        .confirm_second_factor(&code_now(&enrollment.secret, 0))
        .await
        .expect("confirm")
        .recovery_codes;
    client
        .disable_second_factor(&disable(PASSWORD, &recovery[3]))
        .await
        .expect("password and a recovery code");
}

#[tokio::test]
async fn the_admin_api_and_cli_reset_a_second_factor() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    enabled(&server, "eve").await;
    let sdk = server.sdk();
    assert_eq!(
        code(sdk.login(&login_request("eve", PASSWORD)).await),
        ErrorCode::SecondFactorRequired
    );
    let api = AdminApi::of(&server);
    let done = api.ok(admin::RESET_SECOND_FACTOR, &["eve"], None).await;
    assert_eq!(done["was_enabled"], true);
    sdk.login(&login_request("eve", PASSWORD))
        .await
        .expect("password only after the reset");
    let again = api.ok(admin::RESET_SECOND_FACTOR, &["eve@test.parley"], None).await;
    assert_eq!(again["was_enabled"], false);
    let (status, body) = api.call(admin::RESET_SECOND_FACTOR, &["nobody"], None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    // The CLI twin.
    enabled(&server, "fay").await;
    let config_file = dir.path().join("homeserver.toml");
    std::fs::write(&config_file, toml::to_string(&server.config).unwrap()).unwrap();
    let output = tokio::process::Command::new(parley_tests::process::binary())
        .args([
            "admin",
            "--config",
            config_file.to_str().unwrap(),
            "users",
            "reset-2fa",
            "fay",
        ])
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run parley-homeserver admin");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("second factor of fay turned off"), "{stdout}");
    sdk.login(&login_request("fay", PASSWORD)).await.expect("password only");
}

#[tokio::test]
async fn the_database_holds_no_totp_secret_or_recovery_code_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let (_, secret, recovery) = enabled(&server, "gus").await;
    let key_file = dir.path().join("second-factor.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the key file is the owner's only"
    );
    let raw = parley_homeserver::second_factor::totp::base32_decode(&secret).unwrap();
    let dump = dump_database(&server.config.database.url);
    assert!(dump.contains("second_factors"), "the dump has the table");
    let lower = dump.to_ascii_lowercase();
    for needle in [
        secret.to_ascii_lowercase(),
        hex(&raw),
        // Any 8 bytes of the secret, as bytea's hex.
        hex(&raw[..8]),
        hex(&raw[12..]),
    ] {
        assert!(!lower.contains(&needle), "the dump holds {needle}");
    }
    for code in &recovery {
        assert!(
            !lower.contains(code) && !lower.contains(&code.replace('-', "")),
            "{code}"
        );
    }
    // Sealed secrets belong to their row: one copied onto another account does not open.
    let (_, other_secret, _) = enabled(&server, "hal").await;
    assert_ne!(other_secret, secret);
    server
        .db()
        .await
        .execute(
            "UPDATE second_factors SET secret_sealed = (SELECT secret_sealed FROM second_factors WHERE localpart = 'gus'),
                 last_used_step = 0 WHERE localpart = 'hal'",
            &[],
        )
        .await
        .unwrap();
    let refused = server
        .sdk()
        .login(&with_code("hal", Some(code_now(&secret, 0))))
        .await
        .expect_err("gus's secret copied onto hal");
    assert_eq!(refused.status(), Some(500), "{refused}");
}

#[tokio::test]
async fn without_a_key_file_enrolment_is_unavailable() {
    // No [second_factor] key_file and no federation signing key to put one beside.
    let server = TestServer::spawn().await;
    let (client, _) = registered(&server, "ivy").await;
    let refused = client.enroll_second_factor().await.expect_err("no key");
    assert_eq!(
        (refused.code(), refused.status()),
        (Some(ErrorCode::SecondFactorUnavailable), Some(501))
    );
    server
        .sdk()
        .login(&login_request("ivy", PASSWORD))
        .await
        .expect("logins as before");
}
