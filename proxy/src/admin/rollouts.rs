//! The admin endpoints of rollouts and of where routes stand:
//! `GET /status`, `GET /rollouts`, `GET /rollouts/{name}` and
//! `POST /rollouts/{name}/{start|pause|resume|abort|promote}` (with the
//! token, like every change).

use http::{Response, StatusCode};
use serde_json::json;

use super::{AdminApp, json_response};
use crate::changes::{Initiator, Requester};
use crate::rollout::commands::{Command, CommandError};

/// The body of a rollout command.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CommandBody {
    reason: String,
    actor: String,
}

/// `/rollouts/NAME` or `/rollouts/NAME/COMMAND`, split.
pub(super) fn rollout_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/rollouts/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some((rest, None)),
        Some((name, command)) if !name.is_empty() && !command.contains('/') => {
            Some((name, Some(command)))
        }
        _ => None,
    }
}

impl AdminApp {
    /// `GET /status`: every route's stage, canary, rollout, guard, verdict
    /// and share on new, and the total.
    pub(super) async fn status(&self) -> Response<Vec<u8>> {
        let status = self.overview.status(&self.writer).await;
        json_response(
            StatusCode::OK,
            serde_json::to_value(&status).unwrap_or_default(),
        )
    }

    /// `GET /rollouts`: every route with a `rollout:` block.
    pub(super) fn rollouts(&self) -> Response<Vec<u8>> {
        let rollouts = &self.overview.rollouts;
        json_response(
            StatusCode::OK,
            json!({
                "version": self.live.current().version,
                "driven_here": rollouts.is_driving(),
                "store_error": rollouts.store_error(),
                "rollouts": rollouts.views(),
            }),
        )
    }

    /// `GET /rollouts/NAME`.
    pub(super) fn rollout(&self, name: &str) -> Response<Vec<u8>> {
        let table = self.live.current();
        match table.config().route(name) {
            None => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no route named {name:?}")}),
            ),
            Some(r) if r.rollout.is_none() => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("route {name:?} has no rollout: block")}),
            ),
            Some(_) => json_response(
                StatusCode::OK,
                serde_json::to_value(self.overview.rollouts.view(name)).unwrap_or_default(),
            ),
        }
    }

    /// `POST /rollouts/NAME/COMMAND` `{"reason": "...", "actor": "..."}`.
    pub(super) async fn rollout_command(
        &self,
        name: &str,
        command: &str,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        let Some(command) = Command::parse(command) else {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no rollout command {command:?} (start, pause, resume, abort, promote)")}),
            );
        };
        let body: CommandBody = if body.is_empty() {
            CommandBody::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(b) => b,
                Err(e) => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("body: {e}")}),
                    );
                }
            }
        };
        let who = Requester {
            actor: if body.actor.is_empty() {
                "admin API".into()
            } else {
                body.actor
            },
            reason: if body.reason.is_empty() {
                "no reason given".into()
            } else {
                body.reason
            },
            by: Initiator::Person,
        };
        match self.overview.rollouts.command(name, command, &who).await {
            Ok(outcome) => json_response(
                StatusCode::OK,
                serde_json::to_value(&outcome).unwrap_or_default(),
            ),
            Err(e) => {
                let status = match &e {
                    CommandError::UnknownRoute(_) | CommandError::NoRollout(_) => {
                        StatusCode::NOT_FOUND
                    }
                    CommandError::Refused(_) | CommandError::Busy => StatusCode::CONFLICT,
                    CommandError::NoStore(_) => StatusCode::SERVICE_UNAVAILABLE,
                    CommandError::Change(_) => StatusCode::UNPROCESSABLE_ENTITY,
                };
                json_response(status, json!({"error": e.to_string()}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rollout_path;

    #[test]
    fn rollout_paths_split_into_route_and_command() {
        assert_eq!(rollout_path("/rollouts/orders"), Some(("orders", None)));
        assert_eq!(
            rollout_path("/rollouts/orders/start"),
            Some(("orders", Some("start")))
        );
        for bad in [
            "/rollouts/",
            "/rollouts//start",
            "/rollouts/a/b/c",
            "/rollout/a",
        ] {
            assert_eq!(rollout_path(bad), None, "{bad}");
        }
    }
}
