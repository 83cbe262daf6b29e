//! Operational state that must outlive a process and, in pipelines, a machine:
//! layer locks, the apply journal, the audit trail ([`audit`]) and saved plans.
//! One interface, [`StateStore`], over two backends:
//!
//! - [`local`] (`--state local`, the default): files under `.lifeboat/state/`.
//! - [`blob`] (`--state azblob://ACCOUNT/CONTAINER`, or `spec.state` in
//!   `platform.yaml`): Azure Blob Storage, for throw-away pipeline agents that run
//!   at once. Locks are blob leases, the journal and the audit log append blobs.
//!
//! Locks are leases: a holder names itself, renews while it works, and a crashed
//! holder's lock frees itself when the lease runs out. The journal records
//! `started`/`done`/`failed` per resource, so a re-run (on any agent) knows which
//! operations may still be running (in doubt) and which resources to re-read
//! directly instead of trusting Resource Graph's lagging index. Commands decide
//! what to lock and record; this module only keeps it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cloud::blob::BlobError;
use lifeboat_core::id::ResourceId;

pub mod audit;
pub mod blob;
pub mod ledger;
pub mod local;

pub use blob::BlobState;
pub use local::LocalState;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "lock `{scope}` is held by {} (pid {} on {}{}, running `{}` since {}, lease until {}); waited {:.1} s. Re-run when it is done, or raise --lock-timeout",
        .holder.owner, .holder.pid, .holder.host,
        .holder.pipeline_run.as_deref().map(|r| format!(", pipeline run {r}")).unwrap_or_default(),
        .holder.command, .holder.started, .holder.expires, .waited.as_secs_f64()
    )]
    Locked {
        scope: String,
        holder: Box<LockInfo>,
        waited: Duration,
    },
    /// `cause` is part of the message, not a `source`: the cause chain is
    /// printed once.
    #[error("{location}: {cause}")]
    Blob {
        location: String,
        cause: Box<BlobError>,
    },
    /// A journal append that failed for a whole batch of writers.
    #[error("{location}: writing the apply journal: {message}")]
    JournalWrite { location: String, message: String },
    #[error("lost the lock `{scope}` ({location}): {reason}")]
    LockLost {
        scope: String,
        location: String,
        reason: String,
    },
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("{0}")]
    Invalid(String),
}

impl StateError {
    pub(crate) fn blob(location: String, source: BlobError) -> StateError {
        StateError::Blob {
            location,
            cause: Box::new(source),
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub use lifeboat_core::location::Location;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// RFC 3339.
    pub started: String,
    pub expires: String,
    /// Set in pipelines (Azure DevOps `BUILD_BUILDID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<String>,
}

impl LockInfo {
    /// This process, holding a lock from now for `lease`.
    pub fn mine(command: &str, lease: Duration) -> LockInfo {
        let now = jiff::Timestamp::now();
        LockInfo {
            owner: owner_name(),
            host: host_name(),
            pid: std::process::id(),
            command: command.to_string(),
            started: now.to_string(),
            expires: (now + lease_span(lease)).to_string(),
            pipeline_run: std::env::var("BUILD_BUILDID")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// A holder nobody could name (a lock being written this instant).
    pub fn unknown() -> LockInfo {
        LockInfo {
            owner: "unknown".into(),
            host: "unknown".into(),
            pid: 0,
            command: "unknown".into(),
            started: "unknown".into(),
            expires: "unknown".into(),
            pipeline_run: None,
        }
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

pub(crate) fn owner_name() -> String {
    std::env::var("BUILD_REQUESTEDFOR")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn lease_span(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::from_secs(60))
}

/// The lease a lock holder takes and renews every third of: 60 s, or
/// `LIFEBOAT_LOCK_LEASE_SECONDS` (15-60, Blob Storage's range for a finite
/// lease; shorter means a crashed holder frees its lock sooner, at the price of
/// more renewals).
pub fn lock_lease() -> Result<Duration, StateError> {
    match std::env::var("LIFEBOAT_LOCK_LEASE_SECONDS") {
        Ok(s) if !s.is_empty() => match s.parse::<u64>() {
            Ok(n) if (15..=60).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(StateError::Invalid(format!(
                "LIFEBOAT_LOCK_LEASE_SECONDS={s}: must be a whole number of seconds from 15 to 60"
            ))),
        },
        _ => Ok(Duration::from_secs(60)),
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub run: String,
    pub plan: String,
    pub id: ResourceId,
    pub api_version: String,
    /// `started`, `done`, `failed`, `skipped`.
    pub event: String,
    pub at: String,
}

/// Resources whose last journal event is `started`: their operation may still run.
pub fn in_doubt(entries: &[JournalEntry]) -> Vec<JournalEntry> {
    let mut last: std::collections::HashMap<&str, &JournalEntry> = Default::default();
    for e in entries {
        last.insert(e.id.key(), e);
    }
    let mut out: Vec<JournalEntry> = last
        .into_values()
        .filter(|e| e.event == "started")
        .cloned()
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The runs (in order of first appearance) to keep when compacting to the last
/// `keep_runs`: those, and any older run with an entry still in doubt.
pub(crate) fn runs_to_keep(entries: &[JournalEntry], keep_runs: usize) -> Vec<String> {
    let mut runs: Vec<&str> = Vec::new();
    for e in entries {
        if !runs.contains(&e.run.as_str()) {
            runs.push(&e.run);
        }
    }
    let cut = runs.len().saturating_sub(keep_runs);
    let doubt = in_doubt(entries);
    runs.iter()
        .enumerate()
        .filter(|(i, r)| *i >= cut || doubt.iter().any(|d| d.run == **r))
        .map(|(_, r)| r.to_string())
        .collect()
}

/// The state store of one command.
#[derive(Debug)]
pub enum StateStore {
    Local(LocalState),
    Blob(BlobState),
}

/// A held lock. Release it with [`LockGuard::release`]; a local lock is also
/// removed on drop, a blob lease runs out by itself.
#[derive(Debug)]
pub enum LockGuard {
    Local(local::LocalLock),
    Blob(blob::BlobLock),
}

impl LockGuard {
    /// Push the lease forward while the holder still works.
    pub async fn renew(&mut self, lease: Duration) -> Result<(), StateError> {
        match self {
            LockGuard::Local(l) => l.renew(lease),
            LockGuard::Blob(b) => b.renew(lease).await,
        }
    }

    pub async fn release(self) -> Result<(), StateError> {
        match self {
            LockGuard::Local(l) => {
                drop(l);
                Ok(())
            }
            LockGuard::Blob(b) => b.release().await,
        }
    }
}

/// Appends to the apply journal; shared by every change of a run (`&self`).
pub enum JournalWriter {
    Local(std::sync::Mutex<local::LocalJournal>),
    Blob(Box<blob::BlobJournal>),
}

impl JournalWriter {
    /// Append one entry; returns once it is stored (a blob journal groups the
    /// entries of concurrent changes into one append).
    pub async fn append(&self, e: &JournalEntry) -> Result<(), StateError> {
        match self {
            JournalWriter::Local(w) => w.lock().expect("journal").append(e),
            JournalWriter::Blob(b) => b.append(e).await,
        }
    }
}

impl StateStore {
    /// Open the store at `location` for the project in `root`. A blob store is
    /// reached once here (its container is created when missing), so a wrong
    /// account or credential fails before anything else happens.
    pub async fn open(
        location: &Location,
        root: &Path,
        auth: crate::cloud::auth::AuthMode,
    ) -> Result<StateStore, StateError> {
        Ok(match location {
            Location::Local => StateStore::Local(LocalState::for_project(root)),
            Location::Blob { account, container } => {
                StateStore::Blob(BlobState::open(account, container, auth).await?)
            }
        })
    }

    /// Where this store keeps things, for messages.
    pub fn describe(&self) -> String {
        match self {
            StateStore::Local(l) => l.dir().display().to_string(),
            StateStore::Blob(b) => b.describe(),
        }
    }

    /// Take the lock for `scope` (`shared`, `tenant-cwz`, `image-cwz`), waiting up
    /// to `timeout` for its holder.
    pub async fn lock(
        &self,
        scope: &str,
        command: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<LockGuard, StateError> {
        Ok(match self {
            StateStore::Local(l) => LockGuard::Local(l.lock(scope, command, lease, timeout).await?),
            StateStore::Blob(b) => LockGuard::Blob(b.lock(scope, command, lease, timeout).await?),
        })
    }

    /// Every journal entry, oldest run first.
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, StateError> {
        match self {
            StateStore::Local(l) => l.journal(),
            StateStore::Blob(b) => b.journal().await,
        }
    }

    /// Keep the journal short: the last `keep_runs` runs and whatever is in doubt.
    pub async fn compact_journal(
        &self,
        entries: &[JournalEntry],
        keep_runs: usize,
    ) -> Result<(), StateError> {
        match self {
            StateStore::Local(l) => l.compact_journal(entries, keep_runs),
            StateStore::Blob(b) => b.compact_journal(entries, keep_runs).await,
        }
    }

    /// A writer for run `run`'s journal entries.
    pub async fn journal_writer(&self, run: &str) -> Result<JournalWriter, StateError> {
        Ok(match self {
            StateStore::Local(l) => {
                JournalWriter::Local(std::sync::Mutex::new(l.journal_writer()?))
            }
            StateStore::Blob(b) => JournalWriter::Blob(Box::new(b.journal_writer(run))),
        })
    }

    /// Where the audit trail is, for messages.
    pub fn audit_location(&self) -> String {
        match self {
            StateStore::Local(l) => l.audit().path().display().to_string(),
            StateStore::Blob(b) => b.audit_location(),
        }
    }

    /// What the ledger records (empty when there is none yet).
    pub async fn ledger(&self) -> Result<ledger::Ledger, StateError> {
        match self {
            StateStore::Local(l) => l.ledger(),
            StateStore::Blob(b) => b.ledger().await,
        }
    }

    /// Record `entries` (id, protected) in the ledger where they add something.
    pub async fn ledger_record(
        &self,
        entries: &[(lifeboat_core::id::ResourceId, bool)],
    ) -> Result<(), StateError> {
        let known = self.ledger().await?;
        let lines = ledger::new_lines(&known, entries);
        if lines.is_empty() {
            return Ok(());
        }
        match self {
            StateStore::Local(l) => l.ledger_append(&lines),
            StateStore::Blob(b) => b.ledger_append(lines).await,
        }
    }

    /// Append to the audit trail; returns the trail's new head.
    pub async fn audit_append(&self, entry: audit::Entry) -> Result<audit::Head, StateError> {
        match self {
            StateStore::Local(l) => Ok(l.audit().append(entry)?),
            StateStore::Blob(b) => b.audit_append(entry).await,
        }
    }

    /// Every audit record, with the chain checked.
    pub async fn audit_verify(&self) -> Result<Vec<audit::Record>, StateError> {
        match self {
            StateStore::Local(l) => Ok(l.audit().verify()?),
            StateStore::Blob(b) => b.audit_verify().await,
        }
    }

    /// Keep a saved plan as an artifact named by its hash; returns where.
    pub async fn save_plan(
        &self,
        hash: &str,
        bytes: Vec<u8>,
        tenants: &[String],
    ) -> Result<String, StateError> {
        match self {
            StateStore::Local(l) => l.save_plan(hash, &bytes),
            StateStore::Blob(b) => b.save_plan(hash, bytes, tenants).await,
        }
    }

    /// The saved plan with this hash, and where it was: `None` if there is none.
    pub async fn load_plan(&self, hash: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        match self {
            StateStore::Local(l) => l.load_plan(hash),
            StateStore::Blob(b) => b.load_plan(hash).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_recent_runs_and_doubt() {
        let id =
            |n: &str| ResourceId::parse(&format!("/subscriptions/s/resourceGroups/{n}")).unwrap();
        let e = |run: &str, rg: &str, ev: &str| JournalEntry {
            run: run.into(),
            plan: "p".into(),
            id: id(rg),
            api_version: "2021-04-01".into(),
            event: ev.into(),
            at: "t".into(),
        };
        let entries = vec![
            e("r1", "a", "started"), // in doubt: r1 is kept
            e("r2", "b", "started"),
            e("r2", "b", "done"),
            e("r3", "c", "started"),
            e("r3", "c", "done"),
            e("r4", "d", "started"),
            e("r4", "d", "done"),
        ];
        assert_eq!(runs_to_keep(&entries, 2), vec!["r1", "r3", "r4"]);
        assert_eq!(runs_to_keep(&entries, 10).len(), 4);
    }
}
