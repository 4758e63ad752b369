//! The text under each subcommand's `--help`: examples first, then the exit
//! codes a runbook or a script branches on. Kept apart from the argument
//! definitions so those stay readable; the test below walks the whole
//! command tree so that no subcommand or argument goes without help.

pub const SERVE: &str = "\
Examples:
  strangler serve --config routes.yaml
  strangler serve -c /etc/strangler/routes.yaml --grace-period 30s
  strangler serve -c routes.yaml --upgrade     # take over from the running process
Exit codes:
  0  stopped cleanly (SIGTERM, or handed over after an upgrade's SIGQUIT)
  1  could not start: an invalid routes.yaml, a port in use, a store that
     cannot be opened; the message says which
  2  wrong command line
Under systemd (the Debian package) `systemctl reload strangler` runs
`strangler upgrade`. See runbooks/upgrade.md.";

pub const CHECK: &str = "\
Examples:
  strangler check                          # ./routes.yaml
  strangler check routes.yaml staging.yaml
  strangler check --resolve /etc/strangler/routes.yaml
  strangler check --format json routes.yaml | jq '.files[].errors'
Each error reads FILE:LINE:COLUMN: PLACE: MESSAGE, like a compiler's.
Exit codes:
  0  every file is valid
  1  at least one is not: every error is printed with its place
  2  wrong command line";

pub const SCHEMA: &str = "\
Examples:
  strangler schema > routes.schema.json
  strangler schema | python3 -m json.tool | less
The first line of routes.yaml points editors at it:
  # yaml-language-server: $schema=./docs/routes.schema.json
The Debian package installs it as /usr/share/strangler/routes.schema.json.";

pub const EXPLAIN: &str = "\
Examples:
  strangler explain GET /api/orders/7
  strangler explain GET http://shop.example/api/orders/7 -H 'X-Tenant-Id: acme'
  strangler explain POST /api/orders --client-ip 203.0.113.9 --json
Exit codes:
  0  explained   1  the config or the request could not be read   2  wrong command line";

pub const REPORT: &str = "\
Examples:
  strangler report                                   # Markdown, last 24h, every route
  strangler report --route orders-read --since 7d
  strangler report --format html -o report.html
  strangler report --format json --source replay | jq '.replay'
Exit codes:
  0  written (whatever the verdicts: read them, or use `strangler rollout`'s
     report gate)   1  the config or the store could not be read
  2  wrong command line (an unknown --format or --source among them)
See runbooks/read-diff-report.md.";

pub const HISTORY: &str = "\
Examples:
  strangler history
  strangler history --limit 5 --audit
  strangler history --store postgres://strangler@db/strangler --json
Exit codes:
  0  listed   1  the config or the store could not be read   2  wrong command line
Restore a listed version with `strangler rollback --to N`.";

/// Exit codes of `canary` and `rollback`.
macro_rules! change_exit_codes {
    () => {
        "\
Exit codes:
  0  the running proxy applied it (a rollback: and its metrics confirmed that
     no new request reaches the new side); or --offline: the file was edited
  3  no proxy listens at the config's admin address: only the file was
     edited, nothing changed live
  4  (rollback) applied live, but the new side still received requests when
     --timeout ran out
  1  refused (bad token, unknown route...), no answer from the proxy, or
     another failure: read the message
  2  wrong command line"
    };
}

pub const CANARY: &str = concat!(
    "\
Examples:
  strangler canary orders-read 10 --reason 'error rate flat for a day'
  strangler canary orders-read 2.5 --admin http://10.0.0.3:9901
  strangler canary orders-read 0 --offline      # edit the file only
",
    change_exit_codes!(),
    "\nSee runbooks/ramp-canary.md."
);

pub const ROLLBACK: &str = concat!(
    "\
Examples:
  strangler rollback orders-read --reason 'p99 doubled'
  strangler rollback --all --reason incident-4711
  strangler rollback orders-read --tenant acme
  strangler rollback --to 12                    # serve version 12 again
",
    change_exit_codes!(),
    "\nSee runbooks/rollback-route.md and runbooks/rollback-everything.md."
);

/// Exit codes of `rollout` and `status`.
macro_rules! admin_exit_codes {
    () => {
        "\
Exit codes:
  0  the running proxy did it (or there was nothing to do: start on a
     running rollout says so)
  3  no proxy answered at the admin address: nothing was changed
  1  refused (unknown route, no rollout: block, not running...), no answer,
     or another failure: read the message
  2  wrong command line"
    };
}

pub const ROLLOUT: &str = concat!(
    "\
Examples:
  strangler rollout status
  strangler rollout start orders-read --reason 'shadow clean for a week'
  strangler rollout pause orders-read --reason 'waiting for the DBA'
",
    admin_exit_codes!(),
    "\nSee runbooks/ramp-with-rollout.md and runbooks/rollout-held-or-failed.md."
);

pub const ROLLOUT_STATUS: &str = concat!(
    "\
Examples:
  strangler rollout status
  strangler rollout status orders-read --json
",
    admin_exit_codes!()
);

pub const ROLLOUT_START: &str = concat!(
    "\
Example:
  strangler rollout start orders-read --reason 'report clean for 7d'
",
    admin_exit_codes!()
);

pub const ROLLOUT_PAUSE: &str = concat!(
    "\
Example:
  strangler rollout pause orders-read --reason 'freeze until Monday'
",
    admin_exit_codes!()
);

pub const ROLLOUT_RESUME: &str = concat!(
    "\
Example:
  strangler rollout resume orders-read --reason 'freeze over'
",
    admin_exit_codes!()
);

pub const ROLLOUT_ABORT: &str = concat!(
    "\
Example:
  strangler rollout abort orders-read --reason 'latency regression'
",
    admin_exit_codes!()
);

pub const ROLLOUT_PROMOTE: &str = concat!(
    "\
Example:
  strangler rollout promote orders-read --reason 'gates reviewed by hand'
",
    admin_exit_codes!()
);

pub const STATUS: &str = concat!(
    "\
Examples:
  strangler status
  strangler status --admin http://10.0.0.3:9901 --json
",
    admin_exit_codes!()
);

pub const REPLAY: &str = "\
Examples:
  strangler replay --route orders-read --since 24h --to new --rate 50
  strangler replay --route orders-write --to orders-v2 --limit 100 --json
Exit codes:
  0  the run went through every recording asked for (diffs or not: read
     them in `strangler report --source replay`)
  1  it could not run, or stopped: no proxy answered, an unknown route or
     backend, the store failed, or it was cancelled (Ctrl-C cancels it)
  2  wrong command line
See runbooks/replay-before-cutover.md.";

pub const UPGRADE: &str = "\
Examples:
  strangler upgrade --pid-file /run/strangler/strangler.pid   # what `systemctl reload` runs
  strangler upgrade --config routes.yaml                      # the default pid file of that config
Exit codes:
  0  the new process took the sockets over and serves; the old one finishes
     its requests and exits
  1  nothing was handed over: no running process, or the new one did not
     start (an invalid routes.yaml, say); the old process serves on
  2  wrong command line
See runbooks/upgrade.md.";

pub const COMPLETIONS: &str = "\
Examples:
  strangler completions bash > /etc/bash_completion.d/strangler
  strangler completions zsh > \"${fpath[1]}/_strangler\"
  strangler completions fish > ~/.config/fish/completions/strangler.fish
The Debian package installs them for bash, zsh and fish.";

pub const MAN: &str = "\
Examples:
  strangler man | man -l -
  strangler man --dir /usr/share/man/man1     # strangler.1 and one page per subcommand
The Debian package installs them.";

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::Cli;

    /// Every subcommand shows an example under its --help, and every
    /// argument says what it is: found missing on 9 arguments when written.
    #[test]
    fn every_subcommand_has_an_example_and_every_argument_help() {
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        walk(&cli, "strangler", &mut missing);
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }

    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if path != "strangler" {
            let after = cmd
                .get_after_help()
                .map(|t| t.to_string())
                .unwrap_or_default();
            if !after.contains("Example") {
                missing.push(format!("{path}: no example"));
            }
            if cmd.get_about().is_none() {
                missing.push(format!("{path}: no description"));
            }
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" || arg.is_hide_set() {
                continue;
            }
            if arg.get_help().is_none() {
                missing.push(format!("{path} {id}: no help"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }

    /// A value enum is checked before any work: a wrong --format exits 2.
    #[test]
    fn a_wrong_format_is_refused_by_the_command_line() {
        let err = Cli::try_parse_from(["strangler", "report", "--format", "pdf"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("possible values"), "{err}");
    }

    /// Durations everywhere: seconds need their unit, like in routes.yaml.
    #[test]
    fn durations_take_units() {
        let cli = Cli::try_parse_from(["strangler", "serve", "--grace-period", "30s"]).unwrap();
        match cli.command {
            crate::cli::Command::Serve(a) => {
                assert_eq!(a.grace_period, std::time::Duration::from_secs(30))
            }
            _ => unreachable!(),
        }
        let err = Cli::try_parse_from(["strangler", "serve", "--grace-period", "30"]).unwrap_err();
        assert!(err.to_string().contains("30s"), "{err}");
    }
}
