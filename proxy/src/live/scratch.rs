//! Running the memory-hungry part of a change (reading and compiling a
//! configuration, building and installing its table) on a thread that ends
//! with it, and seeing that the memory it freed goes back to the kernel.
//!
//! Reading and building a 10,000-route table passes through about 20 MB
//! more than it keeps (heaptrack at start: a 46 MB peak, 26 MB kept), and a
//! reload holds the old table until the new one is in. The allocator
//! (mimalloc 3, as the `mimalloc` crate builds it) keeps freed memory for
//! reuse and purges it only after its purge delay (1 s), and then only when
//! some thread next frees a page or ends. In a process that is not busy,
//! that was when a blocking-pool thread ended, ten seconds after it last
//! ran (and never for the main thread, which read the file at start): 103
//! MB resident at start and 171-191 MB after five reloads, against 69 and 78
//! MB with the delay at zero (which costs the data path 11% of its
//! throughput, so it is not set).
//!
//! So the work runs on a thread of its own, and a second thread ends
//! [`PURGE_AFTER`] later, which has the allocator purge what the work gave
//! back. Measured with 10,000 routes (release build, two runs): 65 MB at
//! start, 158-160 MB right after five back-to-back reloads and 74-78 MB one
//! to two seconds later. What the work keeps (the new table) outlives its
//! thread; the allocator gives those pages to the threads that use them.

/// Runs `work` on a new thread named `name` and returns its result; a panic
/// in `work` is resumed on the caller's thread. When no thread can be had
/// (a process at its limit), `work` runs on the caller's thread instead of
/// failing the change.
pub fn on_a_thread_of_its_own<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> T {
    let work = std::sync::Mutex::new(Some(work));
    let take = || {
        work.lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the work runs once")
    };
    let result = std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name(name.to_string())
            .spawn_scoped(scope, || take()())
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => take()(),
        }
    });
    release_later();
    result
}

/// Longer than mimalloc's purge delay (1 s), so that what the work freed
/// is due to be purged when [`release_later`]'s thread ends.
const PURGE_AFTER: std::time::Duration = std::time::Duration::from_millis(1500);

/// Starts a thread that waits [`PURGE_AFTER`] and ends: its end is the
/// allocator activity that carries out the purge the work's frees
/// scheduled. Nothing waits for it; a process that cannot start it only
/// gives the memory back later.
fn release_later() {
    let _ = std::thread::Builder::new()
        .name("strangler-release".to_string())
        .spawn(|| {
            std::thread::sleep(PURGE_AFTER);
            // An allocation, so that the allocator knows this thread and
            // runs its end-of-thread collection.
            drop(std::hint::black_box(Box::new(0u64)));
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_on_another_thread_and_its_result_comes_back() {
        let caller = std::thread::current().id();
        let (ran_on, name, sum) = on_a_thread_of_its_own("scratch-test", || {
            let me = std::thread::current();
            (
                me.id(),
                me.name().map(str::to_string),
                (1..=10).sum::<u32>(),
            )
        });
        assert_ne!(ran_on, caller);
        assert_eq!(name.as_deref(), Some("scratch-test"));
        assert_eq!(sum, 55);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            on_a_thread_of_its_own("scratch-test", || -> u32 { panic!("bad table") })
        });
        let panic = caught.expect_err("the panic is resumed");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"bad table"));
    }
}
