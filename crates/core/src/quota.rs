//! Token buckets: the one model of ARM's request quotas, used on both sides of the
//! wire. The emulator throttles with them (429 + Retry-After); the client paces its
//! own requests with a mirror of the same limits and corrects that mirror from the
//! server's feedback (`x-ms-ratelimit-remaining-*` headers and 429s), so a run stays
//! just under the quota instead of bouncing off it.
//!
//! Owns only arithmetic on time; it never sends or answers a request, and never
//! waits (the engine's `cloud::ratelimit` waits on these buckets).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// ARM's documented per-identity limits (reads 250 burst refilling 25/s; writes and
/// deletes 200 burst refilling 10/s each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub burst: f64,
    pub per_second: f64,
}

pub const ARM_READS: Quota = Quota {
    burst: 250.0,
    per_second: 25.0,
};
pub const ARM_WRITES: Quota = Quota {
    burst: 200.0,
    per_second: 10.0,
};
pub const ARM_DELETES: Quota = ARM_WRITES;

impl Quota {
    /// The same quota on a clock running `1/scale` times faster (the emulator's
    /// `--time-scale`): the burst stays, the refill speeds up, so ratios hold.
    pub fn scaled(self, time_scale: f64) -> Quota {
        Quota {
            burst: self.burst,
            per_second: self.per_second / time_scale.max(1e-9),
        }
    }
}

#[derive(Debug)]
struct State {
    quota: Quota,
    tokens: f64,
    at: Instant,
    /// Nothing is granted before this instant (after a 429).
    paused_until: Option<Instant>,
}

/// A token bucket. `try_take` never blocks; callers decide how to wait.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<State>,
}

impl TokenBucket {
    pub fn new(quota: Quota) -> TokenBucket {
        TokenBucket {
            state: Mutex::new(State {
                quota,
                tokens: quota.burst,
                at: Instant::now(),
                paused_until: None,
            }),
        }
    }

    pub fn quota(&self) -> Quota {
        self.state.lock().expect("bucket lock").quota
    }

    /// Change the refill rate from now on (a client that learns the server's time
    /// scale); tokens already held stay.
    pub fn set_quota(&self, quota: Quota) {
        let mut s = self.state.lock().expect("bucket lock");
        Self::refill(&mut s, Instant::now());
        s.quota = quota;
        s.tokens = s.tokens.min(quota.burst);
    }

    fn refill(s: &mut State, now: Instant) {
        let dt = now.saturating_duration_since(s.at).as_secs_f64();
        s.tokens = (s.tokens + dt * s.quota.per_second).min(s.quota.burst);
        s.at = now;
    }

    /// Take one token: `Ok(remaining)` or `Err(wait)` until one is available.
    pub fn try_take(&self, now: Instant) -> Result<u64, Duration> {
        let mut s = self.state.lock().expect("bucket lock");
        if let Some(until) = s.paused_until {
            if now < until {
                return Err(until - now);
            }
            s.paused_until = None;
        }
        Self::refill(&mut s, now);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(s.tokens as u64)
        } else {
            let need = (1.0 - s.tokens) / s.quota.per_second.max(1e-9);
            Err(Duration::from_secs_f64(need))
        }
    }

    /// The server said how many requests remain: never believe we have more.
    pub fn observe_remaining(&self, remaining: u64) {
        let mut s = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        Self::refill(&mut s, now);
        s.tokens = s.tokens.min(remaining as f64);
    }

    /// The server throttled us: empty the bucket and grant nothing for `wait`.
    pub fn throttled(&self, wait: Duration) {
        let mut s = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        s.tokens = 0.0;
        s.at = now;
        let until = now + wait;
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
    }
}

/// Which quota a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Read,
    Write,
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let b = TokenBucket::new(Quota {
            burst: 3.0,
            per_second: 2.0,
        });
        let t0 = Instant::now();
        assert_eq!(b.try_take(t0), Ok(2));
        assert_eq!(b.try_take(t0), Ok(1));
        assert_eq!(b.try_take(t0), Ok(0));
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 0.01, "{wait:?}");
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_ok());
        // Refill never exceeds the burst.
        assert_eq!(b.try_take(t0 + Duration::from_secs(100)), Ok(2));
    }

    #[test]
    fn throttling_pauses_and_feedback_lowers() {
        let b = TokenBucket::new(ARM_WRITES);
        b.observe_remaining(5);
        let now = Instant::now();
        assert_eq!(b.try_take(now), Ok(4));
        b.throttled(Duration::from_secs(2));
        let wait = b.try_take(Instant::now()).unwrap_err();
        assert!(wait > Duration::from_millis(1900));
    }

    #[test]
    fn scaling_keeps_burst_and_speeds_refill() {
        let q = ARM_READS.scaled(0.01);
        assert_eq!(q.burst, 250.0);
        assert_eq!(q.per_second, 2500.0);
    }
}
