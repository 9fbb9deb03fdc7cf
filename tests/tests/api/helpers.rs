use parley_sdk::Client;
use parley_specs::ErrorCode;
use parley_specs::client_api::{LoginRequest, LoginResponse, RegisterRequest};
use parley_tests::TestServer;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn register_request(username: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        password: PASSWORD.into(),
        device_name: Some("laptop".into()),
        invite_token: None,
    }
}

pub fn login_request(username: &str, password: &str) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: password.into(),
        device_name: Some("phone".into()),
    }
}

/// Registers `username` and returns a client logged in as its first device.
pub async fn registered(server: &TestServer, username: &str) -> (Client, LoginResponse) {
    let mut client = server.sdk();
    let session = client.register(&register_request(username)).await.expect("register");
    client.set_access_token(session.access_token.clone());
    (client, session)
}

/// Logs in a second (third, ...) device of an existing account.
pub async fn logged_in(server: &TestServer, username: &str) -> (Client, LoginResponse) {
    let mut client = server.sdk();
    let session = client.login(&login_request(username, PASSWORD)).await.expect("login");
    client.set_access_token(session.access_token.clone());
    (client, session)
}

/// The error code of a failed SDK call; panics if it succeeded.
pub fn code<T: std::fmt::Debug>(result: Result<T, parley_sdk::Error>) -> ErrorCode {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("expected an API error, got {e}")),
    }
}
