//! The `--state local` backend: locks, the apply journal, the audit trail and
//! saved plans as files under `.lifeboat/state/` of the project. For one machine
//! (an engineer's laptop, a single pipeline agent); shared agents use
//! `state::blob`. Never talks to the network.
//!
//! Locks are operating-system file locks (`flock`) on `locks/<scope>.lock`,
//! held for the whole run: exclusive for as long as the holder process lives,
//! whatever happens to the clock, and released by the kernel when it exits or
//! crashes. A holder that is suspended past its lease (a laptop lid, a stepped
//! clock) is therefore never taken over behind its back, and there is no
//! read-judge-rename takeover that two waiters could race. The file also holds
//! the holder's owner, command and lease expiry, for the waiter's message.
//!
//! The journal is append-only JSON lines in one file; a crash leaves whole lines
//! or a torn last one, which readers skip.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{JournalEntry, LockInfo, StateError, audit, in_doubt, io, lease_span};

/// The local state directory of a project.
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

/// A held lock: the open, `flock`ed file. Released on drop (closing the file
/// releases the lock) or explicitly; the kernel releases it if the process dies.
#[derive(Debug)]
pub struct LocalLock {
    file: std::fs::File,
    path: PathBuf,
    pub info: LockInfo,
    pub scope: String,
}

impl LocalLock {
    /// Record the new expiry (informational: the OS lock, not the expiry,
    /// keeps others out).
    pub fn renew(&mut self, lease: Duration) -> Result<(), StateError> {
        self.info.expires = (jiff::Timestamp::now() + lease_span(lease)).to_string();
        write_info(&mut self.file, &self.info).map_err(io(&self.path))
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        // Clear the holder's details before the lock goes with the file.
        let _ = self.file.set_len(0);
    }
}

fn write_info(f: &mut std::fs::File, info: &LockInfo) -> std::io::Result<()> {
    use std::io::Seek as _;
    let bytes = serde_json::to_vec_pretty(info).expect("lock info serializes");
    f.set_len(0)?;
    f.seek(std::io::SeekFrom::Start(0))?;
    f.write_all(&bytes)?;
    f.flush()
}

impl LocalState {
    pub fn for_project(root: &Path) -> LocalState {
        LocalState {
            dir: root.join(".lifeboat").join("state"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A saved plan's copy in `.lifeboat/state/plans/<hash>.json`, so that
    /// `apply <hash>` works the same on both backends.
    pub fn save_plan(&self, hash: &str, bytes: &[u8]) -> Result<String, StateError> {
        let dir = self.ensure("plans")?;
        let path = dir.join(format!("{hash}.json"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path.display().to_string())
    }

    pub fn load_plan(&self, hash: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let path = self.dir.join("plans").join(format!("{hash}.json"));
        match std::fs::read(&path) {
            Ok(b) => Ok(Some((b, path.display().to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The ledger (`.lifeboat/state/ledger.jsonl`), empty when there is none.
    pub fn ledger(&self) -> Result<super::ledger::Ledger, StateError> {
        let path = self.dir.join("ledger.jsonl");
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(super::ledger::parse(&t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Append whole lines to the ledger under an exclusive file lock.
    pub fn ledger_append(&self, lines: &str) -> Result<(), StateError> {
        self.ensure("")?;
        let path = self.dir.join("ledger.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        f.write_all(lines.as_bytes()).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
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
    ) -> Result<LocalLock, StateError> {
        let dir = self.ensure("locks")?;
        let path = dir.join(format!("{scope}.lock"));
        let started_wait = std::time::Instant::now();
        loop {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io(&path))?;
            match file.try_lock() {
                Ok(()) => {
                    let info = LockInfo::mine(command, lease);
                    write_info(&mut file, &info).map_err(io(&path))?;
                    return Ok(LocalLock {
                        file,
                        path,
                        info,
                        scope: scope.to_string(),
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
            let waited = started_wait.elapsed();
            if waited >= timeout {
                let holder: Option<LockInfo> = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                return Err(StateError::Locked {
                    scope: scope.to_string(),
                    holder: Box::new(holder.unwrap_or_else(LockInfo::unknown)),
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
    pub fn journal_writer(&self) -> Result<LocalJournal, StateError> {
        self.ensure("")?;
        let path = self.journal_path();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut w = LocalJournal { file, path };
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
    ///
    /// Re-reads the file rather than trusting `_seen`: another process on this
    /// machine may have appended since.
    pub fn compact_journal(
        &self,
        _seen: &[JournalEntry],
        keep_runs: usize,
    ) -> Result<(), StateError> {
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

pub struct LocalJournal {
    file: std::fs::File,
    path: PathBuf,
}

impl LocalJournal {
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
    use lifeboat_core::id::ResourceId;

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

    /// #15: a holder paused past its lease (suspend, a stepped clock) used to
    /// be taken over while it lived, and both ran. The OS lock holds for as
    /// long as the holder does; two waiters can never both win.
    #[tokio::test]
    async fn a_holder_past_its_lease_keeps_the_lock_until_it_lets_go() {
        let root = tmp("expire");
        let s = LocalState::for_project(&root);
        let g = s
            .lock("shared", "apply", Duration::from_millis(1), Duration::ZERO)
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let err = s
            .lock(
                "shared",
                "apply",
                Duration::from_secs(60),
                Duration::from_millis(250),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        // Many waiters at once: exactly one wins when it is free.
        drop(g);
        let tries = futures::future::join_all(
            (0..8).map(|_| s.lock("shared", "apply", Duration::from_secs(60), Duration::ZERO)),
        )
        .await;
        assert_eq!(tries.iter().filter(|t| t.is_ok()).count(), 1);
        drop(tries);
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
