//! What people ask of a rollout, through the admin API of any proxy:
//! `start`, `pause`, `resume`, `abort` (back to 0, as a rollback) and
//! `promote` (the next step now, gates skipped, audited as the person's
//! decision). Each reads the stored state afresh and writes it naming the
//! revision it read, so a command never silently undoes what another proxy
//! (or the driver) just did: it reads again and decides again.

use rollback::history::History;
use rollback::rollouts::{RolloutRecord, RolloutState};
use serde::Serialize;

use super::{Rollouts, STORE_CALL, record_at};
use crate::changes::{ChangeRequest, Initiator, Requester};
use crate::config::{Percent, RolloutPolicy};

/// What a person asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Start,
    Pause,
    Resume,
    Abort,
    Promote,
}

impl Command {
    pub const ALL: [Command; 5] = [
        Command::Start,
        Command::Pause,
        Command::Resume,
        Command::Abort,
        Command::Promote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Abort => "abort",
            Command::Promote => "promote",
        }
    }

    pub fn parse(text: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// What a command did.
#[derive(Debug, Clone, Serialize)]
pub struct CommandOutcome {
    pub route: String,
    pub state: RolloutState,
    pub step: String,
    /// False when there was nothing to do (`start` on a running rollout).
    pub changed: bool,
    pub message: String,
    /// The configuration version served after it, when it changed the canary.
    pub version: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no route named {0:?}")]
    UnknownRoute(String),
    #[error("route {0:?} has no rollout: block")]
    NoRollout(String),
    #[error("{0}")]
    Refused(String),
    #[error("the store is not connected or does not answer ({0}); rollouts are kept there")]
    NoStore(String),
    #[error("the rollout changed while the command ran, three times; try again")]
    Busy,
    #[error("{0}")]
    Change(String),
}

impl Rollouts {
    /// Runs `command` on `route`'s rollout for `who` (a person).
    pub async fn command(
        &self,
        route: &str,
        command: Command,
        who: &Requester,
    ) -> Result<CommandOutcome, CommandError> {
        let history = self
            .changes
            .history()
            .ok_or_else(|| CommandError::NoStore("not connected".into()))?;
        let _busy = self.busy.lock().await;
        for _ in 0..3 {
            let table = self.changes.live().current();
            let r = table
                .config()
                .route(route)
                .ok_or_else(|| CommandError::UnknownRoute(route.to_string()))?;
            let policy = r
                .rollout
                .clone()
                .ok_or_else(|| CommandError::NoRollout(route.to_string()))?;
            let stored = match tokio::time::timeout(STORE_CALL, history.rollout(route)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(CommandError::NoStore(e.to_string())),
                Err(_) => return Err(CommandError::NoStore("no answer".into())),
            };
            let ask = Ask {
                rollouts: self,
                history: &history,
                route,
                policy: &policy,
                canary: r.canary,
                version: table.version,
                stored: stored.as_ref(),
                who,
            };
            match ask.run(command).await? {
                Some(outcome) => return Ok(outcome),
                None => continue,
            }
        }
        Err(CommandError::Busy)
    }
}

/// One command against one read of the stored state.
struct Ask<'a> {
    rollouts: &'a Rollouts,
    history: &'a History,
    route: &'a str,
    policy: &'a RolloutPolicy,
    canary: Percent,
    version: u64,
    stored: Option<&'a RolloutRecord>,
    who: &'a Requester,
}

impl Ask<'_> {
    fn state(&self) -> RolloutState {
        self.stored.map_or(RolloutState::Idle, |r| r.state)
    }

    /// `Ok(None)`: the state changed under us; read again.
    async fn run(&self, command: Command) -> Result<Option<CommandOutcome>, CommandError> {
        let actor = self.who.actor.as_str();
        let why = self.who.reason.as_str();
        match command {
            Command::Start | Command::Resume if self.state().is_running() => {
                Ok(Some(self.unchanged(format!(
                    "the rollout of {} is already running ({} at {}%)",
                    self.route,
                    self.state(),
                    self.step()
                ))))
            }
            Command::Resume if self.state() != RolloutState::Held => {
                Err(CommandError::Refused(format!(
                    "the rollout of {} is {}, not held: `strangler rollout start {}` starts it",
                    self.route,
                    self.state(),
                    self.route
                )))
            }
            Command::Start | Command::Resume => {
                let verb = if command == Command::Start {
                    "started"
                } else {
                    "resumed"
                };
                let (state, reason) = match self.policy.next_step(self.canary) {
                    Some(next) => (
                        RolloutState::Waiting,
                        format!(
                            "{verb} by {actor} at {}% (next: {next}%): {why}",
                            self.canary
                        ),
                    ),
                    None => (
                        RolloutState::Done,
                        format!(
                            "{verb} by {actor}, but the canary ({}%) is at the last step",
                            self.canary
                        ),
                    ),
                };
                let record = record_at(self.route, state, self.canary, self.version, actor, reason);
                self.write(record, None).await
            }
            Command::Pause if !self.state().is_running() => Err(CommandError::Refused(format!(
                "the rollout of {} is {}, not running: nothing to pause",
                self.route,
                self.state()
            ))),
            Command::Pause => {
                let stored = self.stored.expect("a running rollout is stored");
                let record = RolloutRecord {
                    state: RolloutState::Held,
                    target: None,
                    reason: format!(
                        "paused by {actor}: {why}; `strangler rollout resume {}` continues",
                        self.route
                    ),
                    actor: actor.to_string(),
                    ..stored.clone()
                };
                self.write(record, None).await
            }
            Command::Abort => {
                // Stored first: the driver, the guard and this proxy's
                // observer must not take the rollback for a reason to hold.
                let record = record_at(
                    self.route,
                    RolloutState::RolledBack,
                    Percent::ZERO,
                    self.version,
                    actor,
                    format!("aborted by {actor}: {why}"),
                );
                let request = ChangeRequest::Rollback {
                    routes: vec![self.route.to_string()],
                    tenant: None,
                };
                let who = Requester {
                    reason: format!("rollout of {} aborted: {why}", self.route),
                    ..self.who.clone()
                };
                self.write(record, Some((request, who))).await
            }
            Command::Promote => {
                let Some(next) = self.policy.next_step(self.canary) else {
                    return Err(CommandError::Refused(format!(
                        "the canary of {} ({}%) is at the last step already",
                        self.route, self.canary
                    )));
                };
                let state = match self.policy.next_step(next) {
                    Some(_) => RolloutState::Waiting,
                    None => RolloutState::Done,
                };
                let reason = format!(
                    "promoted by {actor} from {}% to {next}%, gates skipped: {why}",
                    self.canary
                );
                let record =
                    record_at(self.route, state, next, self.version, actor, reason.clone());
                let request = ChangeRequest::Canary {
                    route: self.route.to_string(),
                    percent: next,
                };
                let who = Requester {
                    actor: actor.to_string(),
                    reason,
                    by: Initiator::Rollout,
                };
                self.write(record, Some((request, who))).await
            }
        }
    }

    fn step(&self) -> String {
        self.stored
            .map_or_else(|| self.canary.to_string(), |r| r.step.clone())
    }

    fn unchanged(&self, message: String) -> CommandOutcome {
        CommandOutcome {
            route: self.route.to_string(),
            state: self.state(),
            step: self.step(),
            changed: false,
            message,
            version: None,
        }
    }

    /// Stores `record` over what was read, then applies `change` if any
    /// (its version becomes the step's: the report gate reads from there).
    async fn write(
        &self,
        record: RolloutRecord,
        change: Option<(ChangeRequest, Requester)>,
    ) -> Result<Option<CommandOutcome>, CommandError> {
        let read = self.stored.map(|r| r.revision);
        if !self.rollouts.put(self.history, record.clone(), read).await {
            return Ok(None);
        }
        let mut version = None;
        if let Some((request, who)) = change {
            let o = self
                .rollouts
                .change(request, who)
                .await
                .map_err(CommandError::Change)?;
            version = Some(o.version);
            let written = self
                .rollouts
                .seen()
                .records
                .get(self.route)
                .map(|r| r.revision);
            let update = RolloutRecord {
                step_version: o.version as i64,
                ..record.clone()
            };
            // Best effort: if it is lost, the gate also reads the
            // comparisons made just before the step.
            self.rollouts.put(self.history, update, written).await;
        }
        Ok(Some(CommandOutcome {
            route: self.route.to_string(),
            state: record.state,
            step: record.step.clone(),
            changed: true,
            message: record.reason.clone(),
            version,
        }))
    }
}
