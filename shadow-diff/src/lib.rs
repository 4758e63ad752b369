//! Shadow comparison for Strangler, independent of Pingora: decoding and
//! comparing two answers ([`compare`]), telling noise from real differences
//! ([`noise`]), removing secrets before anything is kept ([`redact`]), and
//! the diff store ([`store`]) that reports read.

pub mod compare;
pub mod decode;
pub mod exchange;
pub mod noise;
pub mod record;
pub mod redact;
pub mod report;
pub mod rules;
pub mod store;

pub use compare::{Comparison, DiffKind, Difference, compare};
pub use exchange::{Exchange, RequestSummary};
pub use noise::{FieldClass, NoiseModel, Verdict};
pub use record::{
    ComparisonRecord, NoiseDelta, StoreItem, StoredDifference, StoredRequest, StoredResponse,
};
pub use redact::Redactor;
pub use rules::{CompareRules, FieldPattern};
pub use store::writer::{StoreWriter, WriterEvents, WriterSettings};
pub use store::{DiffQuery, DiffStore, StoreError};
