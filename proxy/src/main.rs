//! The `strangler` binary: parses the command line and hands over to the
//! library. Errors end here, as readable messages and an exit code.

use clap::Parser;

// glibc malloc serializes worker threads on its arena locks under load
// (measured: futex waits in malloc/free were the largest user-space cost).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use strangler::cli::changes::Outcome;
use strangler::cli::{self, Cli, Command};
use strangler::server::{self, ServeOptions};

fn main() {
    // mimalloc asks for transparent huge pages on its arenas, so a table
    // read and built again after the last one was given back touches fresh
    // 2 MB pages that the kernel must zero whole, and the resident size
    // counts them whole. With them off (10,000 routes, one run each): 48
    // against 63 MB at start, 86 against 105 MB right after five reloads,
    // the same data-path throughput within the noise (bench/ab.sh: 45,343
    // against 45,671 req/s, medians of 3; docs/performance.md).
    // MIMALLOC_ALLOW_THP, when set, decides instead.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
    let cli = Cli::parse();
    // The server logs what it does; one-shot commands only warnings.
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_target(false)
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strangler: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => {
            let threads = args.threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            server::serve(ServeOptions {
                config: args.config,
                threads,
                work_stealing: args.work_stealing,
                upgrade: args.upgrade,
                pid_file: args.pid_file,
                upgrade_sock: args.upgrade_sock,
                watch_interval: args.watch_interval,
                fleet_poll: args.fleet_poll,
                grace_period: whole_seconds(args.grace_period),
                shutdown_timeout: whole_seconds(args.shutdown_timeout),
                shadow: strangler::shadow::ShadowSettings {
                    queue: args.shadow_queue,
                    concurrency: args.shadow_concurrency,
                    memory: args.shadow_memory as usize,
                },
                header_timeout: args.header_timeout,
                max_inflight: args.max_inflight,
                access_log_queue: args.access_log_queue,
                fast_path: args.fast_path,
                listeners: strangler::live::ListenerOverrides {
                    listen: args.listen,
                    admin: args.admin_listen,
                },
                store: shadow_diff::WriterSettings {
                    capacity: args.store_queue,
                    retention_age: args.retention,
                    retention_rows: args.retention_rows,
                    ..shadow_diff::WriterSettings::default()
                },
            })?;
            Ok(0)
        }
        Command::Check(args) => Ok(cli::check::run(&args)),
        Command::Schema => {
            print!("{}", cli::schema::render());
            Ok(0)
        }
        Command::Report(args) => {
            let text = cli::report::run(&args)?;
            match &args.output {
                Some(path) => std::fs::write(path, text)?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        Command::Canary(args) => {
            let done = cli::changes::canary(&args)?;
            print!("{}", done.text);
            Ok(change_exit_code(done.outcome))
        }
        Command::Rollback(args) => {
            let done = cli::changes::rollback(&args)?;
            print!("{}", done.text);
            Ok(change_exit_code(done.outcome))
        }
        Command::History(args) => {
            print!("{}", cli::changes::history(&args)?);
            Ok(0)
        }
        Command::Rollout(args) => {
            let printed = cli::rollout::run(&args)?;
            print!("{}", printed.text);
            Ok(printed.code)
        }
        Command::Status(args) => {
            let printed = cli::status::run(&args)?;
            print!("{}", printed.text);
            Ok(printed.code)
        }
        Command::Replay(args) => cli::replay::run(&args),
        Command::Upgrade(args) => cli::upgrade::run(&args),
        Command::Completions(args) => {
            cli::manual::completions(args.shell, &mut std::io::stdout())?;
            Ok(0)
        }
        Command::Man(args) => {
            match &args.dir {
                Some(dir) => cli::manual::write_pages(dir)?,
                None => cli::manual::page(&mut std::io::stdout())?,
            }
            Ok(0)
        }
        Command::Explain(args) => {
            print!("{}", cli::explain::run(&args)?);
            Ok(0)
        }
    }
}

/// Pingora counts shutdown times in whole seconds; a part of one is not
/// dropped.
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The exit code of `canary` and `rollback` (their `--help` and the
/// runbooks list these); errors are 1.
fn change_exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Applied | Outcome::Offline => 0,
        Outcome::FileOnly => 3,
        Outcome::NotVerified => 4,
    }
}
