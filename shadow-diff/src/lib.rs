//! Shadow comparison for Strangler, independent of Pingora: decoding and
//! comparing two answers ([`compare`](mod@compare)), what is known of a
//! route's noise ([`noise`]), the judge that decides from both whether a
//! shadowed request is a match, a real diff or only noise
//! ([`judge`](mod@judge)), removing secrets before anything is kept
//! ([`redact`]), the diff store ([`store`]: the diff tables' schema and
//! every query on them), what is kept of recorded traffic and of replay
//! runs ([`recording`]), and the reports shaped from what it reads
//! ([`report`]).

pub mod compare;
pub mod decode;
pub mod exchange;
pub mod judge;
pub mod noise;
pub mod record;
pub mod recording;
pub mod redact;
pub mod report;
pub mod rules;
pub mod store;

pub use compare::{Comparison, DiffKind, Difference, compare};
pub use exchange::{Exchange, RequestSummary};
pub use judge::{Answers, Compared, JudgedDifference, Judgement, judge};
pub use noise::{FieldClass, NoiseModel, Verdict};
pub use record::{
    ComparisonRecord, NoiseDelta, Source, StoreItem, StoredDifference, StoredRequest,
    StoredResponse,
};
pub use recording::{
    RecordedBody, RecordedMessage, Recording, RedactedPlace, ReplayRun, RunCounts, RunState,
};
pub use redact::Redactor;
pub use rules::{CompareRules, FieldPattern};
pub use store::writer::{Kept, StoreWriter, WriterEvents, WriterSettings};
pub use store::{DiffAndHistoryStore, DiffQuery, StoreError};
