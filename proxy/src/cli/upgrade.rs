//! `strangler upgrade`: the graceful upgrade of runbooks/upgrade.md as one
//! command, which the systemd unit's `ExecReload` runs.
//!
//! It starts this binary (the one on disk now, possibly newer than the
//! running one) with the running process's own command line plus
//! `--upgrade`, from its working directory, waits until the new process
//! listens on the upgrade socket (it has read and validated routes.yaml by
//! then), sends the old one `SIGQUIT` to hand the sockets over, and returns
//! once the new process has announced itself ready in the pid file. The new
//! process outlives this command; under systemd it is in the unit's cgroup
//! and names itself the main process (`MAINPID=`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::cli::{Cli, Command, UpgradeArgs};
use crate::server::runtime_paths;
use crate::service_manager::read_pid_file;

const POLL: Duration = Duration::from_millis(50);

pub fn run(args: &UpgradeArgs) -> Result<i32> {
    let pid_file = match &args.pid_file {
        Some(p) => p.clone(),
        None => runtime_paths(&args.config).0,
    };
    let old_pid = read_pid_file(&pid_file).with_context(|| {
        format!(
            "no running proxy found through {} (start one with `strangler serve`, or pass the --pid-file it runs with)",
            pid_file.display()
        )
    })?;
    let running = RunningProcess::inspect(old_pid)?;
    let upgrade_sock = match &running.serve.upgrade_sock {
        Some(p) => running.cwd.join(p),
        None => runtime_paths(&running.cwd.join(&running.serve.config)).1,
    };
    let sock_before = inode(&upgrade_sock);

    let mut argv = running.argv.clone();
    if !argv.iter().any(|a| a == "--upgrade") {
        argv.push("--upgrade".into());
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = Process::new(&exe)
        .args(&argv[1..])
        .current_dir(&running.cwd)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let new_pid = child.id();
    eprintln!(
        "upgrade: started {} (pid {new_pid}) to take over from pid {old_pid}",
        exe.display()
    );

    let deadline = Instant::now() + args.timeout;
    // The new process binds the upgrade socket once its config is valid and
    // its store open; before that, an exit means it refused to start.
    wait_for(&mut child, deadline, "listen on the upgrade socket", || {
        let now = inode(&upgrade_sock);
        now.is_some() && now != sock_before
    })?;
    let status = Process::new("kill")
        .args(["-QUIT", &old_pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        let _ = child.kill();
        bail!("could not send SIGQUIT to pid {old_pid}: nothing was handed over");
    }
    wait_for(&mut child, deadline, "announce itself ready", || {
        read_pid_file(&pid_file).ok() == Some(new_pid)
    })?;
    println!("upgrade: pid {new_pid} serves; pid {old_pid} finishes its requests and exits");
    Ok(0)
}

/// Polls `done` until it holds; fails if the new process exits first or the
/// deadline passes (then it is stopped, and the old one serves on).
fn wait_for(
    child: &mut Child,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    loop {
        if done() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the new process exited ({status}) before it could {what}: nothing was handed over, the old process serves on; its log above says why"
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the new process did not {what} in time: stopped it");
        }
        std::thread::sleep(POLL);
    }
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// What the running process was started with, read from /proc.
struct RunningProcess {
    argv: Vec<String>,
    cwd: PathBuf,
    serve: crate::cli::ServeArgs,
}

impl RunningProcess {
    fn inspect(pid: u32) -> Result<RunningProcess> {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("pid {pid} from the pid file is not running"))?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .with_context(|| format!("reading the working directory of pid {pid}"))?;
        let serve = match Cli::try_parse_from(&argv) {
            Ok(Cli {
                command: Command::Serve(serve),
            }) => serve,
            _ => bail!(
                "pid {pid} is not `strangler serve` ({}): is the pid file stale?",
                argv.join(" ")
            ),
        };
        Ok(RunningProcess { argv, cwd, serve })
    }
}
