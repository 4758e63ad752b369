//! The shadow path gives way to the data plane. Copies, diffs and store
//! hand-offs are work the client never waits for, so the engine's thread
//! runs at the lowest CPU priority Linux has (nice 19): on a busy machine it
//! gets the cores the workers leave, instead of an equal share taken from
//! them. What it then cannot keep up with fills its bounded queue and is
//! dropped and counted (`queue_full`), never waited for.

use std::io;

/// The shadow path's nice value: the lowest priority.
pub const SHADOW_NICE: i32 = 19;

/// Lowers the calling thread, and the threads it starts from now on, to
/// [`SHADOW_NICE`]. Only this thread: Linux keeps a nice value per thread,
/// and `setpriority` on a thread id sets that thread's alone.
pub fn lower_this_thread() -> io::Result<()> {
    let thread = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(thread), SHADOW_NICE).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let lowered = std::thread::spawn(|| {
            lower_this_thread().unwrap();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, SHADOW_NICE);
        let here = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_ne!(here, SHADOW_NICE, "the test's own thread kept its priority");
    }
}
