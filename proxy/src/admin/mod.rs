//! The admin listener (loopback by default): health, readiness, metrics, the
//! live route table, configuration changes, rollouts and replay runs. Reading is open; every change
//! needs the bearer token named by `admin.token_env`, and with no token
//! configured changes are refused (403).

pub mod auth;
pub mod replays;
pub mod rollouts;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::changes::reload::ReloadTrigger;
use crate::changes::{ChangeError, ChangeOutcome, ChangeRequest, Changes, Requester};
use crate::live::Live;
use crate::report::{self, ReportError, ReportRequest};
use auth::Access;
use shadow_diff::report::html;
use shadow_diff::{DiffQuery, StoreWriter, Verdict};

/// The body of a change request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ChangeBody {
    percent: Option<f64>,
    routes: Vec<String>,
    all: bool,
    tenant: Option<String>,
    to_version: Option<i64>,
    reason: String,
    actor: String,
}

impl ChangeBody {
    fn requester(&self) -> Requester {
        Requester {
            actor: if self.actor.is_empty() {
                "admin API".into()
            } else {
                self.actor.clone()
            },
            reason: if self.reason.is_empty() {
                "no reason given".into()
            } else {
                self.reason.clone()
            },
            by: crate::changes::Initiator::Person,
        }
    }
}

/// Largest request body the admin API reads.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Whether the process is serving normally; false while shutting down, so a
/// load balancer probing `/readyz` drains it first.
#[derive(Debug, Default, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub struct AdminApp {
    live: Arc<Live>,
    changes: Arc<Changes>,
    overview: Arc<crate::status::Overview>,
    ready: Readiness,
    writer: StoreWriter,
    replays: crate::replay::Replays,
}

impl AdminApp {
    pub fn new(
        changes: Arc<Changes>,
        overview: Arc<crate::status::Overview>,
        ready: Readiness,
        writer: StoreWriter,
    ) -> AdminApp {
        let replays = crate::replay::Replays::new(
            changes.live().clone(),
            writer.clone(),
            changes.instance().to_string(),
        );
        AdminApp {
            live: changes.live().clone(),
            changes,
            overview,
            ready,
            writer,
            replays,
        }
    }

    async fn change(
        &self,
        job: impl FnOnce(&Changes) -> Result<ChangeOutcome, ChangeError> + Send + 'static,
    ) -> Response<Vec<u8>> {
        let changes = self.changes.clone();
        match tokio::task::spawn_blocking(move || job(&changes)).await {
            Ok(Ok(outcome)) => json_response(
                StatusCode::OK,
                serde_json::to_value(&outcome).unwrap_or_default(),
            ),
            Ok(Err(ChangeError::UnknownRoute(r))) => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no route named {r:?}")}),
            ),
            Ok(Err(ChangeError::NoSuchVersion(v))) => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("version {v} is not in the history")}),
            ),
            Ok(Err(e @ ChangeError::NoHistory(_))) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string()}),
            ),
            Ok(Err(e)) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": e.to_string()}),
            ),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            ),
        }
    }

    /// `POST /routes/NAME/canary` `{"percent": 10, "reason": "...", "actor": "..."}`
    async fn canary(&self, route: &str, body: &[u8]) -> Response<Vec<u8>> {
        let request: ChangeBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("body: {e}")}),
                );
            }
        };
        let percent = match request.percent.map(crate::config::Percent::new) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("percent: {e}")}),
                );
            }
            None => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "percent is missing"}),
                );
            }
        };
        let who = request.requester();
        let change = ChangeRequest::Canary {
            route: route.to_string(),
            percent,
        };
        self.change(move |changes| changes.request(&change, &who))
            .await
    }

    /// `POST /rollback` `{"routes": [...] | "all": true, "tenant": "...", "reason": "...", "actor": "..."}`
    /// or `{"to_version": N, ...}`.
    async fn rollback(&self, body: &[u8]) -> Response<Vec<u8>> {
        let request: ChangeBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("body: {e}")}),
                );
            }
        };
        let who = request.requester();
        if let Some(version) = request.to_version {
            return self
                .change(move |changes| changes.restore(version, &who))
                .await;
        }
        let routes = if request.all {
            self.live
                .current()
                .config()
                .routes
                .iter()
                .map(|r| r.name.to_string())
                .collect()
        } else {
            request.routes.clone()
        };
        if routes.is_empty() {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "name the routes to roll back, or all: true"}),
            );
        }
        let change = ChangeRequest::Rollback {
            routes,
            tenant: request.tenant.clone(),
        };
        self.change(move |changes| changes.request(&change, &who))
            .await
    }

    /// `GET /history?limit=N`: versions and audit rows, newest first.
    async fn history(&self, query: &str) -> Response<Vec<u8>> {
        // The history the changes are recorded in: opened (and migrated)
        // once, when the store connected, not on every request.
        let Some(h) = self.changes.history() else {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the store is not connected; history lives there"}),
            );
        };
        let limit = report::parse_query(query)
            .into_iter()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(20i64)
            .clamp(1, 1000);
        let result = async {
            Ok::<_, rollback::history::HistoryError>((
                h.versions(limit).await?,
                h.audit_rows(limit).await?,
            ))
        }
        .await;
        match result {
            Ok((versions, audit)) => json_response(
                StatusCode::OK,
                json!({"current": self.live.current().version, "versions": versions, "audit": audit}),
            ),
            Err(e) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string()}),
            ),
        }
    }

    /// The report pages and their JSON: `/report`, `/report/route/NAME`,
    /// `/api/report`, `/api/diffs`.
    async fn report(&self, path: &str, query: &str) -> Response<Vec<u8>> {
        let Some(store) = self.writer.store() else {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the diff store is not connected (see the proxy log); reports need it"}),
            );
        };
        let table = self.live.current();
        let thresholds = report::thresholds(table.config());
        let mut request = match ReportRequest::from_query(query) {
            Ok(r) => r,
            Err(e) => return json_response(StatusCode::BAD_REQUEST, json!({"error": e})),
        };
        let route_page = path.strip_prefix("/report/route/").map(|r| {
            report::parse_query(&format!("r={r}"))
                .pop()
                .map(|(_, v)| v)
                .unwrap_or_default()
        });
        if let Some(r) = &route_page {
            request.route = Some(r.clone());
        }
        if path == "/api/diffs" {
            return self.diffs(&store, query).await;
        }
        let mut report = match report::build(&store, &request, &thresholds).await {
            Ok(r) => r,
            Err(ReportError::Request(e)) => {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": e}));
            }
            Err(e) => {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": format!("reading the diff store failed: {e}")}),
                );
            }
        };
        report::add_stages(&mut report, table.config());
        if path == "/api/report" {
            return json_response(
                StatusCode::OK,
                serde_json::to_value(&report).unwrap_or_default(),
            );
        }
        let since = request
            .since
            .clone()
            .unwrap_or_else(|| report::DEFAULT_WINDOW.to_string());
        let body = match route_page {
            None => {
                // The form's route choice narrows the summary; links keep the
                // other filters.
                let links_query = ReportRequest {
                    route: None,
                    ..request.clone()
                };
                html::render(
                    &report,
                    &html::Links::Server {
                        query: links_query.query(),
                    },
                    &report::report_routes(table.config()),
                    &since,
                    request.time,
                )
            }
            Some(name) => {
                let back = ReportRequest {
                    route: None,
                    page: 0,
                    ..request.clone()
                };
                match html::render_route(&report, &name, request.page, &back.query(), request.time)
                {
                    Some(page) => page,
                    None => {
                        return html_response(
                            StatusCode::NOT_FOUND,
                            format!(
                                "<!doctype html><title>No comparisons</title><p>No shadow or replayed comparisons for route {} in this window. <a href=\"/report\">All routes</a></p>",
                                html::escape(&name)
                            ),
                        );
                    }
                }
            }
        };
        html_response(StatusCode::OK, body)
    }

    async fn diffs(
        &self,
        store: &shadow_diff::DiffAndHistoryStore,
        query: &str,
    ) -> Response<Vec<u8>> {
        let mut q = DiffQuery {
            limit: 50,
            ..DiffQuery::default()
        };
        let now = report::now_ms();
        for (k, v) in report::parse_query(query) {
            match k.as_str() {
                "route" => q.route = Some(v),
                "tenant" => q.tenant = Some(v),
                "field" => q.field = Some(v),
                "verdict" => q.verdict = Verdict::parse(&v),
                "source" => match report::parse_source(&v) {
                    Ok(source) => q.source = source,
                    Err(e) => return json_response(StatusCode::BAD_REQUEST, json!({"error": e})),
                },
                "since" => match crate::config::units::parse_duration(&v) {
                    Ok(d) => q.since_ms = Some(now - d.as_millis() as i64),
                    Err(e) => return json_response(StatusCode::BAD_REQUEST, json!({"error": e})),
                },
                "limit" => q.limit = v.parse().unwrap_or(50).clamp(1, 500),
                "offset" => q.offset = v.parse().unwrap_or(0).max(0),
                _ => {}
            }
        }
        match store.diffs(&q).await {
            Ok(rows) => json_response(
                StatusCode::OK,
                json!({"diffs": rows, "limit": q.limit, "offset": q.offset}),
            ),
            Err(e) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": format!("reading the diff store failed: {e}")}),
            ),
        }
    }

    fn token(&self) -> Option<String> {
        let table = self.live.current();
        let name = table.config().admin.token_env.as_deref()?;
        std::env::var(name).ok().filter(|t| !t.is_empty())
    }

    /// `None` when the request may make changes, else the refusal to send.
    fn refusal(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        let mut values = session
            .req_header()
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter();
        let header = values.next().map(|v| v.as_bytes());
        // Authorization is a singleton: with two, which one a proxy in front
        // checked is anyone's guess, so neither counts.
        let header = if values.next().is_some() {
            Some(&b""[..])
        } else {
            header
        };
        match auth::check(self.token().as_deref(), header) {
            Access::Granted => None,
            Access::Disabled => Some(json_response(
                StatusCode::FORBIDDEN,
                json!({"error": "changes through the admin API are disabled: set admin.token_env in routes.yaml and that environment variable"}),
            )),
            Access::Denied => {
                let mut r = json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "missing or wrong bearer token"}),
                );
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                Some(r)
            }
        }
    }

    async fn reload(&self) -> Response<Vec<u8>> {
        let changes = self.changes.clone();
        let result =
            tokio::task::spawn_blocking(move || changes.reload(ReloadTrigger::Admin)).await;
        match result {
            Ok(Ok(outcome)) => json_response(
                StatusCode::OK,
                json!({
                    "version": outcome.version,
                    "changed": outcome.changed,
                    "restart_required": outcome.restart_required,
                }),
            ),
            Ok(Err(errors)) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": "configuration rejected; the previous version keeps serving",
                    "version": self.live.current().version,
                    "errors": errors.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                    // The same errors with their line and column in the file.
                    "details": errors.errors.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
                }),
            ),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("reload failed: {e}")}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let query = session
            .req_header()
            .uri
            .query()
            .unwrap_or_default()
            .to_string();
        // Bodies are small JSON documents; read (and bound) them so the
        // connection can be reused.
        let body = match read_body(session).await {
            Ok(b) => b,
            Err(resp) => return *resp,
        };
        match (path.as_str(), &method) {
            ("/healthz", &Method::GET) => text_response(StatusCode::OK, "ok\n"),
            ("/readyz", &Method::GET) => {
                if self.ready.get() {
                    text_response(StatusCode::OK, "ready\n")
                } else {
                    text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
            ("/metrics", &Method::GET) => {
                let mut r = Response::new(self.live.metrics().render());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                finish(r)
            }
            ("/routes", &Method::GET) => {
                let table = self.live.current();
                let file = self.live.config_path().display().to_string();
                json_response(StatusCode::OK, views::routes(&table, &file))
            }
            ("/reload", &Method::POST) => match self.refusal(session) {
                None => self.reload().await,
                Some(refusal) => refusal,
            },
            ("/report" | "/api/report" | "/api/diffs", &Method::GET) => {
                self.report(&path, &query).await
            }
            (p, &Method::GET) if p.starts_with("/report/route/") => {
                self.report(&path, &query).await
            }
            ("/rollback", &Method::POST) => match self.refusal(session) {
                None => self.rollback(&body).await,
                Some(refusal) => refusal,
            },
            (p, &Method::POST) if p.starts_with("/routes/") && p.ends_with("/canary") => {
                match self.refusal(session) {
                    None => {
                        let name = p
                            .trim_start_matches("/routes/")
                            .trim_end_matches("/canary")
                            .to_string();
                        self.canary(&name, &body).await
                    }
                    Some(refusal) => refusal,
                }
            }
            ("/history", &Method::GET) => self.history(&query).await,
            ("/status", &Method::GET) => self.status().await,
            ("/rollouts", &Method::GET) => self.rollouts(),
            (p, m) if rollouts::rollout_path(p).is_some() => match (rollouts::rollout_path(p), m) {
                (Some((name, None)), &Method::GET) => self.rollout(name),
                (Some((name, Some(command))), &Method::POST) => match self.refusal(session) {
                    None => self.rollout_command(name, command, &body).await,
                    Some(refusal) => refusal,
                },
                (Some((_, None)), _) => method_not_allowed("GET"),
                _ => method_not_allowed("POST"),
            },
            ("/replays", &Method::GET) => self.replays(),
            (p, &Method::POST) if p.starts_with("/routes/") && p.ends_with("/replay") => {
                match self.refusal(session) {
                    None => {
                        let name = p
                            .trim_start_matches("/routes/")
                            .trim_end_matches("/replay")
                            .to_string();
                        self.start_replay(&name, &body).await
                    }
                    Some(refusal) => refusal,
                }
            }
            (p, m) if replays::replay_path(p).is_some() => match (replays::replay_path(p), m) {
                (Some((id, None)), &Method::GET) => self.replay(id),
                (Some((id, Some(action))), &Method::POST) => match self.refusal(session) {
                    None => self.replay_action(id, action),
                    Some(refusal) => refusal,
                },
                (Some((_, None)), _) => method_not_allowed("GET"),
                _ => method_not_allowed("POST"),
            },
            (p, _) if p.starts_with("/routes/") && p.ends_with("/replay") => {
                method_not_allowed("POST")
            }
            ("/reload" | "/rollback", _) => method_not_allowed("POST"),
            (p, _) if p.starts_with("/routes/") && p.ends_with("/canary") => {
                method_not_allowed("POST")
            }
            (
                "/healthz" | "/readyz" | "/metrics" | "/routes" | "/history" | "/report"
                | "/api/report" | "/api/diffs" | "/status" | "/rollouts" | "/replays",
                _,
            ) => method_not_allowed("GET"),
            (p, _) if p.starts_with("/report/route/") => method_not_allowed("GET"),
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no admin endpoint {path}")}),
            ),
        }
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, Box<Response<Vec<u8>>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ADMIN_BODY {
                    return Err(Box::new(json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        json!({"error": "request body over 64 KiB"}),
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Box::new(json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("could not read the request body: {e}")}),
                )));
            }
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Vec<u8>> {
    let mut r = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": format!("use {allow}")}),
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&body).expect("JSON values serialize");
    bytes.push(b'\n');
    let mut r = Response::new(bytes);
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    finish(r)
}

fn html_response(status: StatusCode, body: String) -> Response<Vec<u8>> {
    let mut r = Response::new(body.into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page is self-contained: nothing may load from elsewhere. The
    // pages carry the same policy in a <meta>, for when they are saved.
    r.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(html::CONTENT_SECURITY_POLICY),
    );
    finish(r)
}

fn text_response(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut r = Response::new(body.as_bytes().to_vec());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    finish(r)
}

fn finish(mut r: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
