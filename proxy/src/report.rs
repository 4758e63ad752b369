//! Glue between the configuration, the store and `shadow_diff::report`: the
//! thresholds of each route and the filters of a report request (route,
//! tenant, window, which comparisons: live shadow, replayed, or both, and
//! whether the pages write times in UTC or in local time),
//! shared by `strangler report` and the admin server's `/report` and
//! `/api/` pages.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shadow_diff::report::{self, Report, ReportFilter, ReportLimits, Threshold, Times};
use shadow_diff::{DiffAndHistoryStore, Source, StoreError};

use crate::config::Config;
use crate::config::units::parse_duration;

pub const DEFAULT_WINDOW: &str = "24h";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Each shadowed route's threshold from the configuration.
pub fn thresholds(config: &Config) -> HashMap<String, Threshold> {
    config
        .routes
        .iter()
        .filter_map(|r| r.shadow.as_ref().map(|s| (r.name.to_string(), s.threshold)))
        .collect()
}

/// Writes each route's stage (from `config`) into the report, in its live
/// and its replay part: the store does not know it. Routes the
/// configuration no longer has keep none.
pub fn add_stages(report: &mut Report, config: &Config) {
    let stage = |route: &str| config.route(route).map(|c| c.stage().as_str().to_string());
    for r in &mut report.routes {
        r.stage = stage(&r.route);
    }
    for r in &mut report.replay {
        r.comparisons.stage = stage(&r.comparisons.route);
    }
}

/// Routes that shadow or record, in file order (for the filter form): the
/// routes a report can have comparisons of.
pub fn report_routes(config: &Config) -> Vec<String> {
    config
        .routes
        .iter()
        .filter(|r| r.shadow.is_some() || r.record.is_some())
        .map(|r| r.name.to_string())
        .collect()
}

/// A `source` query value: `shadow` or `replay`; empty for both.
pub fn parse_source(value: &str) -> Result<Option<Source>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    Source::parse(value).map(Some).ok_or_else(|| {
        format!(
            "source: unknown source {value:?} (use {}, or leave it out for both)",
            Source::ALL.map(Source::as_str).join(" or ")
        )
    })
}

/// A `time` query value: `utc` or `local`; empty for the default (UTC).
pub fn parse_times(value: &str) -> Result<Times, String> {
    if value.is_empty() {
        return Ok(Times::default());
    }
    Times::parse(value).ok_or_else(|| {
        format!(
            "time: unknown value {value:?} (use {})",
            Times::ALL.map(Times::as_str).join(" or ")
        )
    })
}

/// A report request as a person types it: route, tenant, window (`24h`),
/// source (both when absent), and how the pages write times.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    pub route: Option<String>,
    pub tenant: Option<String>,
    pub since: Option<String>,
    pub source: Option<Source>,
    pub page: i64,
    /// For the pages only: the JSON has Unix milliseconds.
    pub time: Times,
}

impl ReportRequest {
    /// Reads `route`, `tenant`, `since`, `source`, `page` and `time` from a
    /// URL query; an unknown source is an error (a report of the wrong
    /// comparisons would read as the right one), and so is an unknown
    /// `time` (times in another zone than asked would read as right too).
    pub fn from_query(query: &str) -> Result<ReportRequest, String> {
        let mut r = ReportRequest::default();
        for (k, v) in parse_query(query) {
            if k == "source" {
                r.source = parse_source(&v)?;
                continue;
            }
            if k == "time" {
                r.time = parse_times(&v)?;
                continue;
            }
            let v = Some(v).filter(|v| !v.is_empty());
            match k.as_str() {
                "route" => r.route = v,
                "tenant" => r.tenant = v,
                "since" => r.since = v,
                "page" => r.page = v.and_then(|p| p.parse().ok()).unwrap_or(0).max(0),
                _ => {}
            }
        }
        Ok(r)
    }

    /// The same filters as a query string (for links), without the page.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.route {
            parts.push(format!("route={}", encode(r)));
        }
        if let Some(t) = &self.tenant {
            parts.push(format!("tenant={}", encode(t)));
        }
        if let Some(s) = &self.since {
            parts.push(format!("since={}", encode(s)));
        }
        if let Some(s) = self.source {
            parts.push(format!("source={}", s.as_str()));
        }
        if self.time != Times::default() {
            parts.push(format!("time={}", self.time.as_str()));
        }
        parts.join("&")
    }

    pub fn window(&self) -> Result<Duration, String> {
        parse_duration(self.since.as_deref().unwrap_or(DEFAULT_WINDOW))
    }

    pub fn filter(&self, now: i64) -> Result<ReportFilter, String> {
        let window = self.window()?;
        Ok(ReportFilter {
            route: self.route.clone(),
            source: self.source,
            tenant: self.tenant.clone(),
            since_ms: now - window.as_millis() as i64,
            until_ms: now + 1,
        })
    }
}

pub async fn build(
    store: &DiffAndHistoryStore,
    request: &ReportRequest,
    thresholds: &HashMap<String, Threshold>,
) -> Result<Report, ReportError> {
    let now = now_ms();
    let filter = request.filter(now).map_err(ReportError::Request)?;
    let limits = ReportLimits {
        examples_offset: request.page * 10,
        ..ReportLimits::default()
    };
    Ok(report::build(store, &filter, thresholds, limits, now).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `application/x-www-form-urlencoded` pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip() {
        let r =
            ReportRequest::from_query("route=orders-read&tenant=acme%20corp&since=7d&page=2&x=1")
                .unwrap();
        assert_eq!(r.route.as_deref(), Some("orders-read"));
        assert_eq!(r.tenant.as_deref(), Some("acme corp"));
        assert_eq!(r.source, None);
        assert_eq!(r.page, 2);
        assert_eq!(r.query(), "route=orders-read&tenant=acme%20corp&since=7d");
        assert_eq!(r.window().unwrap(), Duration::from_secs(7 * 86_400));
        assert!(
            ReportRequest::from_query("since=soon")
                .unwrap()
                .window()
                .is_err()
        );
        assert_eq!(parse_query("a=%zz&b=%41")[1].1, "A");
        assert_eq!(parse_query("a=%zz")[0].1, "%zz");
        assert_eq!(parse_query("a=%4")[0].1, "%4");
    }

    #[test]
    fn the_source_is_read_kept_in_links_and_checked() {
        let r = ReportRequest::from_query("source=replay&since=1h").unwrap();
        assert_eq!(r.source, Some(Source::Replay));
        assert_eq!(r.query(), "since=1h&source=replay");
        assert_eq!(
            r.filter(1_000_000_000).unwrap().source,
            Some(Source::Replay)
        );
        let r = ReportRequest::from_query("source=shadow").unwrap();
        assert_eq!(r.source, Some(Source::Shadow));
        // The form's "live and replay" sends an empty value: both.
        let r = ReportRequest::from_query("source=&route=a").unwrap();
        assert_eq!(r.source, None);
        assert_eq!(r.query(), "route=a");
        let e = ReportRequest::from_query("source=live").unwrap_err();
        assert_eq!(
            e,
            "source: unknown source \"live\" (use shadow or replay, or leave it out for both)"
        );
    }

    #[test]
    fn the_time_zone_is_read_kept_in_links_and_checked() {
        let r = ReportRequest::from_query("time=local&since=1h").unwrap();
        assert_eq!(r.time, Times::Local);
        assert_eq!(r.query(), "since=1h&time=local");
        // UTC is the default: links do not carry it.
        for q in ["time=utc", "time=", ""] {
            let r = ReportRequest::from_query(q).unwrap();
            assert_eq!(r.time, Times::Utc, "{q}");
            assert_eq!(r.query(), "", "{q}");
        }
        let e = ReportRequest::from_query("time=pst").unwrap_err();
        assert_eq!(e, "time: unknown value \"pst\" (use utc or local)");
    }
}
