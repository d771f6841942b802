//! [`Activity`]: how many requests one connection has in flight and when the last of them
//! ended. The idle timeout reads it when its timer fires, so a request costs two atomic
//! updates rather than a wake-up of the connection task.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::framing::GuardState;

/// The requests in flight on one connection.
#[derive(Debug)]
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// When the count last fell to zero, in nanoseconds after `epoch`.
    last_end: AtomicU64,
    epoch: Instant,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Counts a request as in flight until the returned value is dropped.
    pub fn start(self: &Arc<Activity>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Returns when the connection last became free of requests, or `None` while one is in
    /// flight.
    fn quiet_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let nanos = self.last_end.load(Ordering::Acquire);
        Some(self.epoch + Duration::from_nanos(nanos))
    }
}

/// One request in flight; dropping it ends the request.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // The time is stored before the count falls, so a reader that loads a zero count also
        // loads the end of the last request.
        let nanos = u64::try_from(activity.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        activity.last_end.fetch_max(nanos, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Completes once the connection has had no request in flight, and no request head in
/// progress on `guard`, for `quiet`, counted from the first poll. Wakes only when its timer
/// fires.
pub(super) async fn wait_quiet(
    activity: Arc<Activity>,
    guard: Option<Arc<GuardState>>,
    quiet: Duration,
) {
    let first_poll = Instant::now();
    let mut deadline = first_poll + quiet;
    loop {
        tokio::time::sleep_until(deadline).await;
        let now = Instant::now();
        let head_in_progress = guard.as_ref().is_some_and(|guard| guard.head_in_progress());
        match activity.quiet_since() {
            Some(since) if !head_in_progress => {
                let quiet_until = since.max(first_poll) + quiet;
                if now >= quiet_until {
                    return;
                }
                deadline = quiet_until;
            }
            _ => deadline = now + quiet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn completes_after_quiet_period_without_requests() {
        let activity = Activity::new();
        let started = Instant::now();
        wait_quiet(Arc::clone(&activity), None, Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_request_postpones_completion() {
        let activity = Activity::new();
        let started = Instant::now();
        let request = activity.start();
        let waiter = tokio::spawn(wait_quiet(
            Arc::clone(&activity),
            None,
            Duration::from_secs(10),
        ));
        // Busy through two expiries of the timer, then ends at 25 s.
        tokio::time::sleep(Duration::from_secs(25)).await;
        drop(request);
        waiter.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(35));
    }

    #[tokio::test(start_paused = true)]
    async fn short_request_moves_the_deadline() {
        let activity = Activity::new();
        let started = Instant::now();
        let waiter = tokio::spawn(wait_quiet(
            Arc::clone(&activity),
            None,
            Duration::from_secs(10),
        ));
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(activity.start());
        waiter.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(14));
    }
}
