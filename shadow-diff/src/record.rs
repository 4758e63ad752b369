//! What the store keeps of one comparison, already redacted.

use serde::{Deserialize, Serialize};

use crate::compare::Difference;
use crate::noise::{FieldClass, NoiseModel, Verdict};

/// One answer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub latency_ms: f64,
}

/// The request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StoredRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A difference with its generalized field and its class when it was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDifference {
    #[serde(flatten)]
    pub difference: Difference,
    pub key: String,
    pub class: FieldClass,
}

/// Where a comparison came from: a live shadow copy, or a replay of recorded
/// traffic (`strangler replay`). Reports and verdicts read one source at a
/// time, so a replay never makes a live route look ready, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Shadow,
    Replay,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Shadow, Source::Replay];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Shadow => "shadow",
            Source::Replay => "replay",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One legacy-vs-new comparison. For a replay, `legacy` is the answer that
/// was recorded and `new` the answer the replay target gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRecord {
    /// The request id (also in the client's `X-Request-Id`).
    pub id: String,
    pub created_at_ms: i64,
    pub route: String,
    pub config_version: i64,
    pub tenant: Option<String>,
    pub instance: String,
    pub request: StoredRequest,
    /// The side that served the client.
    pub primary_side: String,
    pub verdict: Verdict,
    pub legacy: StoredResponse,
    pub new: StoredResponse,
    pub differences: Vec<StoredDifference>,
    pub more_differences: usize,
    #[serde(default)]
    pub source: Source,
}

/// Noise evidence gathered since the last write, added to the stored totals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NoiseDelta {
    pub route: String,
    pub model: NoiseModel,
}

/// What the writer accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreItem {
    Comparison(Box<ComparisonRecord>),
    Noise(NoiseDelta),
    Recording(Box<crate::recording::Recording>),
}

impl StoreItem {
    pub fn route(&self) -> &str {
        match self {
            StoreItem::Comparison(c) => &c.route,
            StoreItem::Noise(n) => &n.route,
            StoreItem::Recording(r) => &r.route,
        }
    }
}
