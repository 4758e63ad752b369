//! Telling whoever runs the process that it serves: the pid file, and
//! systemd's readiness notification (`Type=notify`).
//!
//! Both are written at the moment `/readyz` turns 200, not at start: after a
//! graceful upgrade the pid file names the process that holds the sockets,
//! which is what `strangler upgrade` waits for, and systemd learns the new
//! main process (`MAINPID=`) from the new process itself, since the one it
//! started hands over and exits. That is why the unit needs
//! `NotifyAccess=all`.

use std::io;
use std::path::Path;

/// Writes the pid file and notifies systemd, if it started us. Failures are
/// logged, not fatal: a proxy that serves but cannot write its pid file is
/// better than one that stops.
pub fn announce_ready(pid_file: &Path) {
    let pid = std::process::id();
    if let Err(e) = write_pid_file(pid_file, pid) {
        log::warn!("cannot write the pid file {}: {e}", pid_file.display());
    }
    if let Err(e) = notify(&format!("READY=1\nMAINPID={pid}\nSTATUS=serving")) {
        log::warn!("cannot notify systemd that we are ready: {e}");
    }
}

/// Replaces the file in one step, so a reader never sees half a pid.
fn write_pid_file(path: &Path, pid: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("pid.{pid}.tmp"));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path)
}

/// The pid in a pid file.
pub fn read_pid_file(path: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not hold a pid: {:?}", path.display(), text.trim()),
        )
    })
}

/// Sends a state line to the socket systemd named in `NOTIFY_SOCKET`; does
/// nothing when it named none (not started by systemd, or not `Type=notify`).
pub fn notify(state: &str) -> io::Result<()> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = socket.to_string_lossy().into_owned();
    let sender = std::os::unix::net::UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sender.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sender.send_to(state.as_bytes(), &socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_file_round_trips_and_a_bad_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pid");
        write_pid_file(&path, 4242).unwrap();
        assert_eq!(read_pid_file(&path).unwrap(), 4242);
        std::fs::write(&path, "nope").unwrap();
        let err = read_pid_file(&path).unwrap_err().to_string();
        assert!(err.contains("does not hold a pid"), "{err}");
    }
}
