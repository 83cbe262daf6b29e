//! Holding layer locks for the length of some work: taken in a fixed order,
//! leases renewed every third of their length *beside* the work (so a slow store
//! never stalls it), released at the end. A lease that cannot be renewed stops
//! the work before it runs out: another holder could otherwise start on the same
//! layer.

use std::future::Future;
use std::time::Duration;

use crate::state::{self, LockGuard, StateError, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("taking the {scope} lock")]
    Take {
        scope: String,
        #[source]
        source: StateError,
    },
    #[error("renewing the lock on {store}; stopped before its lease runs out")]
    Renew {
        store: String,
        #[source]
        source: StateError,
    },
    /// `LIFEBOAT_LOCK_LEASE_SECONDS` out of range.
    #[error(transparent)]
    Lease(StateError),
}

/// Run `work` holding the locks for `scopes` (waiting up to `timeout` for each).
pub async fn holding<T, E>(
    store: &StateStore,
    scopes: &[String],
    command: &str,
    timeout: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<LockError>,
{
    let lease = state::lock_lease().map_err(LockError::Lease)?;
    let mut guards = Vec::new();
    for scope in scopes {
        match store.lock(scope, command, lease, timeout).await {
            Ok(g) => guards.push(g),
            Err(source) => {
                release_all(guards).await;
                return Err(LockError::Take {
                    scope: scope.clone(),
                    source,
                }
                .into());
            }
        }
    }
    let renewing = async {
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            for g in guards.iter_mut() {
                if let Err(source) = g.renew(lease).await {
                    return LockError::Renew {
                        store: store.describe(),
                        source,
                    };
                }
            }
        }
    };
    let out = tokio::select! {
        out = work => out,
        e = renewing => Err(e.into()),
    };
    release_all(guards).await;
    out
}

/// Release every lock; one that cannot be released runs out with its lease.
async fn release_all(guards: Vec<LockGuard>) {
    for g in guards {
        let _ = g.release().await;
    }
}
