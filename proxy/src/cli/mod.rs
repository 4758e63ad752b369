//! The `strangler` command line: one subcommand per module here.

pub mod admin_client;
pub mod changes;
pub mod check;
pub mod explain;
pub mod help;
pub mod manual;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod schema;
pub mod status;
pub mod upgrade;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strangler",
    version,
    about = "Strangler-fig migration proxy: route, canary, shadow, diff and roll back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin server.
    Serve(ServeArgs),
    /// Validate configuration files; exit 0, or 1 with every error and its place.
    Check(CheckArgs),
    /// Show which route, backend and side a request would get, and why.
    Explain(ExplainArgs),
    /// The shadow diff report from the store: may each route move on?
    Report(ReportArgs),
    /// Set a route's canary share, live and in routes.yaml.
    Canary(CanaryArgs),
    /// Send routes' traffic back to legacy now, or restore a recorded version.
    Rollback(RollbackArgs),
    /// Configuration versions (and the audit log).
    History(HistoryArgs),
    /// Routes that promote themselves: status, start, pause, resume, abort, promote.
    Rollout(RolloutArgs),
    /// Where every route stands: stage, canary, rollout, guard, diff verdict, share on new.
    Status(StatusArgs),
    /// Send a route's recorded requests to a backend and compare the answers.
    Replay(ReplayArgs),
    /// Replace the running proxy with a new process, dropping no connection
    /// (what `systemctl reload strangler` runs).
    Upgrade(UpgradeArgs),
    /// Print a shell completion script for strangler.
    Completions(CompletionsArgs),
    /// Print the manual page (or write one per subcommand into a directory).
    Man(ManArgs),
    /// Print the JSON Schema of routes.yaml, for editors and CI.
    #[command(after_help = help::SCHEMA)]
    Schema,
}

#[derive(Debug, Args)]
#[command(after_help = help::UPGRADE)]
pub struct UpgradeArgs {
    /// The running process's pid file (its `serve --pid-file`).
    #[arg(long, conflicts_with = "config")]
    pub pid_file: Option<PathBuf>,
    /// Or: the config the running process serves, whose default pid file
    /// is then read.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// How long the new process has to take over and be ready.
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
#[command(after_help = help::COMPLETIONS)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = help::MAN)]
pub struct ManArgs {
    /// Write strangler.1 and a strangler-SUBCOMMAND.1 page per subcommand
    /// here instead of printing strangler.1.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = help::REPLAY)]
pub struct ReplayArgs {
    /// The route whose recordings are replayed (it needs a record: block
    /// to have any).
    #[arg(long)]
    pub route: String,
    /// Recordings made within this span before now: 24h, 30m, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_duration_arg)]
    pub since: Duration,
    /// Where to send them: new (the route's new side), legacy, or the name
    /// of a backend in the file.
    #[arg(long, default_value = "new")]
    pub to: String,
    /// Requests per second; 0 for as fast as --concurrency allows.
    #[arg(long, default_value_t = crate::replay::DEFAULT_RATE)]
    pub rate: f64,
    /// At most this many recordings (the oldest first).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = crate::replay::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Print the final run as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Which proxy a command talks to.
#[derive(Debug, Args)]
pub struct Target {
    /// The configuration file; its admin address and token variable are
    /// used unless --admin says otherwise.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// The admin server of the proxy to ask, e.g. http://10.0.0.3:9901,
    /// instead of the config's admin.listen. Without a readable config the
    /// token is taken from STRANGLER_ADMIN_TOKEN.
    #[arg(long, env = "STRANGLER_ADMIN")]
    pub admin: Option<String>,
    /// How long the proxy has to answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
#[command(after_help = help::ROLLOUT)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: RolloutAction,
}

#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// Where each rollout stands (or one route's), why, and its gates' figures.
    Status(RolloutStatusArgs),
    /// Start a route's rollout from its current canary.
    #[command(after_help = help::ROLLOUT_START)]
    Start(RolloutCommandArgs),
    /// Hold a running rollout at its step.
    #[command(after_help = help::ROLLOUT_PAUSE)]
    Pause(RolloutCommandArgs),
    /// Continue a held rollout from the route's current canary.
    #[command(after_help = help::ROLLOUT_RESUME)]
    Resume(RolloutCommandArgs),
    /// Stop the rollout and send the route back to legacy (as a rollback).
    #[command(after_help = help::ROLLOUT_ABORT)]
    Abort(RolloutCommandArgs),
    /// Take the next step now, gates skipped (audited as your decision).
    #[command(after_help = help::ROLLOUT_PROMOTE)]
    Promote(RolloutCommandArgs),
}

#[derive(Debug, Args)]
#[command(after_help = help::ROLLOUT_STATUS)]
pub struct RolloutStatusArgs {
    /// Only this route.
    pub route: Option<String>,
    /// Print JSON (the body of GET /rollouts) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct RolloutCommandArgs {
    /// The route, by its name in routes.yaml.
    pub route: String,
    /// Why (recorded in the rollout's state and the audit log).
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
#[command(after_help = help::STATUS)]
pub struct StatusArgs {
    /// Print JSON (the body of GET /status) instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
#[command(after_help = help::CANARY)]
pub struct CanaryArgs {
    /// The route, by its name in routes.yaml.
    pub route: String,
    /// Share of the route's traffic on the new side: 0 to 100, decimals allowed.
    pub percent: String,
    /// The configuration file: its admin address and token variable are
    /// used, and it is the file edited.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// The admin server of the proxy to change, e.g. http://10.0.0.3:9901,
    /// instead of the config's admin.listen.
    #[arg(long, env = "STRANGLER_ADMIN")]
    pub admin: Option<String>,
    /// Why (recorded in history and audit).
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    /// Do not contact any proxy: edit the file and record the change in the
    /// store (exit 0). A proxy running on the file loads it at its next
    /// file check or restart.
    #[arg(long)]
    pub offline: bool,
    /// How long the proxy has to answer; a proxy that accepts the
    /// connection but does not answer in time is an error (exit 1).
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
#[command(after_help = help::ROLLBACK)]
pub struct RollbackArgs {
    /// Routes to roll back.
    pub routes: Vec<String>,
    /// Every route.
    #[arg(long, conflicts_with = "routes")]
    pub all: bool,
    /// Only this tenant: pin it to legacy (not verified on the metrics,
    /// which do not tell tenants apart).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Serve this recorded version again (see `strangler history`).
    #[arg(long, conflicts_with_all = ["routes", "all", "tenant"])]
    pub to: Option<i64>,
    /// Why (recorded in history and audit).
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    /// The configuration file: its admin address and token variable are
    /// used, and it is the file edited.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// The admin server of the proxy to change, e.g. http://10.0.0.3:9901,
    /// instead of the config's admin.listen.
    #[arg(long, env = "STRANGLER_ADMIN")]
    pub admin: Option<String>,
    /// How long the proxy has to answer each request, and then how long the
    /// new side has to go quiet: exit 4 if it still receives requests then.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Do not wait for the metrics to confirm (exit 0 once applied).
    #[arg(long)]
    pub no_verify: bool,
    /// Do not contact any proxy: edit the file and record the change in the
    /// store (exit 0). A proxy running on the file loads it at its next
    /// file check or restart.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
#[command(after_help = help::HISTORY)]
pub struct HistoryArgs {
    /// The configuration file: gives the store URL.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Read this store instead of the config's (sqlite://FILE or postgres://...).
    #[arg(long)]
    pub store: Option<String>,
    /// The most recent versions to list (and audit entries, with --audit).
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Also list the audit log.
    #[arg(long)]
    pub audit: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = help::REPORT)]
pub struct ReportArgs {
    /// The config file: gives the store URL and each route's threshold.
    #[arg(long, short, default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Read this store instead of the config's (sqlite://FILE or postgres://...).
    #[arg(long)]
    pub store: Option<String>,
    /// Only this route.
    #[arg(long)]
    pub route: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// How far back: 1h, 24h, 7d...
    #[arg(long, default_value = "24h", value_parser = duration_text_arg)]
    pub since: String,
    /// Only live shadow comparisons (shadow) or only replayed ones
    /// (replay); both, each in its own part, by default.
    #[arg(long, value_enum)]
    pub source: Option<report::SourceArg>,
    /// Write times (html, md) in UTC or in this machine's local time, with
    /// its offset; json has Unix milliseconds either way.
    #[arg(long, value_enum, default_value_t = report::TimeArg::Utc)]
    pub time: report::TimeArg,
    /// The form of the report.
    #[arg(long, value_enum, default_value_t = report::ReportFormat::Md)]
    pub format: report::ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = help::SERVE)]
pub struct ServeArgs {
    /// The configuration file (routes.yaml): watched, and reloaded when it
    /// changes.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Listen here instead of the file's `listen` (to run several instances
    /// from one file).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Admin listener instead of the file's `admin.listen`.
    #[arg(long)]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Proxy workers, each a single-threaded event loop with its own upstream
    /// connection pool (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run each worker on a work-stealing runtime instead of a single-threaded
    /// one (measured slower here; kept for experiments).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub work_stealing: bool,
    /// Take over the listening sockets of the running instance (zero-downtime
    /// upgrade); then send SIGQUIT to the old process.
    #[arg(long)]
    pub upgrade: bool,
    /// Where this process writes its pid (default: beside the upgrade
    /// socket, named after the config's absolute path).
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// The Unix socket an upgrade hands the listening sockets over on; the
    /// old and the new process must agree (default: in $TMPDIR, named after
    /// the config's absolute path).
    #[arg(long)]
    pub upgrade_sock: Option<PathBuf>,
    /// How often the config file is checked for changes.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub watch_interval: Duration,
    /// How often the store is polled for changes made by other proxies of
    /// the fleet. With PostgreSQL they are announced at once (LISTEN/NOTIFY)
    /// and the poll is only a safety net; with SQLite it is the only way.
    #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
    pub fleet_poll: Duration,
    /// Time in-flight requests get to finish once the process stops
    /// accepting (after SIGTERM, or 5 s after an upgrade's SIGQUIT); requests
    /// still running then are cut. Set it above the slowest request you serve.
    /// Whole seconds (rounded up).
    #[arg(long, default_value = "5s", value_parser = parse_duration_arg)]
    pub grace_period: Duration,
    /// Time the final step waits for worker threads to stop. Whole seconds
    /// (rounded up).
    #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
    pub shutdown_timeout: Duration,
    /// Shadow jobs waiting to be sent; beyond this they are dropped (queue_full).
    #[arg(long, default_value_t = 1024)]
    pub shadow_queue: usize,
    /// Shadow copies in flight at once.
    #[arg(long, default_value_t = 64)]
    pub shadow_concurrency: usize,
    /// Memory for queued and in-flight shadow jobs (bodies included).
    #[arg(long, default_value = "64MiB", value_parser = parse_size_arg)]
    pub shadow_memory: u64,
    /// Diffs older than this are deleted from the store.
    #[arg(long, default_value = "14d", value_parser = parse_duration_arg)]
    pub retention: Duration,
    /// At most this many diffs are kept in the store (the oldest go first).
    #[arg(long, default_value_t = 1_000_000)]
    pub retention_rows: i64,
    /// Time from a request's first byte to the end of its header; slower
    /// clients get 408 and are disconnected.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub header_timeout: Duration,
    /// Requests in flight (all workers) above which new ones get a fast 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_inflight: usize,
    /// Diff records waiting for the store; beyond this they are dropped (store).
    #[arg(long, default_value_t = 10_000)]
    pub store_queue: usize,
    /// Access-log lines waiting for the writer; beyond this they are dropped
    /// and counted (strangler_access_log_dropped_total).
    #[arg(long, default_value_t = crate::access_log::QUEUE_LINES)]
    pub access_log_queue: usize,
    /// Serve plain HTTP/1.1 exchanges (no body or a Content-Length body, to
    /// a route with no shadow, recording, retries or TLS upstream) on the
    /// owned fast path instead of Pingora's proxy engine; on by default,
    /// `--fast-path=false` sends everything to the engine. Everything else
    /// takes the engine either way.
    #[arg(
        long,
        env = "STRANGLER_FAST_PATH",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub fast_path: bool,
}

#[derive(Debug, Args)]
#[command(after_help = help::CHECK)]
pub struct CheckArgs {
    /// Files to check.
    #[arg(default_value = "routes.yaml")]
    pub files: Vec<PathBuf>,
    /// Also resolve every backend host name (as `serve` does).
    #[arg(long)]
    pub resolve: bool,
    /// `text`: `file: ok (...)`, or one `file:line:column: place: message`
    /// line per error. `json`: one document on stdout, `{"ok": bool,
    /// "files": [{"file", "ok", "errors": [{"line", "column", "place",
    /// "message"}], "warnings": [same as errors], "summary"}]}`.
    #[arg(long, value_enum, default_value_t = check::Format::Text)]
    pub format: check::Format,
}

#[derive(Debug, Args)]
#[command(after_help = help::EXPLAIN)]
pub struct ExplainArgs {
    /// The configuration file whose routes are asked.
    #[arg(long, short, env = "STRANGLER_CONFIG", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Request method, e.g. GET.
    pub method: String,
    /// URL (http://host/path?query) or just a path.
    pub url: String,
    /// A request header, "Name: value"; repeat for more.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Client address, for `sticky: ip`.
    #[arg(long)]
    pub client_ip: Option<std::net::IpAddr>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_size_arg(text: &str) -> Result<u64, String> {
    crate::config::units::ByteSize::parse(text).map(|b| b.get())
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    crate::config::units::parse_duration(text)
}

/// A duration kept as the text the user wrote (the report's window travels
/// as text in its URL), checked here so that a typo exits 2 before any work.
fn duration_text_arg(text: &str) -> Result<String, String> {
    crate::config::units::parse_duration(text).map(|_| text.to_string())
}
