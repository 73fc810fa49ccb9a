//! What the read commands (`rollout list|status`, `patch list`, `vm list`)
//! share: the running bellwether's address, its token, and one GET.

use super::Global;
use anyhow::{Context, Result, bail};
use clap::Args;

/// Where the running bellwether answers.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The running bellwether's HTTP address (`bellwether run`, or `demo
    /// --serve`). Default: http.listen of the config. The token, when
    /// the server wants one, comes from BELLWETHER_TOKEN (or
    /// BELLWETHER__HTTP__TOKEN).
    #[arg(long)]
    pub url: Option<String>,
}

impl ApiArgs {
    /// The base URL, ending in `/`.
    fn base(&self, global: &Global) -> Result<String> {
        let url = match &self.url {
            Some(url) => url.clone(),
            None => {
                let listen = global.load()?.http.listen;
                anyhow::ensure!(
                    !listen.is_empty(),
                    "--url: no address given and http.listen of the config is empty"
                );
                listen
            }
        };
        let url = if url.contains("://") {
            url
        } else {
            format!("http://{url}")
        };
        Ok(format!("{}/", url.trim_end_matches('/')))
    }

    /// GETs `path` (e.g. `api/rollouts`) as JSON; a 4xx or 5xx is an error
    /// carrying the server's message.
    pub fn get<T: serde::de::DeserializeOwned>(&self, global: &Global, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base(global)?);
        let mut request = ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build();
        if let Some(token) = ["BELLWETHER_TOKEN", "BELLWETHER__HTTP__TOKEN"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|t| !t.is_empty()))
        {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().with_context(|| {
            format!("cannot reach bellwether at {url} (is `bellwether run` or `demo --serve` running there? --url)")
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{url}: reading the answer"))?;
        if status >= 400 {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            bail!("{url}: {status}: {message}");
        }
        serde_json::from_str(&body).with_context(|| format!("{url}: not the JSON expected"))
    }
}
