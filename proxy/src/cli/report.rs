//! `strangler report`: the diff report from the store, as HTML, Markdown or
//! JSON, for a route, a tenant and a time window.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use shadow_diff::DiffAndHistoryStore;
use shadow_diff::report::{html, markdown};

use crate::cli::ReportArgs;
use crate::config;
use crate::report::{self, ReportRequest};

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
        .map(report::shadowed_routes)
        .unwrap_or_default();
    let request = ReportRequest {
        route: args.route.clone(),
        tenant: args.tenant.clone(),
        since: Some(args.since.clone()),
        page: 0,
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
    Ok(match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&report)? + "\n",
        "md" | "markdown" => markdown::render(&report),
        "html" => html::render(&report, &html::Links::Anchors, &all_routes, &args.since),
        other => bail!("unknown format {other:?} (use html, md or json)"),
    })
}
