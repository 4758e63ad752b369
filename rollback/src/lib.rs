//! The rollback engine, independent of Pingora: what a canary change or a
//! rollback does to `routes.yaml` ([`edit`], format-preserving), how the file
//! is written ([`atomic`]), the numbered history, the audit log and the fleet
//! changes in the store ([`history`]), and where each route's rollout stands
//! ([`rollouts`]). The proxy plans changes and applies
//! them live (`proxy/src/changes/`); this crate edits, writes and records
//! them, with no knowledge of the proxy.

pub mod atomic;
pub mod edit;
pub mod history;
pub mod rollouts;
