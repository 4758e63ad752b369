//! `strangler report`: the diff report from the store, as HTML, Markdown or
//! JSON, for a route, a tenant and a time window; live shadow comparisons
//! and replayed ones each in their own part, or one of them (`--source`);
//! times in UTC or in this machine's local time (`--time`).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use shadow_diff::report::{Times, html, markdown};
use shadow_diff::{DiffAndHistoryStore, Source};

use crate::cli::ReportArgs;
use crate::config;
use crate::report::{self, ReportRequest};

/// `--source`: which comparisons the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceArg {
    /// Live shadow comparisons only.
    Shadow,
    /// Replayed comparisons (`strangler replay`) and replay runs only.
    Replay,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Source {
        match s {
            SourceArg::Shadow => Source::Shadow,
            SourceArg::Replay => Source::Replay,
        }
    }
}

/// `--format`: the form of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A page with charts, the one the admin server serves at /report.
    Html,
    /// Markdown, for a pull request or a ticket.
    #[value(alias = "markdown")]
    Md,
    /// The report's data (docs/report-json.md).
    Json,
}

/// `--time`: the zone HTML and Markdown write times in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeArg {
    /// Coordinated universal time, the same for every reader.
    #[default]
    Utc,
    /// This machine's local time (TZ, else /etc/localtime), with its offset.
    Local,
}

impl From<TimeArg> for Times {
    fn from(t: TimeArg) -> Times {
        match t {
            TimeArg::Utc => Times::Utc,
            TimeArg::Local => Times::Local,
        }
    }
}

pub fn run(args: &ReportArgs) -> Result<String> {
    // The store and the thresholds come from the config file, unless given.
    let config = match config::load(&args.config) {
        Ok((c, _)) => Some(c),
        Err(e) if args.store.is_some() => {
            log::debug!("no usable config ({e}); using defaults for thresholds");
            None
        }
        Err(e) => bail!("{e}\n(give --store URL to read a store without a valid config)"),
    };
    let store_url = match (&args.store, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => c.store.as_str().to_string(),
        (None, None) => unreachable!("handled above"),
    };
    let thresholds = config
        .as_ref()
        .map(report::thresholds)
        .unwrap_or_else(HashMap::new);
    let all_routes = config
        .as_ref()
        .map(report::report_routes)
        .unwrap_or_default();
    let request = ReportRequest {
        route: args.route.clone(),
        tenant: args.tenant.clone(),
        since: Some(args.since.clone()),
        source: args.source.map(Source::from),
        page: 0,
        time: args.time.into(),
    };
    request
        .window()
        .map_err(anyhow::Error::msg)
        .context("--since")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(async {
        let store = DiffAndHistoryStore::connect_existing(&store_url)
            .await
            .with_context(|| format!("cannot open the diff store {store_url}"))?;
        report::build(&store, &request, &thresholds)
            .await
            .map_err(anyhow::Error::from)
    })?;
    if let Some(c) = &config {
        report::add_stages(&mut report, c);
    }
    Ok(match args.format {
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ReportFormat::Md => markdown::render(&report, request.time),
        ReportFormat::Html => html::render(
            &report,
            &html::Links::Anchors,
            &all_routes,
            &args.since,
            request.time,
        ),
    })
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn the_source_values_are_the_store_s_names() {
        for v in SourceArg::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(name, Source::from(*v).as_str());
        }
    }

    #[test]
    fn the_time_values_are_the_query_s_names() {
        for v in TimeArg::value_variants() {
            let name = v.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(name, Times::from(*v).as_str());
        }
        assert_eq!(Times::from(TimeArg::default()), Times::default());
    }
}
