//! The HTTP server: the dashboard (page, script and styles built into the
//! binary, so it works with no internet), its live feed (server-sent
//! events), a JSON snapshot, `/metrics` for Prometheus and read-only SQL
//! over the history (`/api/sql`).

use super::Monitor;
use crate::history::sql;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::path::PathBuf;
use thiserror::Error;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
/// uPlot, vendored (assets/vendor/uplot/README.md: version, size, licence).
const UPLOT_JS: &str = include_str!("assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/vendor/uplot/uPlot.min.css");

/// The server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The address is taken or invalid.
    #[error("http.listen: cannot listen on `{addr}`: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// A running server; it stops when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `monitor` on `addr` (e.g. `127.0.0.1:9464`; port 0 picks a free
/// one) from a thread of its own; `history`, the history folder `/api/sql`
/// queries (none: it answers 404). Read-only: changes are refused.
pub fn serve(
    addr: &str,
    monitor: Monitor,
    history: Option<PathBuf>,
) -> Result<Server, ServerError> {
    serve_with(
        addr,
        AppState {
            history,
            ..AppState::new(monitor)
        },
    )
}

/// As [`serve`], with everything `state` gives: with `control`, requests
/// bearing its token may send control messages (`POST /api/outcomes`);
/// with `inventory`, the groups API answers.
pub fn serve_with(addr: &str, state: AppState) -> Result<Server, ServerError> {
    let limits = state.limits;
    serve_app(addr, limits, router(state))
}

/// Serves `app` on `addr` from a thread of its own, its connections
/// bounded by `limits`.
pub fn serve_app(
    addr: &str,
    limits: super::listener::ConnectionLimits,
    app: Router,
) -> Result<Server, ServerError> {
    let bind_error = |reason: String| ServerError::Bind {
        addr: addr.to_string(),
        reason,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| bind_error(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| bind_error(e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| bind_error(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| bind_error(e.to_string()))?;
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("http server: {e}");
                        return;
                    }
                };
                super::listener::serve(listener, app, limits, async {
                    let _ = stopped.await;
                })
                .await;
            })
        })
        .map_err(|e| bind_error(e.to_string()))?;
    Ok(Server {
        addr: local,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The dashboard's and Prometheus' source.
    pub monitor: Monitor,
    /// The history folder `/api/sql` queries.
    pub history: Option<PathBuf>,
    /// Where accepted changes go (none: changes are refused).
    pub control: Option<super::outcomes::ControlAccess>,
    /// The approval rules `POST /api/patches` evaluates (none: it answers 503).
    pub approval: Option<crate::approval::rules::ApprovalConfig>,
    /// Bounds of `/api/sql` queries.
    pub sql: sql::SqlConfig,
    /// Host names answered besides IP addresses and localhost.
    pub hosts: super::guard::AllowedHosts,
    /// Timeouts and the most connections open at once.
    pub limits: super::listener::ConnectionLimits,
    /// What `GET /api/waves` plans with (none: it answers 404).
    pub waves: Option<super::waves::WaveSettings>,
    /// The Prometheus remote-write receiver (none: `/api/v1/write` answers 404).
    pub remote_write: Option<std::sync::Arc<crate::remote_write::Receiver>>,
}

impl AppState {
    /// A read-only server of `monitor` with the default limits: no
    /// history, no changes, no approval rules, no wave preview.
    pub fn new(monitor: Monitor) -> AppState {
        AppState {
            monitor,
            history: None,
            control: None,
            approval: None,
            sql: sql::SqlConfig::default(),
            hosts: Default::default(),
            limits: Default::default(),
            waves: None,
            remote_write: None,
        }
    }
}

/// `/api/sql` queries running now.
static QUERIES_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Holds one of the `sql.max_concurrent` places while a query runs.
struct QuerySlot;

impl QuerySlot {
    fn take(max: usize) -> Option<QuerySlot> {
        use std::sync::atomic::Ordering;
        QUERIES_RUNNING
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| QuerySlot)
    }
}

impl Drop for QuerySlot {
    fn drop(&mut self) {
        QUERIES_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl axum::extract::FromRef<AppState> for Monitor {
    fn from_ref(state: &AppState) -> Monitor {
        state.monitor.clone()
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css", STYLE) }),
        )
        .route(
            "/assets/uplot.js",
            get(|| async { asset("text/javascript", UPLOT_JS) }),
        )
        .route(
            "/assets/uplot.css",
            get(|| async { asset("text/css", UPLOT_CSS) }),
        )
        .route("/api/snapshot", get(snapshot))
        .route("/api/events", get(super::live::events))
        .route("/metrics", get(metrics))
        .route("/api/sql", get(sql_get).post(sql_post))
        .route(
            "/api/outcomes",
            axum::routing::post(super::outcomes::post_outcome),
        )
        .route("/api/rollouts", get(super::rollouts::list))
        .route("/api/rollouts/{rollout_id}", get(super::rollouts::status))
        .route("/api/rollouts/{rollout_id}/report", get(super::report::get))
        .route(
            "/api/rollouts/{rollout_id}/vms/{vm_id}",
            get(super::drilldown::get),
        )
        .route(
            "/api/rollouts/{rollout_id}/{action}",
            axum::routing::post(super::rollouts::post_control),
        )
        .route(
            "/api/groups",
            get(super::groups::list).post(super::inventory::define_group),
        )
        .route(
            "/api/groups/{name}",
            axum::routing::delete(super::inventory::remove_group),
        )
        .route(
            "/api/vms",
            get(super::inventory::list).post(super::inventory::register),
        )
        .route(
            "/api/vms/{vm_id}",
            axum::routing::delete(super::inventory::remove),
        )
        .route(
            "/api/patches",
            get(super::patches::list).post(super::patches::submit),
        )
        .route(
            "/api/approval/rules",
            get(super::patches::rules).put(super::patches::put_rules),
        )
        .route(
            "/api/patches/{patch_id}/approve",
            axum::routing::post(super::patches::approve),
        )
        .route(
            "/api/groups/preview",
            axum::routing::post(super::groups::preview),
        )
        .route("/api/waves", get(super::waves::preview))
        .route(
            super::content::REMOTE_WRITE_PATH,
            axum::routing::post(remote_write),
        )
        .route("/api/openapi.json", get(super::openapi::document))
        .fallback(not_found);
    with_layers(routes, state)
}

/// The routes of `bellwether gateway`: remote write and `/metrics`.
pub fn gateway_router(state: AppState) -> Router {
    let limit = state
        .remote_write
        .as_ref()
        .map_or(1 << 20, |r| r.max_body_bytes());
    let routes = Router::new().route("/metrics", get(metrics)).route(
        super::content::REMOTE_WRITE_PATH,
        axum::routing::post(remote_write).layer(axum::extract::DefaultBodyLimit::max(limit)),
    );
    with_layers(routes, state)
}

/// Every route's guards: JSON errors, hosts, content types, panics.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            super::content::panicked,
        ))
        .layer(axum::middleware::from_fn(super::content::check))
        .layer(axum::middleware::from_fn_with_state(
            state.hosts.clone(),
            super::guard::check,
        ))
        .layer(axum::middleware::from_fn(super::content::json_errors))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found(uri: Uri) -> Response {
    let error = format!(
        "no such page: {}; try / (dashboard), /metrics, /api/snapshot, /api/events, /api/sql?q=SELECT..., /api/groups, /api/waves, /api/patches or /api/openapi.json (the API's description)",
        uri.path()
    );
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": error })),
    )
        .into_response()
}

async fn remote_write(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let Some(receiver) = &state.remote_write else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "remote write is off here: set remote_write.enabled = true for `bellwether run`, or run `bellwether gateway`"
            })),
        )
            .into_response();
    };
    let (parts, body) = request.into_parts();
    receiver.receive_body(&parts.headers, body).await
}

async fn snapshot(State(monitor): State<Monitor>) -> Response {
    Json(monitor.snapshot()).into_response()
}

async fn metrics(State(monitor): State<Monitor>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        monitor.telemetry().render(),
    )
        .into_response()
}

/// Query string of `GET /api/sql`.
#[derive(Debug, serde::Deserialize)]
struct SqlParams {
    /// The query.
    q: Option<String>,
    /// `json` (default: an array of row objects) or `csv`.
    format: Option<String>,
}

/// `GET /api/sql?q=SELECT...&format=json|csv`.
async fn sql_get(State(state): State<AppState>, Query(params): Query<SqlParams>) -> Response {
    match params.q {
        Some(q) => run_sql(state.history, state.sql, q, params.format).await,
        None => bad_request("missing the query: /api/sql?q=SELECT ... (or POST it as the body)"),
    }
}

/// `POST /api/sql[?format=csv]` with the query as the body.
async fn sql_post(
    State(state): State<AppState>,
    Query(params): Query<SqlParams>,
    body: String,
) -> Response {
    if body.trim().is_empty() {
        return bad_request("empty body: POST the SQL query as the request body");
    }
    run_sql(state.history, state.sql, body, params.format).await
}

/// A JSON request body, or what is wrong with it (for a 400).
pub(super) fn json_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| format!("body: {e}"))
}

/// [`json_body`] where the body may be left out: empty is `T::default()`.
pub(super) fn optional_json_body<T: serde::de::DeserializeOwned + Default>(
    body: &str,
) -> Result<T, String> {
    if body.trim().is_empty() {
        Ok(T::default())
    } else {
        json_body(body)
    }
}

/// A 400 with `{"error": message}`.
pub(super) fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Runs the query on a thread of its own (a long scan must not hold up the
/// dashboard's feed) and answers with the rows or a 4xx saying why not.
async fn run_sql(
    history: Option<PathBuf>,
    limits: sql::SqlConfig,
    query: String,
    format: Option<String>,
) -> Response {
    let csv = match format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return bad_request(&format!("format={other} is not one of json, csv"));
        }
    };
    let Some(root) = history else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "this process keeps no history (history.dir is empty)" })),
        )
            .into_response();
    };
    let Some(slot) = QuerySlot::take(limits.max_concurrent) else {
        return sql_error(&sql::SqlError::Busy(limits.max_concurrent));
    };
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("sql".into())
        .spawn(move || {
            let _slot = slot;
            let runtime = match sql::runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done.send(Err(sql::SqlError::Query(e.to_string())));
                    return;
                }
            };
            // A client that went away drops the answer's receiver.
            let answer = sql::query_bounded(&runtime, &root, &query, &limits, || done.is_closed())
                .and_then(|batches| {
                    if csv {
                        sql::render(&batches, sql::OutputFormat::Csv)
                    } else {
                        sql::render_json_array(&batches)
                    }
                });
            let _ = done.send(answer);
            // A query stopped on time may still hold a worker until its next
            // await. The client has its answer; this thread waits for the
            // worker, holding the query's place, so work that cannot be
            // stopped at once never piles up past sql.max_concurrent.
            drop(runtime);
        });
    if let Err(e) = spawned {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": format!("no thread for the query: {e}") })),
        )
            .into_response();
    }
    match result.await {
        Ok(Ok(body)) => {
            let content_type = if csv {
                "text/csv; charset=utf-8"
            } else {
                "application/json"
            };
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(Err(e)) => sql_error(&e),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": "the query thread died" })),
        )
            .into_response(),
    }
}

/// A refused or failed query: 503 when trying again later may work, 501
/// in a build without SQL, 400 otherwise.
fn sql_error(e: &sql::SqlError) -> Response {
    match e {
        sql::SqlError::NotBuilt => (
            StatusCode::NOT_IMPLEMENTED,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        sql::SqlError::Busy(_) | sql::SqlError::Timeout(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        _ => bad_request(&e.to_string()),
    }
}
