//! When to try a request again, and how long to wait first. One policy for every
//! request the ARM client sends; call sites never loop themselves.
//!
//! Retried: 429 (after the server's `Retry-After`), 5xx, 409
//! `AnotherOperationInProgress`, and a connection reset for idempotent requests (GET,
//! PUT, DELETE and the power actions, which ARM defines as idempotent). A reset of a
//! non-idempotent request is surfaced, because it may have been applied.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt up to `cap`.
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
        }
    }
}

/// What went wrong with one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// HTTP status, ARM error code (if any) and the server's Retry-After.
    Status {
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The connection broke before a response arrived.
    Connection,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// Exponential backoff with jitter (half fixed, half random), so that many
    /// clients throttled at once do not come back at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// `attempt` counts from 0 for the first try.
    pub fn verdict(&self, failure: &Failure, attempt: u32, idempotent: bool) -> Verdict {
        if attempt + 1 >= self.max_attempts {
            return Verdict::GiveUp;
        }
        match failure {
            Failure::Status {
                status,
                code,
                retry_after,
            } => {
                let transient = *status == 429
                    || *status >= 500
                    || (*status == 409 && code.as_deref() == Some("AnotherOperationInProgress"));
                if !transient {
                    return Verdict::GiveUp;
                }
                // The server's wait wins; jitter on top only when it gave none.
                Verdict::RetryAfter(retry_after.unwrap_or_else(|| self.backoff(attempt)))
            }
            Failure::Connection if idempotent => Verdict::RetryAfter(self.backoff(attempt)),
            Failure::Connection => Verdict::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16, ra: Option<u64>) -> Failure {
        Failure::Status {
            status: s,
            code: None,
            retry_after: ra.map(Duration::from_secs),
        }
    }

    #[test]
    fn throttling_waits_what_the_server_says() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.verdict(&status(429, Some(7)), 0, true),
            Verdict::RetryAfter(Duration::from_secs(7))
        );
        assert!(matches!(
            p.verdict(&status(503, None), 0, true),
            Verdict::RetryAfter(_)
        ));
    }

    #[test]
    fn client_errors_and_unsafe_resets_are_not_retried() {
        let p = RetryPolicy::default();
        assert_eq!(p.verdict(&status(400, None), 0, true), Verdict::GiveUp);
        assert_eq!(p.verdict(&status(409, None), 0, true), Verdict::GiveUp);
        assert_eq!(p.verdict(&Failure::Connection, 0, false), Verdict::GiveUp);
        assert!(matches!(
            p.verdict(&Failure::Connection, 0, true),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(p.verdict(&status(500, None), 7, true), Verdict::GiveUp);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..10 {
            let d = p.backoff(attempt);
            let exp = (p.base * (1 << attempt)).min(p.cap);
            assert!(d >= exp / 2 && d <= exp, "{attempt}: {d:?}");
        }
    }
}
