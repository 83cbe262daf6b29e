//! Holding layer locks: taken in a fixed order, leases renewed every third of
//! their length by a background task (so neither a slow store nor a blocking
//! step such as planning or a confirmation prompt can let them run out),
//! released at the end. A lease that cannot be renewed is *lost*: the work that
//! runs under [`Held::guard`] stops before the lease runs out, and
//! [`Held::check`] refuses to start anything new; another holder could
//! otherwise start on the same layer.
//!
//! Locks come before reading: `apply` and `destroy` take their locks, then read
//! the cloud and plan (Terraform's order), so a plan is never made on a state
//! that another holder was still changing.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::state::{self, LockGuard, StateError, StateStore};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    #[error("taking the {scope} lock: {message}")]
    Take { scope: String, message: String },
    #[error("renewing the lock on {store}; stopped before its lease runs out: {message}")]
    Renew { store: String, message: String },
    /// `LIFEBOAT_LOCK_LEASE_SECONDS` out of range.
    #[error("{0}")]
    Lease(String),
}

impl LockError {
    fn take(scope: &str, e: StateError) -> LockError {
        LockError::Take {
            scope: scope.to_string(),
            message: e.to_string(),
        }
    }
}

/// Locks held for one piece of work, renewed in the background until released.
pub struct Held<'s> {
    store: &'s StateStore,
    command: String,
    lease: Duration,
    timeout: Duration,
    guards: Arc<Mutex<Vec<(String, LockGuard)>>>,
    lost: watch::Receiver<Option<LockError>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl<'s> Held<'s> {
    /// Take the locks for `scopes` (sorted, each waited for up to `timeout`) and
    /// start renewing them. Must run inside the runtime that will renew them.
    pub async fn take(
        store: &'s StateStore,
        scopes: &[String],
        command: &str,
        timeout: Duration,
    ) -> Result<Held<'s>, LockError> {
        let lease = state::lock_lease().map_err(|e| LockError::Lease(e.to_string()))?;
        let (lost_tx, lost) = watch::channel(None);
        let guards: Arc<Mutex<Vec<(String, LockGuard)>>> = Arc::default();
        let renewal = tokio::spawn(renew(guards.clone(), store.describe(), lease, lost_tx));
        let held = Held {
            store,
            command: command.to_string(),
            lease,
            timeout,
            guards,
            lost,
            renewal,
        };
        if let Err(e) = held.extend(scopes).await {
            held.release().await;
            return Err(e);
        }
        Ok(held)
    }

    /// The scopes held now, sorted.
    pub async fn scopes(&self) -> BTreeSet<String> {
        self.guards
            .lock()
            .await
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Also take the locks for `scopes` that are not held yet (in order). The
    /// renewal of the held ones goes on while this waits.
    pub async fn extend(&self, scopes: &[String]) -> Result<(), LockError> {
        let held = self.scopes().await;
        let wanted: BTreeSet<&String> = scopes.iter().filter(|s| !held.contains(*s)).collect();
        for scope in wanted {
            self.check()?;
            let g = self
                .store
                .lock(scope, &self.command, self.lease, self.timeout)
                .await
                .map_err(|e| LockError::take(scope, e))?;
            self.guards.lock().await.push((scope.clone(), g));
        }
        Ok(())
    }

    /// `Err` once a lease could not be renewed.
    pub fn check(&self) -> Result<(), LockError> {
        match &*self.lost.borrow() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Run `work`, stopping it if a lease is lost meanwhile.
    pub async fn guard<T, E: From<LockError>>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.check()?;
        let mut lost = self.lost.clone();
        tokio::select! {
            out = work => out,
            e = async move {
                loop {
                    if let Some(e) = lost.borrow_and_update().clone() {
                        return e;
                    }
                    if lost.changed().await.is_err() {
                        // The renewal task is gone without a verdict: treat it as lost.
                        return LockError::Renew {
                            store: String::new(),
                            message: "lease renewal stopped".into(),
                        };
                    }
                }
            } => Err(e.into()),
        }
    }

    /// Stop renewing and release every lock; one that cannot be released runs
    /// out with its lease.
    pub async fn release(self) {
        self.renewal.abort();
        let guards = std::mem::take(&mut *self.guards.lock().await);
        for (_, g) in guards {
            let _ = g.release().await;
        }
    }
}

/// Renew every held lease each third of its length; report the first failure.
async fn renew(
    guards: Arc<Mutex<Vec<(String, LockGuard)>>>,
    store: String,
    lease: Duration,
    lost: watch::Sender<Option<LockError>>,
) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (_, g) in guards.lock().await.iter_mut() {
            if let Err(e) = g.renew(lease).await {
                let _ = lost.send(Some(LockError::Renew {
                    store: store.clone(),
                    message: e.to_string(),
                }));
                return;
            }
        }
    }
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
    let held = Held::take(store, scopes, command, timeout).await?;
    let out = held.guard(work).await;
    held.release().await;
    out
}
