//! What a request body must say it is, and every error answered in JSON.
//!
//! A request with a body names its type: `application/json`, or for
//! `POST /api/sql` the query as `application/sql` (or `text/plain`), for
//! `POST /api/v1/write` Prometheus' `application/x-protobuf`;
//! anything else is refused with a 415 before a handler reads it. Errors
//! the framework answers itself (a body that is not UTF-8 or too large, a
//! method a path does not take, a malformed query string) get the same
//! `{"error": ...}` body as the handlers' own, and a handler that panics
//! is answered 500 with the panic's message while the server goes on.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The media types `POST /api/sql` takes its query as.
pub const SQL_TYPES: [&str; 2] = ["application/sql", "text/plain"];

/// The path of Prometheus remote write.
pub const REMOTE_WRITE_PATH: &str = "/api/v1/write";

/// The media type remote-write bodies are sent as.
pub const REMOTE_WRITE_TYPE: &str = "application/x-protobuf";

/// The largest error body turned into JSON; longer ones are cut.
const MAX_ERROR_BYTES: usize = 64 * 1024;

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The media type of `headers`' `Content-Type`, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().unwrap_or("?");
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// True when the request carries a body (by its headers).
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// Why a request of `method` to `path` with `headers` may not be read, if not.
pub fn refusal(method: &Method, path: &str, headers: &HeaderMap) -> Option<String> {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) || !has_body(headers) {
        return None;
    }
    let got = media_type(headers);
    if path == REMOTE_WRITE_PATH {
        // The receiver checks (and counts) its own requests.
        return None;
    }
    let wanted: &[&str] = if path == "/api/sql" {
        &SQL_TYPES
    } else {
        &["application/json"]
    };
    if got.as_deref().is_some_and(|t| wanted.contains(&t)) {
        return None;
    }
    Some(format!(
        "Content-Type must be {} (got {})",
        wanted.join(" or "),
        got.map_or("none".to_string(), |t| format!("`{t}`"))
    ))
}

/// Refuses, with a 415, a body of a type [`refusal`] refuses.
pub async fn check(request: Request, next: Next) -> Response {
    match refusal(request.method(), request.uri().path(), request.headers()) {
        Some(reason) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &reason),
        None => next.run(request).await,
    }
}

/// Turns an error answered in anything but JSON into `{"error": text}`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = serde_json::json!({ "error": text }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The answer to a handler that panicked: a 500 naming the panic.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = crate::panic_message(panic.as_ref());
    tracing::error!("http: a request handler panicked: {what}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("internal error (the request's handler panicked: {what}); the server goes on"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bodies_must_name_their_type_and_empty_ones_need_not() {
        let json = headers(&[
            ("content-length", "2"),
            ("content-type", "application/json"),
        ]);
        let charset = headers(&[
            ("content-length", "2"),
            ("content-type", "Application/JSON; charset=utf-8"),
        ]);
        let form = headers(&[
            ("content-length", "2"),
            ("content-type", "application/x-www-form-urlencoded"),
        ]);
        let untyped = headers(&[("content-length", "2")]);
        let chunked = headers(&[("transfer-encoding", "chunked")]);
        let empty = headers(&[("content-length", "0")]);
        let sql = headers(&[("content-length", "8"), ("content-type", "application/sql")]);
        assert_eq!(refusal(&Method::POST, "/api/vms", &json), None);
        assert_eq!(refusal(&Method::PUT, "/api/approval/rules", &charset), None);
        let why = refusal(&Method::POST, "/api/vms", &form).unwrap();
        assert!(
            why.contains("application/json") && why.contains("x-www-form"),
            "{why}"
        );
        assert!(
            refusal(&Method::POST, "/api/vms", &untyped)
                .unwrap()
                .contains("none")
        );
        assert!(refusal(&Method::POST, "/api/vms", &chunked).is_some());
        assert_eq!(
            refusal(&Method::POST, "/api/patches/p/approve", &empty),
            None
        );
        assert_eq!(refusal(&Method::GET, "/api/vms", &form), None);
        assert_eq!(refusal(&Method::POST, "/api/sql", &sql), None);
        assert!(refusal(&Method::POST, "/api/sql", &json).is_some());
        assert!(refusal(&Method::POST, "/api/sql", &form).is_some());
    }

    #[test]
    fn errors_the_framework_answers_and_panics_come_back_as_json() {
        let app = axum::Router::new()
            .route(
                "/text",
                axum::routing::post(|body: String| async move { body }),
            )
            .route(
                "/panics",
                axum::routing::get(|| async {
                    if std::hint::black_box(true) {
                        panic!("index out of range");
                    }
                    "never"
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
            .layer(axum::middleware::from_fn(json_errors));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let call = |request: axum::http::Request<Body>| {
            rt.block_on(async {
                let response = tower::ServiceExt::oneshot(app.clone(), request)
                    .await
                    .unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                (status, json["error"].as_str().unwrap().to_string())
            })
        };
        let not_utf8 = axum::http::Request::post("/text")
            .body(Body::from(vec![0xff, 0xfe, 0x41]))
            .unwrap();
        let (status, why) = call(not_utf8);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(why.to_lowercase().contains("utf-8"), "{why}");
        let (status, why) = call(
            axum::http::Request::get("/text")
                .body(Body::empty())
                .unwrap(),
        );
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(!why.is_empty());
        let (status, why) = call(
            axum::http::Request::get("/panics")
                .body(Body::empty())
                .unwrap(),
        );
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(why.contains("index out of range"), "{why}");
        // The service answers the next request as before.
        let ok = axum::http::Request::post("/text")
            .body(Body::from("hi"))
            .unwrap();
        let response = rt
            .block_on(tower::ServiceExt::oneshot(app.clone(), ok))
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
