//! A timer a client connection keeps for its life, for the waits it makes
//! on every request: the idle wait for the next request, and the wait for
//! the upstream's answer.
//!
//! A timer made for one wait (`tokio::time::timeout`) is put into tokio's
//! timer wheel under the wheel's lock when the wait first has to sleep, and
//! taken out under the lock again when the wait ends; on a kept-alive
//! connection both waits sleep on nearly every request, so that is two
//! insertions and two removals per request. A kept timer whose deadline
//! only moves later is pushed with one atomic compare-and-swap instead
//! (tokio's `Sleep::reset` extends a registered entry in place, and the
//! wheel moves the entry when its old deadline comes round): the
//! connection's timer enters the wheel about once per deadline's length,
//! not once per request. A wait with a deadline earlier than the last one
//! still works; tokio then moves the entry under the lock, as a new timer
//! would.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One kept timer; each [`KeptTimer::within`] sets its deadline anew.
#[derive(Debug, Default)]
pub struct KeptTimer {
    /// Made by the first wait that needs it, so a connection that never
    /// waits makes none.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl KeptTimer {
    pub fn new() -> KeptTimer {
        KeptTimer::default()
    }

    /// `work`'s output, unless `limit` passes first (`None` then). With
    /// no limit, `work` is awaited as it is.
    pub async fn within<F: Future>(
        &mut self,
        limit: Option<Duration>,
        work: F,
    ) -> Option<F::Output> {
        self.within_from(None, limit, work).await
    }

    /// As [`KeptTimer::within`], with the wait counted from `start`, a
    /// clock reading the caller already took at the wait's start (the end
    /// of the last answer, for the idle wait; the request's start, for the
    /// answer on a pooled connection), or from now when it has none. Both
    /// waits are made on nearly every request, and each reading saved is a
    /// `clock_gettime` less per request.
    pub async fn within_from<F: Future>(
        &mut self,
        start: Option<std::time::Instant>,
        limit: Option<Duration>,
        work: F,
    ) -> Option<F::Output> {
        let Some(limit) = limit else {
            return Some(work.await);
        };
        let start = start.map_or_else(Instant::now, Instant::from_std);
        let deadline = start + limit;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        // The work first, as `tokio::time::timeout` polls it: what is
        // ready when the deadline is is not thrown away.
        tokio::select! {
            biased;
            out = work => Some(out),
            () = sleep.as_mut() => None,
        }
    }
}

/// Test support: a clock reading a minute old, for a wait counted from a
/// reading (a limit under a minute has passed by it).
#[cfg(test)]
pub(super) fn a_minute_ago() -> std::time::Instant {
    std::time::Instant::now()
        .checked_sub(Duration::from_secs(60))
        .expect("a minute ago is a reading")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[tokio::test]
    async fn each_wait_ends_at_its_own_limit() {
        let mut timer = KeptTimer::new();
        // Ready work is never cut short.
        assert_eq!(timer.within(ms(5), async { 1 }).await, Some(1));
        // Work longer than the limit is.
        assert_eq!(timer.within(ms(20), tokio::time::sleep(LONG)).await, None);
        // After the timer fired, the next wait has a fresh deadline (a
        // timer left elapsed would end it at once).
        assert_eq!(
            timer
                .within(Some(LONG), tokio::time::sleep(Duration::from_millis(30)))
                .await,
            Some(())
        );
        // A later deadline (pushed in place), then an earlier one (moved):
        // each wait ends at its own limit, never before it.
        for limit in [40, 80, 20, 60] {
            let started = Instant::now();
            let cut =
                tokio::time::timeout(LONG, timer.within(ms(limit), std::future::pending::<()>()));
            assert_eq!(cut.await.expect("the wait ended by its own limit"), None);
            assert!(started.elapsed() >= Duration::from_millis(limit));
        }
        // No limit: the work as it is.
        assert_eq!(timer.within(None, async { 2 }).await, Some(2));
    }

    #[tokio::test]
    async fn a_wait_from_a_reading_is_counted_from_it() {
        let mut timer = KeptTimer::new();
        // Counted from a reading a minute old, a 30 s limit has passed:
        // the wait ends at once (counted from now, it would take 30 s).
        let old = a_minute_ago();
        let cut = tokio::time::timeout(
            Duration::from_secs(10),
            timer.within_from(Some(old), Some(LONG), std::future::pending::<()>()),
        );
        assert_eq!(
            cut.await.expect("ended by the limit from the reading"),
            None
        );
        // Work ready at once is never cut short, however old the reading.
        let ready = timer.within_from(Some(old), Some(LONG), async { 3 });
        assert_eq!(ready.await, Some(3));
        // A recent reading: the wait ends at its limit, never before it.
        let start = std::time::Instant::now();
        let out = timer
            .within_from(Some(start), ms(40), std::future::pending::<()>())
            .await;
        assert_eq!(out, None);
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn a_pushed_deadline_is_not_ended_by_the_old_one() {
        let mut timer = KeptTimer::new();
        // The timer enters the wheel with a 100 ms deadline; the wait ends
        // early.
        let quick = tokio::time::sleep(Duration::from_millis(10));
        assert_eq!(timer.within(ms(100), quick).await, Some(()));
        // Pushed to 30 s, it lets work of 300 ms run past the old deadline.
        let work = tokio::time::sleep(Duration::from_millis(300));
        assert_eq!(timer.within(Some(LONG), work).await, Some(()));
    }

    #[tokio::test]
    async fn an_earlier_deadline_moves_the_timer() {
        let mut timer = KeptTimer::new();
        assert_eq!(
            timer
                .within(Some(LONG), tokio::time::sleep(Duration::from_millis(5)))
                .await,
            Some(())
        );
        // Had the entry stayed at 30 s, this wait would not end for 30 s.
        let cut = tokio::time::timeout(
            Duration::from_secs(10),
            timer.within(ms(50), std::future::pending::<()>()),
        );
        assert_eq!(
            cut.await.expect("ended at 50 ms, not at the old deadline"),
            None
        );
    }
}
