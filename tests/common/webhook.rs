//! A webhook endpoint for the actuator tests: a real HTTP server on a free
//! port that records every call and answers with chosen statuses, and the
//! signature check a user's endpoint would make.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

/// The shared secret of the tests' webhooks.
pub const SECRET: &str = "webhook-secret-0123456789";

/// What the endpoint received: headers and body of each call.
pub type Calls = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An HTTP endpoint on a free port answering `statuses` in turn (the last
/// one from then on); returns its URL and what it received.
pub fn endpoint(statuses: Vec<u16>) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let url = serve(axum::routing::post(
        move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let statuses = statuses.clone();
            async move {
                let mut calls = seen.lock().unwrap();
                calls.push((headers, body));
                let status = statuses[(calls.len() - 1).min(statuses.len() - 1)];
                StatusCode::from_u16(status).unwrap()
            }
        },
    ));
    (url, calls)
}

/// Serves `route` at `/hooks/bellwether` on a free port, on a runtime of
/// two threads of its own; returns the URL.
fn serve(route: axum::routing::MethodRouter) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hooks/bellwether", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new().route("/hooks/bellwether", route);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    url
}

/// True when `headers` carry the HMAC-SHA256 of `body` under [`SECRET`],
/// as a user's endpoint checks it.
pub fn signed(headers: &HeaderMap, body: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers
        .get("x-bellwether-signature")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

/// What a slow endpoint received, in order of arrival: action, VM and
/// whether the command said the VM is critical.
pub type Arrivals = Arc<Mutex<Vec<(String, String, bool)>>>;

/// An HTTP endpoint on a free port that answers 200 to patches at once and
/// to rollbacks after `rollback_delay` (a deployment system taking its
/// time), many calls at once; returns its URL and what it received.
pub fn slow_endpoint(rollback_delay: std::time::Duration) -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let url = serve(axum::routing::post(move |body: String| {
        let seen = seen.clone();
        async move {
            let call: serde_json::Value = serde_json::from_str(&body).unwrap();
            let action = call["action"].as_str().unwrap().to_string();
            let vm = call["vm_id"].as_str().unwrap().to_string();
            let critical = call["command"]["critical"].as_bool().unwrap_or(false);
            let slow = action == "rollback";
            seen.lock().unwrap().push((action, vm, critical));
            if slow {
                tokio::time::sleep(rollback_delay).await;
            }
            StatusCode::OK
        }
    }));
    (url, arrivals)
}
