//! One replay run: recorded requests read from the store page by page in
//! recorded order, sent to the target at the asked rate with at most
//! `concurrency` in flight, each answer judged against the recorded one
//! (the route's compare rules, its noise knowledge; both answers redacted
//! alike, since only redacted answers were kept), and the comparisons
//! written to the store as `source: replay`. Progress is kept in the run's
//! handle (the admin API reads it) and written to `replay_runs` as it goes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use shadow_diff::store::recordings::RecordingPage;
use shadow_diff::{
    Answers, CompareRules, Compared, ComparisonRecord, DiffAndHistoryStore, Exchange, NoiseModel,
    Recording, Redactor, RunState, Source, StoreItem, StoredRequest, StoredResponse, Verdict,
    decode::decode_body,
};
use tokio::task::JoinSet;

use super::prepare::{Prepared, prepare};
use super::{RunHandle, RunPlan};
use crate::metrics::{Metrics, ReplayOutcome};
use crate::shadow::client::{SendError, exchange};

/// Recordings read per store call.
const PAGE: i64 = 200;
/// Comparisons written per store call.
const BATCH: usize = 100;
/// How often the run's row in the store is brought up to date.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// A store call that takes longer fails the run.
const STORE_CALL: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What every request of a run shares.
struct Shared {
    plan: RunPlan,
    redactor: Redactor,
    rules: CompareRules,
    noise: NoiseModel,
    connector: Connector,
    metrics: Metrics,
    instance: String,
}

/// Runs the plan to its end; the handle says how it went.
pub(super) async fn run(
    plan: RunPlan,
    store: DiffAndHistoryStore,
    handle: Arc<RunHandle>,
    metrics: Metrics,
    instance: String,
) {
    let result = drive(plan, &store, &handle, metrics, instance).await;
    let mut run = handle.snapshot();
    run.finished_at_ms = Some(now_ms());
    match result {
        Ok(()) if handle.cancel.load(Ordering::SeqCst) => {
            run.state = RunState::Cancelled;
            run.message = Some("cancelled".into());
        }
        Ok(()) => run.state = RunState::Done,
        Err(e) => {
            run.state = RunState::Failed;
            run.message = Some(e);
        }
    }
    handle.set(run.clone());
    // The last word is the handle's; the store is told if it answers.
    let _ = tokio::time::timeout(STORE_CALL, store.put_replay_run(&run)).await;
}

async fn drive(
    plan: RunPlan,
    store: &DiffAndHistoryStore,
    handle: &Arc<RunHandle>,
    metrics: Metrics,
    instance: String,
) -> Result<(), String> {
    let store_call = |what: &'static str| move |e: String| format!("the store failed {what}: {e}");
    within(store.put_replay_run(&handle.snapshot()))
        .await
        .map_err(store_call("recording the run"))?;
    let noise = within(store.noise_model(&plan.route.name.to_string()))
        .await
        .map_err(store_call("reading the route's noise"))?;
    let shared = Arc::new(Shared {
        redactor: plan.redactor.clone(),
        rules: plan
            .route
            .shadow
            .as_ref()
            .map(|s| s.compare.clone())
            .unwrap_or_default(),
        noise,
        connector: Connector::new(None),
        metrics,
        instance,
        plan,
    });
    let plan = &shared.plan;
    let route = plan.route.name.to_string();
    let started = tokio::time::Instant::now();
    let mut page = RecordingPage {
        route: route.clone(),
        since_ms: plan.since_ms,
        after: None,
        limit: PAGE,
    };
    let mut in_flight: JoinSet<(ReplayOutcome, Option<ComparisonRecord>)> = JoinSet::new();
    let mut batch: Vec<StoreItem> = Vec::new();
    let mut last_progress = Instant::now();
    let mut sent: u64 = 0;
    // Recordings taken (sent or skipped), for `limit`: the handle holds the
    // same count for readers, behind its lock.
    let mut read: u64 = 0;
    'pages: loop {
        let recordings = within(store.recordings(&page))
            .await
            .map_err(store_call("reading recordings"))?;
        let Some(last) = recordings.last() else { break };
        page.after = Some((last.created_at_ms, last.id.clone()));
        for recording in recordings {
            if handle.cancel.load(Ordering::SeqCst) || plan.limit.is_some_and(|l| read >= l) {
                break 'pages;
            }
            let prepared = prepare(
                &recording,
                &plan.route,
                &plan.route.replay,
                &plan.headers,
                &plan.target,
                plan.target_side,
            );
            let prepared = match prepared {
                Ok(p) => p,
                Err(_) => {
                    read += 1;
                    handle.update(|r| r.counts.read += 1);
                    count(&shared, handle, ReplayOutcome::Skipped);
                    continue;
                }
            };
            if let Some(rate) = plan.rate {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due).await;
            }
            while in_flight.len() >= plan.concurrency {
                if let Some(done) = in_flight.join_next().await {
                    settle(&shared, handle, done, &mut batch);
                }
            }
            // A cancel that came while pacing or waiting for a slot: this
            // one is not sent (nor counted as read).
            if handle.cancel.load(Ordering::SeqCst) {
                break 'pages;
            }
            read += 1;
            handle.update(|r| r.counts.read += 1);
            sent += 1;
            let shared = shared.clone();
            in_flight.spawn(async move { replay_one(&shared, recording, prepared).await });
            if batch.len() >= BATCH || last_progress.elapsed() >= PROGRESS_EVERY {
                flush(store, handle, &mut batch).await?;
                last_progress = Instant::now();
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        settle(&shared, handle, done, &mut batch);
    }
    flush(store, handle, &mut batch).await
}

async fn within<T, E: std::fmt::Display>(
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STORE_CALL, call).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer in {} s", STORE_CALL.as_secs())),
    }
}

fn count(shared: &Shared, handle: &RunHandle, outcome: ReplayOutcome) {
    shared
        .metrics
        .count_replay(shared.plan.route.name.as_str(), outcome);
    handle.update(|r| match outcome {
        ReplayOutcome::Match => r.counts.matched += 1,
        ReplayOutcome::Diff => r.counts.diff += 1,
        ReplayOutcome::Noise => r.counts.noise += 1,
        ReplayOutcome::Skipped => r.counts.skipped += 1,
        ReplayOutcome::Failed => r.counts.failed += 1,
    });
}

fn settle(
    shared: &Shared,
    handle: &RunHandle,
    done: Result<(ReplayOutcome, Option<ComparisonRecord>), tokio::task::JoinError>,
    batch: &mut Vec<StoreItem>,
) {
    let (outcome, record) = done.unwrap_or((ReplayOutcome::Failed, None));
    count(shared, handle, outcome);
    if let Some(record) = record {
        batch.push(StoreItem::Comparison(Box::new(record)));
    }
}

/// Writes the comparisons so far and the run as it stands.
async fn flush(
    store: &DiffAndHistoryStore,
    handle: &RunHandle,
    batch: &mut Vec<StoreItem>,
) -> Result<(), String> {
    if !batch.is_empty() {
        within(store.write(batch))
            .await
            .map_err(|e| format!("the store failed writing comparisons: {e}"))?;
        batch.clear();
    }
    within(store.put_replay_run(&handle.snapshot()))
        .await
        .map_err(|e| format!("the store failed recording the run: {e}"))
}

/// Sends one request and judges the answer.
async fn replay_one(
    shared: &Shared,
    recording: Recording,
    prepared: Prepared,
) -> (ReplayOutcome, Option<ComparisonRecord>) {
    let plan = &shared.plan;
    let sent_at = now_ms();
    let Ok(request) = request_header(&prepared) else {
        return (ReplayOutcome::Failed, None);
    };
    let peer: HttpPeer = *plan.peer.clone();
    let answer = tokio::time::timeout(
        plan.timeout,
        exchange(
            &shared.connector,
            &peer,
            request,
            prepared.body.clone(),
            plan.max_body,
        ),
    )
    .await;
    let answer = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(SendError::TooLarge | SendError::Failed(_))) | Err(_) => {
            return (ReplayOutcome::Failed, None);
        }
    };
    let recorded = Exchange {
        status: recording.status,
        headers: recording.response.headers.clone(),
        body: recording.response.body.bytes(),
    };
    // Redacted like the recorded answer, so that a secret compares equal
    // to the marker it was stored as.
    let encoding = answer
        .headers
        .iter()
        .find(|(k, _)| k == "content-encoding")
        .map(|(_, v)| v.as_str());
    let decoded = decode_body(encoding, &answer.body).unwrap_or_else(|_| answer.body.to_vec());
    let replayed = Exchange {
        status: answer.status,
        headers: shared.redactor.headers(&answer.headers),
        body: shared.redactor.whole_body(&decoded).0.bytes(),
    };
    let judgement = Compared::of(
        &shared.rules,
        Answers {
            legacy: &recorded,
            new: &replayed,
            legacy_again: None,
        },
    )
    .judge(&shared.noise);
    let outcome = match judgement.verdict {
        Verdict::Match => ReplayOutcome::Match,
        Verdict::Diff => ReplayOutcome::Diff,
        Verdict::Noise => ReplayOutcome::Noise,
    };
    let redactor = &shared.redactor;
    let record = ComparisonRecord {
        id: format!("{}/{}", recording.id, plan.run_id),
        created_at_ms: sent_at,
        route: recording.route.clone(),
        config_version: plan.config_version as i64,
        tenant: recording.tenant.clone(),
        instance: shared.instance.clone(),
        request: StoredRequest {
            method: recording.method.clone(),
            path: recording.path.clone(),
            headers: recording.request.headers.clone(),
            body: redactor.body(&recording.request.body.bytes()),
        },
        primary_side: recording.served_by.clone(),
        verdict: judgement.verdict,
        legacy: StoredResponse {
            status: recorded.status,
            headers: recorded.headers.clone(),
            body: redactor.body(&recorded.body),
            latency_ms: recording.latency_ms,
        },
        new: StoredResponse {
            status: replayed.status,
            headers: replayed.headers.clone(),
            body: redactor.body(&replayed.body),
            latency_ms: answer.latency.as_secs_f64() * 1000.0,
        },
        differences: judgement.stored_differences(redactor),
        more_differences: judgement.more_differences,
        source: Source::Replay,
    };
    (outcome, Some(record))
}

fn request_header(p: &Prepared) -> Result<RequestHeader, Box<pingora::Error>> {
    let mut req = RequestHeader::build(
        p.method.clone(),
        p.path.as_bytes(),
        Some(p.headers.len() + 1),
    )?;
    for (name, value) in &p.headers {
        req.append_header(name.clone(), value.clone())?;
    }
    if !p.body.is_empty() {
        req.insert_header(http::header::CONTENT_LENGTH, p.body.len().to_string())?;
    }
    Ok(req)
}

/// The route's `replay.headers` with their values: literals as written,
/// the others from this process's environment.
pub(super) fn resolve_headers(
    policy: &crate::config::ReplayPolicy,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    policy
        .headers
        .iter()
        .map(|(name, value)| match value {
            crate::config::ReplayHeaderValue::Literal(v) => Ok((name.clone(), v.clone())),
            crate::config::ReplayHeaderValue::Env(var) => {
                let text = std::env::var(var).map_err(|_| {
                    format!("replay.headers.{name} reads ${var}, which is not set in the proxy's environment")
                })?;
                HeaderValue::from_str(&text)
                    .map(|v| (name.clone(), v))
                    .map_err(|_| format!("${var} (replay.headers.{name}) is not a valid header value"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::resolve_headers;
    use crate::config::{ReplayHeaderValue, ReplayPolicy};

    #[test]
    fn replay_headers_come_from_the_file_or_the_proxys_environment() {
        let policy = |value| ReplayPolicy {
            allow_writes: false,
            headers: vec![(http::header::AUTHORIZATION, value)],
        };
        let literal = policy(ReplayHeaderValue::Literal(http::HeaderValue::from_static(
            "Bearer t",
        )));
        assert_eq!(resolve_headers(&literal).unwrap()[0].1, "Bearer t");
        // PATH is set wherever tests run.
        let from_env = policy(ReplayHeaderValue::Env("PATH".into()));
        assert_eq!(
            resolve_headers(&from_env).unwrap()[0].1,
            std::env::var("PATH").unwrap().as_str()
        );
        let missing = policy(ReplayHeaderValue::Env("STRANGLER_NO_SUCH_VARIABLE".into()));
        let err = resolve_headers(&missing).unwrap_err();
        assert!(
            err.contains("$STRANGLER_NO_SUCH_VARIABLE, which is not set"),
            "{err}"
        );
    }
}
