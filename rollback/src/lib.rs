//! The rollback engine, independent of Pingora: what a canary change or a
//! rollback does to `routes.yaml` ([`edit`], format-preserving), how the file
//! is written ([`atomic`]), the numbered history, the audit log and the fleet
//! changes in the store ([`history`]), and the automatic guard's judgement
//! ([`guard`]). The proxy applies changes live; this crate says what they
//! are and keeps the record.

pub mod atomic;
pub mod edit;
pub mod guard;
pub mod history;
