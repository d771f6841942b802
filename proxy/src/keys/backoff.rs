//! Exponential backoff with jitter for retrying failed JWKS fetches.

use std::time::Duration;

use rand::Rng;

/// First retry delay: short, so a sidecar that starts just before its issuer becomes ready
/// within a fraction of a second after it.
const INITIAL_DELAY: Duration = Duration::from_millis(200);
/// Maximum delay between retries, so an issuer that comes back is noticed within seconds.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Delays that double from 200 ms up to 5 s. Each delay is drawn uniformly from the upper
/// half of the current step ("equal jitter"), so sidecars started together do not retry in
/// lockstep and no delay exceeds the cap.
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            step: INITIAL_DELAY,
        }
    }

    /// Returns the next delay and doubles the step for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(MAX_DELAY);
        let half = step / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// Starts again from the initial delay, after a success.
    pub fn reset(&mut self) {
        self.step = INITIAL_DELAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_cap() {
        let mut backoff = Backoff::new();
        let steps = [200, 400, 800, 1600, 3200, 5000, 5000];
        for step_ms in steps {
            let delay = backoff.next_delay();
            let step = Duration::from_millis(step_ms);
            assert!(delay >= step / 2, "{delay:?} is below half of {step:?}");
            assert!(delay <= step, "{delay:?} is above {step:?}");
        }
    }

    #[test]
    fn backoff_reset_restarts_at_initial() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL_DELAY);
    }
}
