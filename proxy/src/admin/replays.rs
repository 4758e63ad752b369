//! The admin endpoints of replay runs: `POST /routes/{name}/replay` starts
//! one (with the token, like every change: it sends traffic), `GET /replays`
//! lists this
//! proxy's runs, `GET /replays/{id}` is one run's progress and
//! `POST /replays/{id}/cancel` stops it after the requests in flight.

use http::{Response, StatusCode};
use serde_json::json;

use super::{AdminApp, json_response};
use crate::replay::{ReplayError, ReplayRequest};

/// `/replays/ID` or `/replays/ID/cancel`, split.
pub(super) fn replay_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/replays/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some((rest, None)),
        Some((id, action)) if !id.is_empty() && !action.contains('/') => Some((id, Some(action))),
        _ => None,
    }
}

fn error_response(e: &ReplayError) -> Response<Vec<u8>> {
    let status = match e {
        ReplayError::UnknownRoute(_) | ReplayError::UnknownRun(_) => StatusCode::NOT_FOUND,
        ReplayError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ReplayError::NoStore => StatusCode::SERVICE_UNAVAILABLE,
        ReplayError::Unresolved(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    json_response(status, json!({"error": e.to_string()}))
}

impl AdminApp {
    /// `POST /routes/NAME/replay` `{"since": "24h", "to": "new", ...}`.
    pub(super) async fn start_replay(&self, route: &str, body: &[u8]) -> Response<Vec<u8>> {
        let parsed = if body.is_empty() {
            Ok(ReplayRequest::default())
        } else {
            serde_json::from_slice(body)
        };
        let request: ReplayRequest = match parsed {
            Ok(r) => r,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("body: {e}")}),
                );
            }
        };
        match self.replays.start(route, &request).await {
            Ok(view) => json_response(
                StatusCode::ACCEPTED,
                serde_json::to_value(&view).unwrap_or_default(),
            ),
            Err(e) => error_response(&e),
        }
    }

    /// `GET /replays`.
    pub(super) fn replays(&self) -> Response<Vec<u8>> {
        json_response(StatusCode::OK, json!({"runs": self.replays.views()}))
    }

    /// `GET /replays/ID`.
    pub(super) fn replay(&self, id: &str) -> Response<Vec<u8>> {
        match self.replays.run(id) {
            Some(handle) => json_response(
                StatusCode::OK,
                serde_json::to_value(handle.view()).unwrap_or_default(),
            ),
            None => error_response(&ReplayError::UnknownRun(id.to_string())),
        }
    }

    /// `POST /replays/ID/cancel`.
    pub(super) fn replay_action(&self, id: &str, action: &str) -> Response<Vec<u8>> {
        if action != "cancel" {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no replay action {action:?} (cancel)")}),
            );
        }
        match self.replays.cancel(id) {
            Ok(view) => json_response(
                StatusCode::OK,
                serde_json::to_value(&view).unwrap_or_default(),
            ),
            Err(e) => error_response(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replay_path;

    #[test]
    fn replay_paths_split_into_run_and_action() {
        assert_eq!(replay_path("/replays/r1"), Some(("r1", None)));
        assert_eq!(
            replay_path("/replays/r1/cancel"),
            Some(("r1", Some("cancel")))
        );
        for bad in ["/replays/", "/replays//cancel", "/replays/a/b/c"] {
            assert_eq!(replay_path(bad), None, "{bad}");
        }
    }
}
