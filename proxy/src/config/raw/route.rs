//! `routes[]`: one route's match, sides, canary and the blocks that shadow,
//! guard, rewrite, roll out, record and replay its traffic.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{OrderedMap, Scalar};

/// `routes[]`: requests it matches go to `legacy` or `new`, by canary
/// share and tenant pins.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The route's name, unique in the file; commands and metrics use it.
    /// Required.
    pub name: Option<String>,
    /// Which requests the route takes; every condition given must hold.
    /// Required (`match: {}` matches everything).
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    /// Backend serving the share not on the new side. Default: the
    /// top-level `default` backend.
    pub legacy: Option<String>,
    /// Backend the traffic moves to (a name under `backends`, not
    /// `legacy`). Required.
    pub new: Option<String>,
    /// Share of the route's traffic served by `new`, in percent from 0 to
    /// 100, decimals allowed (`0.5`). Raising it only ever moves keys from
    /// legacy to new. Default `0`.
    pub canary: Option<Scalar>,
    /// What keeps a client on one side as the canary moves: `tenant`,
    /// `header:NAME`, `cookie:NAME`, `ip` or `none` (every request drawn
    /// afresh). Default `tenant`.
    pub sticky: Option<String>,
    /// Tenants pinned to a side whatever the canary says: tenant name to
    /// `new` or `legacy`. Default: none.
    pub tenants: Option<OrderedMap<String>>,
    /// Copies of requests sent to the side that did not serve them, and the
    /// two answers compared. Default: no shadowing.
    pub shadow: Option<Box<RawShadow>>,
    /// Automatic rollback to legacy when the new side does worse. Default:
    /// no guard.
    pub guard: Option<Box<RawGuard>>,
    /// Largest request body the route accepts (413 above), a size (`1MiB`,
    /// `512KiB`, `4096`). Default `100MiB`.
    pub max_request_body: Option<Scalar>,
    /// The path the new side receives instead of the request's. Default:
    /// the path as requested.
    pub rewrite: Option<Box<RawRewrite>>,
    /// Read timeout of this route's requests, a duration; replaces the
    /// backends' `read_timeout`. Default: the backend's.
    pub timeout: Option<Scalar>,
    /// Further attempts of an idempotent request after an upstream error,
    /// each on a fresh connection, never once the client got a byte; 0 to 5.
    /// Default `0`.
    pub retries: Option<Scalar>,
    /// Canary steps the route takes by itself, each after a pause during
    /// which its gates held. Default: no rollout.
    pub rollout: Option<Box<RawRollout>>,
    /// Sampled requests kept, redacted, with the answer their client got,
    /// for `strangler replay`. Default: nothing recorded.
    pub record: Option<Box<RawRecord>>,
    /// How this route's recordings are replayed. Default: safe methods
    /// only, no extra headers.
    pub replay: Option<Box<RawReplay>>,
}

/// `routes[].record`: sampled requests kept (redacted) with the answer their
/// client got, for `strangler replay`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// Share of the route's requests recorded, in percent (0 to 100); each
    /// is a row in the store. Required in the block.
    pub percent: Option<Scalar>,
    /// Largest request or answer body kept with a recording, a size.
    /// Default `256KiB`.
    pub max_body: Option<Scalar>,
    /// Header names and JSON Pointers (`/customer/email`) removed before a
    /// recording is stored, besides the built-in secrets and the shadow
    /// block's `redact`. Default: none.
    pub redact: Option<Vec<String>>,
}

/// `routes[].replay`: how this route's recordings are replayed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    /// `true` replays methods with side effects (POST, PUT, ...) too: only
    /// against a test instance. Default `false`.
    pub allow_writes: Option<bool>,
    /// Headers every replayed request carries, by name: a value, or
    /// `{ env: NAME }` to read it from the environment of the process that
    /// replays (a credential must not sit in this file). Default: none.
    pub headers: Option<OrderedMap<RawHeaderValue>>,
}

/// A header value written out, or read from the environment of the process
/// that runs the replay (`{ env: NAME }`), so that no credential sits in the
/// file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawHeaderValue {
    Text(String),
    FromEnv(RawFromEnv),
}

/// `{ env: NAME }`: a header value taken from the environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFromEnv {
    /// Name of the environment variable holding the value. Required.
    pub env: String,
}

/// `routes[].rollout`: a route that promotes itself, canary steps taken one
/// by one, each after a pause during which the gates held.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    /// Canary percentages to take in order, each above the one before,
    /// starting from the current canary (e.g. `[25, 50, 100]`). Required in
    /// the block.
    pub steps: Option<Vec<Scalar>>,
    /// Least time spent at each step before the next, a duration. Default
    /// `10m`.
    pub pause: Option<Scalar>,
    /// Gates that must hold over each pause: `guard` (needs the route's
    /// `guard` block) and `report` (needs its `shadow` block). Default both.
    pub require: Option<Vec<String>>,
    /// What a failed gate does: `rollback` (canary to 0, as `strangler
    /// rollback`) or `hold` (stay at the current step). Default `rollback`.
    pub on_failure: Option<String>,
    /// `manual` (`strangler rollout start`) or `auto` (when the file is
    /// loaded). Default `manual`.
    pub start: Option<String>,
}

/// `routes[].rewrite`: what the new side receives instead of the request's
/// path: a prefix swap (`strip_prefix` and/or `add_prefix`), or `regex`
/// with `to`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    /// A prefix of the route's path, on whole segments, taken off the path
    /// (`/api/v1`). Default: none.
    pub strip_prefix: Option<String>,
    /// A prefix put in front of the path (after `strip_prefix`). Default:
    /// none.
    pub add_prefix: Option<String>,
    /// A regex over the path whose match is replaced by `to`. Default: none.
    pub regex: Option<String>,
    /// The replacement for `regex`: an absolute path that may use its groups
    /// (`$1`, `${name}`). Required with `regex`.
    pub to: Option<String>,
}

/// `routes[].guard`: the automatic rollback's window, how much traffic it
/// needs before it judges, and how much worse than legacy the new side may
/// be. A breach sets the canary to 0.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// How far back the guard looks, a duration from `5s` to `10m`. Default
    /// `1m`.
    pub window: Option<Scalar>,
    /// New-side requests needed in the window before the guard judges, a
    /// whole number. Default `100`.
    pub min_requests: Option<Scalar>,
    /// Percentage points by which the new side's 5xx rate may exceed
    /// legacy's. Default `5`.
    pub error_rate_margin: Option<Scalar>,
    /// Percent by which the new side's p99 latency may exceed legacy's (may
    /// be over 100). Default: latency not guarded.
    pub p99_margin: Option<Scalar>,
    /// Largest share of shadow comparisons with a real difference, in
    /// percent. Default: diffs not guarded.
    pub max_diff_rate: Option<Scalar>,
}

/// `routes[].match`: the conditions a request must meet, all of them. At
/// most one of `path`, `path_exact` and `path_regex`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// A path prefix on whole segments (`/api` matches `/api` and
    /// `/api/x`, not `/apix`), in normal form. Default: any path.
    pub path: Option<String>,
    /// One exact path, in normal form. Default: any path.
    pub path_exact: Option<String>,
    /// A regex searched for in the normalized path (anchor it with `^` and
    /// `$` to match the whole path). Default: any path.
    pub path_regex: Option<String>,
    /// Methods the route takes (case-sensitive: `GET`), not empty. Default:
    /// every method.
    pub methods: Option<Vec<String>>,
    /// Host name without port, exact or `*.example.com` (any subdomain).
    /// Default: any host.
    pub host: Option<String>,
    /// Request headers that must have exactly these values, by name.
    /// Default: none.
    pub headers: Option<OrderedMap<Scalar>>,
}

/// `routes[].shadow`: which requests are copied to the side that did not
/// serve them, what is redacted before a diff is stored, when the diff
/// report calls the route ready, and what counts as a difference.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    /// Share of the route's requests (by sticky key) copied, in percent.
    /// Default `100`.
    pub percent: Option<Scalar>,
    /// Methods copied. A method with side effects needs `allow_writes`.
    /// Default `[GET, HEAD, OPTIONS]`.
    pub methods: Option<Vec<String>>,
    /// `true` lets `methods` list methods with side effects, which then run
    /// twice, once on each side. Default `false`.
    pub allow_writes: Option<bool>,
    /// Largest request or answer body shadowed, a size; larger exchanges
    /// are skipped. Default `1MiB`.
    pub max_body: Option<Scalar>,
    /// Longest wait for the shadow copy's answer, a duration. Default `5s`.
    pub timeout: Option<Scalar>,
    /// Share of shadowed safe requests also sent a second time to legacy, in
    /// percent, to learn which fields differ by themselves (noise). Default
    /// `10`.
    pub noise_sample: Option<Scalar>,
    /// Header names and JSON Pointers (`/customer/email`) removed before a
    /// diff is stored. Default: none.
    pub redact: Option<Vec<String>>,
    /// Largest share of comparisons with a real difference for the report
    /// to call the route ready, in percent. Default `1`.
    pub max_diff_rate: Option<Scalar>,
    /// Comparisons the report needs before it judges, a whole number.
    /// Default `100`.
    pub min_samples: Option<Scalar>,
    /// What counts as a difference between the two answers. Default: every
    /// header and field compared, in order, numbers exactly.
    pub compare: Option<RawCompare>,
}

/// `routes[].shadow.compare`: what counts as a difference.
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    /// Header names not compared, besides those always ignored. Default:
    /// none.
    #[serde(default)]
    pub ignore_headers: Vec<String>,
    /// JSON Pointers of body fields not compared; a `*` segment stands for
    /// any key or index (`/items/*/etag`). Default: none.
    #[serde(default)]
    pub ignore_fields: Vec<String>,
    /// JSON Pointers of arrays compared without regard to order (`*`
    /// allowed). Default: none.
    #[serde(default)]
    pub unordered_arrays: Vec<String>,
    /// Relative tolerance for numbers: `a` and `b` are equal when `|a-b| <=
    /// tolerance * max(|a|,|b|)`. Default `0` (exact).
    pub numeric_tolerance: Option<Scalar>,
}
