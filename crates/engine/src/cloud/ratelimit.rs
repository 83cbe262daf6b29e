//! The client's side of ARM's quotas: a mirror of one identity's buckets that
//! requests wait on before they are sent. The arithmetic lives in
//! [`lifeboat_core::quota`], shared with the emulator that enforces the same
//! limits; this module only adds the waiting.

use std::time::Instant;

pub use lifeboat_core::quota::{ARM_DELETES, ARM_READS, ARM_WRITES, Class, Quota, TokenBucket};

/// The client's mirror of one identity's ARM quotas.
#[derive(Debug)]
pub struct RateLimiter {
    pub reads: TokenBucket,
    pub writes: TokenBucket,
    pub deletes: TokenBucket,
}

impl RateLimiter {
    pub fn arm(time_scale: f64) -> RateLimiter {
        RateLimiter {
            reads: TokenBucket::new(ARM_READS.scaled(time_scale)),
            writes: TokenBucket::new(ARM_WRITES.scaled(time_scale)),
            deletes: TokenBucket::new(ARM_DELETES.scaled(time_scale)),
        }
    }

    /// Re-pace for a server whose clock runs at `time_scale`.
    pub fn rescale(&self, time_scale: f64) {
        self.reads.set_quota(ARM_READS.scaled(time_scale));
        self.writes.set_quota(ARM_WRITES.scaled(time_scale));
        self.deletes.set_quota(ARM_DELETES.scaled(time_scale));
    }

    pub fn bucket(&self, class: Class) -> &TokenBucket {
        match class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
            Class::Delete => &self.deletes,
        }
    }
}

/// Wait for a token from `bucket`.
pub async fn acquire(bucket: &TokenBucket) {
    loop {
        match bucket.try_take(Instant::now()) {
            Ok(_) => return,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}
