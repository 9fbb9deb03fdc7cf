//! The server routes exactly the declared endpoints (the OpenAPI document is checked
//! against the same declarations in `parley-specs`), so the three cannot drift apart.

use parley_specs::ErrorCode;
use parley_specs::endpoints::{Endpoint, Method, admin, client, federation, ops};
use parley_tests::TestServer;
use parley_tests::server::{https_client, issue_cert};

#[tokio::test]
async fn every_declared_endpoint_is_routed() {
    let server = TestServer::spawn().await;
    let http = server.http();
    for endpoint in client::ALL.iter().chain(ops::ALL) {
        let url = server.endpoint_url(&endpoint.path_with(&["ABCDEF", "ABCDEF"]));
        assert_routed(&http, endpoint, url).await;
    }
}

#[tokio::test]
async fn every_declared_federation_endpoint_is_routed() {
    let key_dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_federating(key_dir.path()).await;
    let peer = https_client(Some(&issue_cert(&["peer.test"])));
    for endpoint in federation::ALL {
        let url = server.federation_url(&endpoint.path_with(&["ABCDEF"]));
        assert_routed(&peer, endpoint, url).await;
    }
}

#[tokio::test]
async fn every_declared_admin_endpoint_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(|config| {
        parley_tests::admin::enable_admin(config, dir.path());
    })
    .await;
    let api = parley_tests::admin::AdminApi::of(&server);
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", api.token).parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    for endpoint in admin::ALL {
        let url = format!("{}{}", api.base, endpoint.path_with(&["ABCDEF", "ABCDEF"]));
        assert_routed(&http, endpoint, url).await;
    }
}

async fn assert_routed(http: &reqwest::Client, endpoint: &Endpoint, url: String) {
    {
        let req = match endpoint.method {
            Method::Get => http.get(url),
            Method::Post => http.post(url),
            Method::Put => http.put(url),
            Method::Delete => http.delete(url),
        };
        let resp = req.body("{}").send().await.expect("request");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let code = body
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(
            code != ErrorCode::UnrecognizedEndpoint.as_str() && code != ErrorCode::MethodNotAllowed.as_str(),
            "{} {} is declared but not routed ({status} {code})",
            endpoint.method.as_str(),
            endpoint.path
        );
    }
}
