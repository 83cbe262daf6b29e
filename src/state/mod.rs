//! Operational state that must outlive a process: layer locks, the apply
//! journal and the audit trail ([`audit`]). `--state local` keeps them under `.lifeboat/state/`; the Blob Storage
//! backend for pipelines implements the same operations.
//!
//! Locks are leases: a holder writes its owner, start time and expiry, renews the
//! expiry while it works, and a lock whose expiry passed (a crashed holder) or
//! whose holder process is gone on this host is taken over. Creation is atomic
//! (`create_new`), so two processes never both hold one lock.
//!
//! The journal is append-only JSON lines, one file per project: every apply run
//! records `started`/`done`/`failed` per resource, so a re-run knows which
//! operations may still be running (in doubt) and which resources to re-read
//! directly instead of trusting Resource Graph's lagging index.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::graph::ResourceId;

pub mod audit;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "lock `{scope}` is held by {} (pid {} on {}, running `{}` since {}, lease until {}); waited {waited:?}. Re-run when it is done, or raise --lock-timeout",
        .holder.owner, .holder.pid, .holder.host, .holder.command, .holder.started, .holder.expires
    )]
    Locked {
        scope: String,
        holder: Box<LockInfo>,
        waited: Duration,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The local state directory of a project.
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

/// A held lock; released on drop (best effort) or explicitly.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    pub info: LockInfo,
    pub scope: String,
}

impl LockGuard {
    /// Push the expiry forward while the holder still works.
    pub fn renew(&mut self, lease: Duration) -> Result<(), StateError> {
        self.info.expires = (jiff::Timestamp::now() + lease_span(lease)).to_string();
        let bytes = serde_json::to_vec_pretty(&self.info).expect("lock info serializes");
        let tmp = self.path.with_extension("renew");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Only remove our own lock (a taken-over lock belongs to someone else).
        if let Ok(bytes) = std::fs::read(&self.path)
            && let Ok(info) = serde_json::from_slice::<LockInfo>(&bytes)
            && info.pid == self.info.pid
            && info.host == self.info.host
            && info.started == self.info.started
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn lease_span(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::from_secs(60))
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

impl LocalState {
    pub fn for_project(root: &Path) -> LocalState {
        LocalState {
            dir: root.join(".lifeboat").join("state"),
        }
    }

    /// The audit trail (`.lifeboat/state/audit.jsonl`).
    pub fn audit(&self) -> audit::AuditLog {
        audit::AuditLog::at(self.dir.join("audit.jsonl"))
    }

    fn ensure(&self, sub: &str) -> Result<PathBuf, StateError> {
        let d = self.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        Ok(d)
    }

    /// Take the lock for `scope` (`shared`, `tenant-cwz`), waiting up to `timeout`.
    pub async fn lock(
        &self,
        scope: &str,
        command: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<LockGuard, StateError> {
        let dir = self.ensure("locks")?;
        let path = dir.join(format!("{scope}.lock"));
        let started_wait = std::time::Instant::now();
        loop {
            let now = jiff::Timestamp::now();
            let info = LockInfo {
                owner: owner_name(),
                host: host_name(),
                pid: std::process::id(),
                command: command.to_string(),
                started: now.to_string(),
                expires: (now + lease_span(lease)).to_string(),
                pipeline_run: std::env::var("BUILD_BUILDID").ok(),
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let bytes = serde_json::to_vec_pretty(&info).expect("lock info serializes");
                    f.write_all(&bytes).map_err(io(&path))?;
                    return Ok(LockGuard {
                        path,
                        info,
                        scope: scope.to_string(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&path)(e)),
            }
            let holder: Option<LockInfo> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let stale = match &holder {
                // Being written this instant, or garbage: judge by the file's age.
                None => std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(5)),
                Some(h) => {
                    let expired = h
                        .expires
                        .parse::<jiff::Timestamp>()
                        .is_ok_and(|e| e < jiff::Timestamp::now());
                    let dead = h.host == host_name() && !pid_alive(h.pid);
                    expired || dead
                }
            };
            if stale {
                // Take over: rename away first so only one contender wins.
                let grave = path.with_extension(format!("stale{}", std::process::id()));
                if std::fs::rename(&path, &grave).is_ok() {
                    let _ = std::fs::remove_file(&grave);
                }
                continue;
            }
            let waited = started_wait.elapsed();
            if waited >= timeout {
                return Err(StateError::Locked {
                    scope: scope.to_string(),
                    holder: Box::new(holder.unwrap_or(LockInfo {
                        owner: "unknown".into(),
                        host: "unknown".into(),
                        pid: 0,
                        command: "unknown".into(),
                        started: "unknown".into(),
                        expires: "unknown".into(),
                        pipeline_run: None,
                    })),
                    waited,
                });
            }
            tokio::time::sleep(Duration::from_millis(200).min(timeout - waited)).await;
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }

    /// Every journal entry, oldest first. A torn last line (crash mid-write) is skipped.
    pub fn journal(&self) -> Result<Vec<JournalEntry>, StateError> {
        let path = self.journal_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Open the journal for appending.
    pub fn journal_writer(&self) -> Result<JournalWriter, StateError> {
        self.ensure("")?;
        let path = self.journal_path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut w = JournalWriter { file, path };
        // A crash mid-write leaves a torn last line: end it, so the next entry
        // starts on a line of its own instead of being glued to the torn one.
        let torn = std::fs::read(&w.path)
            .map(|b| b.last().is_some_and(|&c| c != b'\n'))
            .unwrap_or(false);
        if torn {
            w.file.write_all(b"\n").map_err(io(&w.path))?;
        }
        Ok(w)
    }

    /// Keep the journal short: drop runs older than the last `keep_runs`, except
    /// entries whose resource is still in doubt.
    pub fn compact_journal(&self, keep_runs: usize) -> Result<(), StateError> {
        let entries = self.journal()?;
        let mut runs: Vec<&str> = Vec::new();
        for e in &entries {
            if runs.last() != Some(&e.run.as_str()) && !runs.contains(&e.run.as_str()) {
                runs.push(&e.run);
            }
        }
        if runs.len() <= keep_runs {
            return Ok(());
        }
        let keep: Vec<&str> = runs[runs.len() - keep_runs..].to_vec();
        let doubt = in_doubt(&entries);
        let kept: Vec<String> = entries
            .iter()
            .filter(|e| {
                keep.contains(&e.run.as_str())
                    || doubt.iter().any(|d| d.id == e.id && e.event == "started")
            })
            .map(|e| serde_json::to_string(e).expect("entry serializes"))
            .collect();
        let path = self.journal_path();
        let tmp = path.with_extension("compact");
        std::fs::write(&tmp, kept.join("\n") + "\n").map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
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

pub struct JournalWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl JournalWriter {
    /// Append one line in a single write, so a crash leaves whole lines (at most
    /// a torn last one, which readers skip).
    pub fn append(&mut self, e: &JournalEntry) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(e).expect("entry serializes");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifeboat-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test]
    async fn second_holder_waits_then_fails_naming_the_first() {
        let root = tmp("lock");
        let s = LocalState::for_project(&root);
        let lock = |timeout| s.lock("tenant-cwz", "apply", Duration::from_secs(60), timeout);
        let g = lock(Duration::ZERO).await.unwrap();
        let err = lock(Duration::from_millis(300)).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("tenant-cwz") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        drop(g);
        lock(Duration::ZERO).await.unwrap();
        std::fs::remove_dir_all(root).ok();
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over() {
        let root = tmp("expire");
        let s = LocalState::for_project(&root);
        let g = s
            .lock("shared", "apply", Duration::from_millis(1), Duration::ZERO)
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let g2 = s
            .lock("shared", "apply", Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        drop(g); // not ours any more: must not remove g2's lock
        assert!(s.dir.join("locks/shared.lock").exists());
        drop(g2);
        std::fs::remove_dir_all(root).ok();
    }

    #[test]
    fn journal_in_doubt_and_torn_lines() {
        let root = tmp("journal");
        let s = LocalState::for_project(&root);
        let mut w = s.journal_writer().unwrap();
        let id = ResourceId::parse("/subscriptions/s/resourceGroups/a").unwrap();
        let e = |ev: &str, id: &ResourceId| JournalEntry {
            run: "r1".into(),
            plan: "p".into(),
            id: id.clone(),
            api_version: "2021-04-01".into(),
            event: ev.into(),
            at: "t".into(),
        };
        let id2 = ResourceId::parse("/subscriptions/s/resourceGroups/b").unwrap();
        w.append(&e("started", &id)).unwrap();
        w.append(&e("done", &id)).unwrap();
        w.append(&e("started", &id2)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(s.journal_path())
            .unwrap()
            .write_all(b"{\"run\":\"r1\",\"pla")
            .unwrap();
        let mut w = s.journal_writer().unwrap();
        w.append(&e("done", &id)).unwrap();
        let entries = s.journal().unwrap();
        assert_eq!(entries.len(), 4, "the entry after a torn line survives");
        let doubt = in_doubt(&entries);
        assert_eq!(doubt.len(), 1);
        assert_eq!(doubt[0].id, id2);
        std::fs::remove_dir_all(root).ok();
    }
}
