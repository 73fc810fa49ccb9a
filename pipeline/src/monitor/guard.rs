//! Who may talk to the server: the `Host` a request names and the `Origin`
//! a browser says it comes from.
//!
//! A page on another site can make a visitor's browser send requests to
//! bellwether on loopback, and with DNS rebinding even read the answers.
//! So a request naming a `Host` that is not an IP address, `localhost` or
//! one of `http.allowed_hosts` is refused (403), and a request that changes
//! something or queries the history (`/api/sql`) is refused when its
//! `Origin` is not this server itself.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// Host names the server answers besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(pub Arc<Vec<String>>);

/// The host of a `Host` header value or an origin's authority, without its port.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

impl AllowedHosts {
    /// True when `host` (no port) may be named.
    fn allows(&self, host: &str) -> bool {
        host.parse::<IpAddr>().is_ok()
            || host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost")
            || self.0.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Why `headers` may not make a request of `method` to `path`, if not.
    pub fn refusal(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<String> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if let Some(host) = host
            && !self.allows(host_of(host))
        {
            return Some(format!(
                "Host `{host}` is not served here; add it to http.allowed_hosts"
            ));
        }
        let sensitive = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || path.starts_with("/api/sql");
        let origin = headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("?"));
        match (sensitive, origin) {
            (true, Some(origin)) => {
                let authority = origin.split_once("://").map(|(_, a)| a);
                let same =
                    authority.is_some_and(|a| host.is_some_and(|h| a.eq_ignore_ascii_case(h)));
                (!same).then(|| {
                    format!("requests from origin `{origin}` may not change anything or query the history")
                })
            }
            _ => None,
        }
    }
}

/// Refuses, with a 403 and a JSON reason, what [`AllowedHosts::refusal`] refuses.
pub async fn check(State(allowed): State<AllowedHosts>, request: Request, next: Next) -> Response {
    match allowed.refusal(request.method(), request.uri().path(), request.headers()) {
        Some(reason) => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": reason })),
        )
            .into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn foreign_hosts_and_origins_are_refused() {
        let allowed = AllowedHosts(Arc::new(vec!["bellwether.internal".into()]));
        let get = Method::GET;
        let post = Method::POST;
        for host in [
            "127.0.0.1:9464",
            "localhost:9464",
            "[::1]:9464",
            "bellwether.internal",
            "10.1.2.3",
        ] {
            assert_eq!(
                allowed.refusal(&get, "/", &headers(&[(header::HOST, host)])),
                None,
                "{host}"
            );
        }
        let e = allowed
            .refusal(
                &get,
                "/api/snapshot",
                &headers(&[(header::HOST, "attacker.example")]),
            )
            .unwrap();
        assert!(e.contains("attacker.example"), "{e}");
        // Changing requests and SQL from a foreign page, or from `null`.
        for (method, path) in [(&post, "/api/outcomes"), (&get, "/api/sql")] {
            let foreign = headers(&[
                (header::HOST, "127.0.0.1:9464"),
                (header::ORIGIN, "https://evil.example"),
            ]);
            assert!(allowed.refusal(method, path, &foreign).is_some());
            let null = headers(&[(header::HOST, "127.0.0.1:9464"), (header::ORIGIN, "null")]);
            assert!(allowed.refusal(method, path, &null).is_some());
            let own = headers(&[
                (header::HOST, "127.0.0.1:9464"),
                (header::ORIGIN, "http://127.0.0.1:9464"),
            ]);
            assert_eq!(allowed.refusal(method, path, &own), None);
            // curl and the CLI send no Origin.
            assert_eq!(
                allowed.refusal(method, path, &headers(&[(header::HOST, "127.0.0.1:9464")])),
                None
            );
        }
        // Reading the dashboard from elsewhere is harmless.
        let foreign = headers(&[
            (header::HOST, "127.0.0.1:9464"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert_eq!(allowed.refusal(&get, "/api/snapshot", &foreign), None);
    }
}
