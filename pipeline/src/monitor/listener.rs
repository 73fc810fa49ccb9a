//! Connections: how many the server holds, and how long one may stay silent.
//!
//! A client that opens a connection and sends nothing (or half a request
//! head, a byte a minute) holds a task and a socket. So the request head,
//! and the wait for the next request on a kept-alive connection, must come
//! within `http.header_timeout_secs`; a request body within
//! `http.body_timeout_secs`; and past `http.max_connections` (or
//! `http.max_connections_per_client` from one address) a new connection
//! gets a 503 (JSON) and is closed, while those already open are served
//! as before: one client cannot take every place.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How long a connection may stay silent and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionLimits {
    /// The longest wait for a request head (also between kept-alive requests).
    pub header_timeout: Duration,
    /// The longest a request body may take to arrive.
    pub body_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_client: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_client: 64,
        }
    }
}

impl From<&crate::config::HttpConfig> for ConnectionLimits {
    fn from(http: &crate::config::HttpConfig) -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(http.header_timeout_secs),
            body_timeout: Duration::from_secs(http.body_timeout_secs),
            max_connections: http.max_connections,
            max_connections_per_client: http.max_connections_per_client,
        }
    }
}

/// What a connection past the limit is told before it is closed.
const BUSY: &str = "{\"error\":\"too many connections (http.max_connections): try again shortly\"}";

/// What a connection past its client's limit is told.
const BUSY_CLIENT: &str = "{\"error\":\"too many connections from this address (http.max_connections_per_client): close some first\"}";

/// Connections open by each client address.
#[derive(Debug, Default, Clone)]
struct PerClient(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// One client's place, given back when dropped.
struct ClientPlace(PerClient, std::net::IpAddr);

impl PerClient {
    fn take(&self, ip: std::net::IpAddr, max: usize) -> Option<ClientPlace> {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientPlace(self.clone(), ip))
    }
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut open = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` resolves, then lets open
/// requests finish for up to a second.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::default();
    let graceful = GracefulShutdown::new();
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most often: wait, do not spin.
                    tracing::warn!("http: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(client) = per_client.take(peer.ip(), limits.max_connections_per_client.max(1))
        else {
            tokio::spawn(refuse(stream, BUSY_CLIENT));
            continue;
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, BUSY));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop((place, client));
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}

/// Answers a connection past the limit with a 503 and closes it.
async fn refuse(mut stream: TcpStream, why: &str) {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{why}",
        why.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server of one route with `limits`, on a free port.
    fn server(
        limits: ConnectionLimits,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let app = Router::new().route(
                    "/",
                    axum::routing::get(|| async { "ok" }).post(|body: String| async move { body }),
                );
                serve(listener, app, limits, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        (addr, stop)
    }

    fn get(addr: std::net::SocketAddr) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    }

    /// Reads until the peer closes; true when it did within `within`.
    fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).is_ok()
    }

    #[test]
    fn silent_and_half_sent_connections_are_closed_and_others_still_served() {
        let (addr, _stop) = server(ConnectionLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            max_connections: 64,
            max_connections_per_client: 64,
        });
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nhost: local").unwrap();
        let mut slow_body = std::net::TcpStream::connect(addr).unwrap();
        slow_body
            .write_all(b"POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\nab")
            .unwrap();
        assert!(get(addr).ends_with("ok"), "served while they wait");
        for (what, s) in [
            ("silent", &mut silent),
            ("half a head", &mut half),
            ("a body that stops", &mut slow_body),
        ] {
            assert!(
                closed_within(s, Duration::from_secs(8)),
                "{what}: still open"
            );
        }
        assert!(get(addr).ends_with("ok"));
    }

    #[test]
    fn connections_past_the_limit_get_a_503_in_json_and_the_open_ones_are_served() {
        let (addr, _stop) = server(ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 3,
            max_connections_per_client: 64,
        });
        let mut held: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // The server counts a connection once it accepted it.
        std::thread::sleep(Duration::from_millis(300));
        let refused = get(addr);
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        let body = refused.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("http.max_connections")
        );
        // A held connection still gets its answer, and frees its place.
        let first = &mut held[0];
        first
            .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        assert!(answer.ends_with("ok"), "{answer}");
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        assert!(get(addr).ends_with("ok"));
    }

    #[test]
    fn one_address_cannot_take_every_place() {
        let (addr, _stop) = server(ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 10,
            max_connections_per_client: 2,
        });
        let held: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let refused = get(addr);
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("max_connections_per_client"), "{refused}");
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            get(addr).ends_with("ok"),
            "places come back when connections close"
        );
    }
}
