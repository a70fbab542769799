//! The "platform unreachable" circuit: one per client, shared by all its clones (every worker of
//! a run), so a run gives up on a platform that answers nothing instead of retrying batch after
//! batch for as long as each request's own retry budget allows.
//!
//! - Any **answer** of the platform counts as reachable: a 2xx, and any definitive refusal (4xx
//!   other than 408/429, 501). It ends the current outage.
//! - A failure that could pass (connect error, reset, timeout, 408, 429, 5xx) starts an outage
//!   when none is running, dated from when that attempt started (or from the last answer, if
//!   one came later).
//! - When an outage has lasted [`ClientConfig::give_up_after`](crate::ClientConfig) with no
//!   answer, the circuit **opens for good**: every call of the client, in flight or new, ends at
//!   its next step with [`Error::Unreachable`](crate::Error::Unreachable), and nothing more is
//!   sent. Retry sleeps wake up at that deadline, so a run stops on time even when every worker
//!   sleeps on a long `Retry-After`.
//!
//! The open state is sticky on purpose: a run that gave up stops scheduling work, lets what is
//! in flight settle and reports; a new run builds a new client. Time is tokio's, so tests drive
//! the circuit with paused time.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Unreachable;

/// The circuit. See the module docs.
#[derive(Debug)]
pub(crate) struct Reachability {
    base_url: String,
    give_up_after: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_answer: Option<Instant>,
    down_since: Option<Instant>,
    last_failure: String,
    gave_up: Option<Unreachable>,
}

impl Reachability {
    /// A circuit for the platform at `base_url` (shown in the error; give it without
    /// credentials) that opens after `give_up_after` without an answer; `None` never opens.
    pub(crate) fn new(base_url: impl Into<String>, give_up_after: Option<Duration>) -> Self {
        Self {
            base_url: base_url.into(),
            give_up_after,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The platform answered (a success or a definitive refusal): the outage, if any, is over.
    pub(crate) fn answered(&self) {
        let mut state = self.lock();
        state.last_answer = Some(Instant::now());
        state.down_since = None;
    }

    /// An attempt started at `attempt_started` failed in a way that could pass (`reason`: what
    /// happened, e.g. `connection failed`, without URLs or data). `Err` when the circuit is
    /// (now) open.
    pub(crate) fn failed(&self, attempt_started: Instant, reason: &str) -> Result<(), Unreachable> {
        let mut state = self.lock();
        if state.down_since.is_none() {
            let since = match state.last_answer {
                Some(answer) if answer > attempt_started => answer,
                _ => attempt_started,
            };
            state.down_since = Some(since);
        }
        reason.clone_into(&mut state.last_failure);
        self.check_locked(&mut state)
    }

    /// `Err` when the circuit is open, or opens now because the outage has lasted long enough.
    pub(crate) fn check(&self) -> Result<(), Unreachable> {
        let mut state = self.lock();
        self.check_locked(&mut state)
    }

    fn check_locked(&self, state: &mut State) -> Result<(), Unreachable> {
        if let Some(gave_up) = &state.gave_up {
            return Err(gave_up.clone());
        }
        let (Some(limit), Some(since)) = (self.give_up_after, state.down_since) else {
            return Ok(());
        };
        let down_for = Instant::now().saturating_duration_since(since);
        if down_for < limit {
            return Ok(());
        }
        let gave_up = Unreachable {
            base_url: self.base_url.clone(),
            down_for,
            last_failure: state.last_failure.clone(),
        };
        tracing::info!(
            base_url = %self.base_url,
            down_for_s = down_for.as_secs(),
            last_failure = %state.last_failure,
            "No request to the platform succeeded for the give-up time; giving up."
        );
        state.gave_up = Some(gave_up.clone());
        Err(gave_up)
    }

    /// When the running outage will open the circuit, if one is running.
    fn deadline(&self) -> Option<Instant> {
        let state = self.lock();
        Some(state.down_since? + self.give_up_after?)
    }

    /// The reason the circuit opened, once it has.
    pub(crate) fn gave_up(&self) -> Option<Unreachable> {
        self.lock().gave_up.clone()
    }

    /// Sleeps `delay` (a retry's backoff), waking at the give-up deadline if it comes first:
    /// `Err` as soon as the circuit is open.
    pub(crate) async fn sleep(&self, delay: Duration) -> Result<(), Unreachable> {
        let now = Instant::now();
        // A `Retry-After` of years must not overflow the clock: wait a year at most.
        let wake = now
            .checked_add(delay)
            .unwrap_or(now + Duration::from_secs(365 * 86_400));
        loop {
            self.check()?;
            let until = self.deadline().map_or(wake, |d| d.min(wake));
            tokio::time::sleep_until(until).await;
            self.check()?;
            if Instant::now() >= wake {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:9";

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_give_up_time_without_an_answer_and_stays_open() {
        let c = Reachability::new(URL, Some(secs(10)));
        let t0 = Instant::now();
        assert!(c.failed(t0, "connection failed").is_ok());
        tokio::time::advance(secs(9)).await;
        assert!(c.failed(Instant::now(), "server error 503").is_ok());
        assert!(c.check().is_ok());
        tokio::time::advance(secs(1)).await;
        let e = c.check().unwrap_err();
        assert_eq!(e.down_for, secs(10));
        assert_eq!(e.last_failure, "server error 503");
        assert_eq!(
            e.to_string(),
            "the platform at http://127.0.0.1:9 was unreachable for 10 s \
             (no request succeeded; last failure: server error 503)"
        );
        // Sticky: a late answer of a request in flight does not close it again.
        c.answered();
        assert_eq!(c.check().unwrap_err(), e);
        assert_eq!(c.gave_up(), Some(e));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_ends_the_outage_and_the_next_one_starts_afresh() {
        let c = Reachability::new(URL, Some(secs(10)));
        c.failed(Instant::now(), "request timed out").unwrap();
        tokio::time::advance(secs(8)).await;
        c.answered(); // e.g. a 400 from the platform: it is there
        tokio::time::advance(secs(8)).await;
        c.failed(Instant::now(), "connection failed").unwrap();
        tokio::time::advance(secs(9)).await;
        assert!(c.check().is_ok(), "9 s into the second outage");
        tokio::time::advance(secs(1)).await;
        assert_eq!(c.check().unwrap_err().down_for, secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_dates_from_the_failed_attempt_not_from_its_timeout() {
        let c = Reachability::new(URL, Some(secs(10)));
        let sent = Instant::now();
        tokio::time::advance(secs(10)).await; // the request hung until its timeout
        assert_eq!(
            c.failed(sent, "request timed out").unwrap_err().down_for,
            secs(10)
        );

        // …unless the platform answered another request after that attempt started.
        let c = Reachability::new(URL, Some(secs(10)));
        let sent = Instant::now();
        tokio::time::advance(secs(4)).await;
        c.answered();
        tokio::time::advance(secs(6)).await;
        assert!(c.failed(sent, "request timed out").is_ok());
        tokio::time::advance(secs(4)).await;
        assert!(c.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_sleep_wakes_at_the_give_up_deadline() {
        let c = Reachability::new(URL, Some(secs(10)));
        let t0 = Instant::now();
        c.failed(t0, "429 Too Many Requests").unwrap();
        // Retry-After: 60 s, but the run gives up 10 s into the outage.
        let e = c.sleep(secs(60)).await.unwrap_err();
        assert_eq!(Instant::now() - t0, secs(10));
        assert_eq!(e.down_for, secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_retry_after_still_ends_at_the_give_up_deadline() {
        let c = Reachability::new(URL, Some(secs(10)));
        let t0 = Instant::now();
        c.failed(t0, "429 Too Many Requests").unwrap();
        assert_eq!(c.sleep(Duration::MAX).await.unwrap_err().down_for, secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_sleep_runs_its_course_when_another_worker_gets_an_answer() {
        let c = std::sync::Arc::new(Reachability::new(URL, Some(secs(10))));
        let t0 = Instant::now();
        c.failed(t0, "server error 502").unwrap();
        let other = std::sync::Arc::clone(&c);
        tokio::spawn(async move {
            tokio::time::sleep(secs(5)).await;
            other.answered();
        });
        c.sleep(secs(30)).await.unwrap();
        assert_eq!(Instant::now() - t0, secs(30));
        assert!(c.check().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_give_up_time_it_never_opens() {
        let c = Reachability::new(URL, None);
        c.failed(Instant::now(), "connection failed").unwrap();
        tokio::time::advance(secs(86_400)).await;
        assert!(c.check().is_ok());
        c.sleep(secs(5)).await.unwrap();
        assert_eq!(c.gave_up(), None);
    }
}
