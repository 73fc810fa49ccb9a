//! Config of the HTTP server: `[http]`.

use crate::config::ConfigError;
use crate::config::validate::{at_most, invalid};
use serde::{Deserialize, Serialize};

/// The HTTP server: dashboard, `/api`, `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where `bellwether run` serves the live dashboard (/), its JSON feed
    /// (/api/snapshot, /api/events) and Prometheus metrics (/metrics); ""
    /// serves nothing. `bellwether demo --serve ADDR` serves the demo.
    pub listen: String,
    /// Bearer token of the changing requests (POST /api/outcomes): at least 16
    /// characters; "" refuses them all. Better given in the environment:
    /// BELLWETHER__HTTP__TOKEN.
    #[serde(default)]
    pub token: String,
    /// Host names the server answers (the Host header) besides IP addresses and
    /// localhost: a page on another site that rebinds its name to this machine
    /// is refused. Changing requests and /api/sql are also refused from a
    /// browser page of another origin.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds a connection may take to send a request head (or its next one,
    /// when kept alive); then it is closed.
    #[serde(default = "header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive.
    #[serde(default = "body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Connections open at once (dashboards' live feeds included); more are
    /// answered 503 and closed.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// Of those, open at once from one IP address.
    #[serde(default = "max_connections_per_client")]
    pub max_connections_per_client: usize,
}

fn max_connections_per_client() -> usize {
    64
}

fn header_timeout_secs() -> u64 {
    10
}

fn body_timeout_secs() -> u64 {
    30
}

fn max_connections() -> usize {
    256
}

impl HttpConfig {
    /// Checks what the types cannot: the error names the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let listen = self.listen.trim();
        if !listen.is_empty()
            && listen
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(invalid(
                "http.listen",
                format!(
                    "`{listen}` is not host:port (e.g. 127.0.0.1:9464), nor \"\" for no server"
                ),
            ));
        }
        let token = &self.token;
        if !token.is_empty() && (token.len() < 16 || token.chars().any(char::is_whitespace)) {
            return Err(invalid(
                "http.token",
                "use at least 16 characters and no spaces (or \"\" to refuse every change)",
            ));
        }
        at_most(
            "http.header_timeout_secs",
            self.header_timeout_secs,
            1,
            3_600,
        )?;
        at_most("http.body_timeout_secs", self.body_timeout_secs, 1, 3_600)?;
        at_most(
            "http.max_connections",
            self.max_connections as u64,
            1,
            100_000,
        )?;
        Ok(())
    }
}
