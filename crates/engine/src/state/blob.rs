//! The `--state azblob://ACCOUNT/CONTAINER` backend: lifeboat's state in Azure
//! Blob Storage, so that throw-away pipeline agents running at once share it.
//!
//! Layout of the container:
//! - `locks/<scope>.lock`: an empty block blob per lock; holding the lock is
//!   holding a *finite* lease on it (15-60 s, renewed every third of it), so a
//!   crashed agent's lock frees itself. The holder (owner, host, pid, command,
//!   start, expiry, pipeline run) is in the blob's metadata.
//! - `journal/<run>/<segment>.jsonl`: one append blob per apply run (a new
//!   segment before Azure's 50,000-block limit). Concurrent changes of a run are
//!   grouped into one Append Block ("group commit"), and every change waits for
//!   its `started` entry to be stored before it touches the cloud.
//! - `audit.jsonl`: the audit trail as one append blob, with the same sealed
//!   lines and hash chain as the local file. An append is conditional on the
//!   blob's length (`x-ms-blob-condition-appendpos`): a writer that lost the race
//!   gets 412, re-reads the tail and seals against the new last record, so the
//!   chain stays linear with any number of agents, and no lock is needed.
//! - `plans/<hash>.json`: saved plans, written once (`If-None-Match: *`) and
//!   checked against their hash when read.
//!
//! Authentication: `AZURE_STORAGE_CONNECTION_STRING` (account key; Azurite),
//! else an Entra ID token for `https://storage.azure.com` from the same `--auth`
//! chain as the ARM client (the identity needs "Storage Blob Data Contributor").
//!
//! Never decides what to lock or record.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::audit::{self, Entry, Record};
use super::{JournalEntry, LockInfo, StateError, lease_span};
use crate::cloud::auth::Credential;
use crate::cloud::blob::{
    BlobAuth, BlobClient, BlobError, Conditions, ConnectionString, LeaseAction,
};

const AUDIT: &str = "audit.jsonl";
const LEDGER: &str = "ledger.jsonl";
/// Roll to a new journal segment well before Azure's 50,000 blocks per append blob.
const SEGMENT_BLOCKS: u64 = 40_000;
/// Azure's limit for one Append Block (4 MiB in the API version used).
const MAX_BLOCK: usize = 4 * 1024 * 1024;
/// How long an audit append keeps losing races before it gives up.
const APPEND_PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct BlobState {
    client: BlobClient,
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random source works");
    lifeboat_core::id::hex(&b)
}

/// A lease id: Azure wants a GUID.
fn lease_id() -> String {
    lifeboat_core::id::guid_of_hex(&random_hex(16))
}

fn lock_metadata(info: &LockInfo) -> Vec<(&'static str, String)> {
    let mut m = vec![
        ("owner", info.owner.clone()),
        ("host", info.host.clone()),
        ("pid", info.pid.to_string()),
        ("command", info.command.clone()),
        ("started", info.started.clone()),
        ("expires", info.expires.clone()),
    ];
    if let Some(r) = &info.pipeline_run {
        m.push(("pipelinerun", r.clone()));
    }
    m
}

fn lock_info_from(p: &crate::cloud::blob::Properties) -> Option<LockInfo> {
    Some(LockInfo {
        owner: p.meta("owner")?,
        host: p.meta("host")?,
        pid: p.meta("pid")?.parse().ok()?,
        command: p.meta("command")?,
        started: p.meta("started")?,
        expires: p.meta("expires")?,
        pipeline_run: p.meta("pipelinerun"),
    })
}

/// The last complete line of `window` (a blob's bytes from some offset to its
/// end); `None` when the window holds no line start (read a larger one).
fn last_line(window: &[u8], from_start: bool) -> Option<String> {
    let text = String::from_utf8_lossy(window);
    let trimmed = text.trim_end_matches('\n');
    match trimmed.rfind('\n') {
        Some(p) => Some(trimmed[p + 1..].to_string()),
        None if from_start => Some(trimmed.to_string()),
        None => None,
    }
}

impl BlobState {
    /// The ledger (the `ledger.jsonl` append blob), empty when there is none.
    pub async fn ledger(&self) -> Result<super::ledger::Ledger, StateError> {
        let fail = |source| StateError::blob(self.client.location(LEDGER), source);
        Ok(match self.client.get(LEDGER).await.map_err(fail)? {
            Some((bytes, _)) => super::ledger::parse(&String::from_utf8_lossy(&bytes)),
            None => Default::default(),
        })
    }

    /// Append whole lines to the ledger (in blocks under Azure's 4 MiB limit;
    /// a line is never split, so a reader sees whole lines or a torn last one).
    pub async fn ledger_append(&self, lines: String) -> Result<(), StateError> {
        let fail = |source| StateError::blob(self.client.location(LEDGER), source);
        self.client.create_append_blob(LEDGER).await.map_err(fail)?;
        let mut chunk = String::new();
        for line in lines.split_inclusive('\n') {
            if chunk.len() + line.len() > MAX_BLOCK {
                let block = Bytes::from(std::mem::take(&mut chunk));
                self.client
                    .append_block(LEDGER, block, &Conditions::default(), true)
                    .await
                    .map_err(fail)?;
            }
            chunk.push_str(line);
        }
        if !chunk.is_empty() {
            self.client
                .append_block(LEDGER, Bytes::from(chunk), &Conditions::default(), true)
                .await
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Reach the account (creating the container when missing).
    pub async fn open(
        account: &str,
        container: &str,
        mode: crate::cloud::auth::AuthMode,
    ) -> Result<BlobState, StateError> {
        let fail = |source| StateError::blob(format!("azblob://{account}/{container}"), source);
        let (endpoint, auth) = match std::env::var("AZURE_STORAGE_CONNECTION_STRING") {
            Ok(cs) if !cs.is_empty() => {
                let c = ConnectionString::parse(&cs).map_err(fail)?;
                if c.account != account {
                    return Err(StateError::Invalid(format!(
                        "--state azblob://{account}/{container}: AZURE_STORAGE_CONNECTION_STRING is for account `{}`, not `{account}`",
                        c.account
                    )));
                }
                (
                    c.blob_endpoint,
                    BlobAuth::SharedKey {
                        account: c.account,
                        key: c.key,
                    },
                )
            }
            _ => {
                let cred = Credential::for_storage(mode)
                    .map_err(|e| fail(BlobError::Auth(e.to_string())))?;
                (
                    format!("https://{account}.blob.core.windows.net"),
                    BlobAuth::Bearer(cred),
                )
            }
        };
        let client = BlobClient::new(&endpoint, account, container, auth);
        match client.create_container().await {
            Ok(()) => {}
            // An identity with data access but no right to create containers: the
            // container may well exist; the first real operation will say.
            Err(e) if e.status() == Some(403) => {}
            Err(e) => return Err(fail(e)),
        }
        Ok(BlobState { client })
    }

    fn err(&self, name: &str) -> impl FnOnce(BlobError) -> StateError + '_ {
        let location = self.client.location(name);
        move |source| StateError::blob(location, source)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.client.location("").trim_end_matches('/'),
            self.client.endpoint(),
            self.client.auth().describe()
        )
    }

    pub fn audit_location(&self) -> String {
        self.client.location(AUDIT)
    }

    /// Take the lease on `locks/<scope>.lock`, waiting up to `timeout` while
    /// another holder has it.
    pub async fn lock(
        &self,
        scope: &str,
        command: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<BlobLock, StateError> {
        let name = format!("locks/{scope}.lock");
        let id = lease_id();
        let seconds = lease.as_secs().clamp(15, 60) as u32;
        let lease = Duration::from_secs(seconds.into());
        let started_wait = Instant::now();
        loop {
            match self
                .client
                .lease(&name, LeaseAction::Acquire { seconds }, &id)
                .await
            {
                Ok(()) => {
                    let info = LockInfo::mine(command, lease);
                    let cond = Conditions {
                        lease_id: Some(id.clone()),
                        ..Default::default()
                    };
                    let named = self
                        .client
                        .set_metadata(&name, &lock_metadata(&info), &cond)
                        .await;
                    if let Err(e) = named {
                        let _ = self.client.lease(&name, LeaseAction::Release, &id).await;
                        return Err(self.err(&name)(e));
                    }
                    return Ok(BlobLock {
                        client: self.client.clone(),
                        name,
                        lease_id: id,
                        info,
                        scope: scope.to_string(),
                    });
                }
                Err(e) if e.status() == Some(404) => {
                    // First use of this lock: create its blob (a racing creator is fine).
                    self.client
                        .create_block_blob(&name, Bytes::new(), "application/octet-stream", &[])
                        .await
                        .map_err(self.err(&name))?;
                }
                Err(e) if e.status() == Some(409) => {
                    let waited = started_wait.elapsed();
                    if waited >= timeout {
                        let holder = self
                            .client
                            .properties(&name)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|p| lock_info_from(&p))
                            .unwrap_or_else(LockInfo::unknown);
                        return Err(StateError::Locked {
                            scope: scope.to_string(),
                            holder: Box::new(holder),
                            waited,
                        });
                    }
                    let pause = Duration::from_millis(500 + fastrand::u64(0..500));
                    tokio::time::sleep(pause.min(timeout - waited)).await;
                }
                Err(e) => return Err(self.err(&name)(e)),
            }
        }
    }

    /// Every journal entry, oldest run first (run ids start with their UTC time).
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, StateError> {
        let mut names: Vec<String> = self
            .client
            .list("journal/")
            .await
            .map_err(self.err("journal/"))?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let bodies = futures::future::join_all(names.iter().map(|n| self.client.get(n))).await;
        let mut out = Vec::new();
        for (name, body) in names.iter().zip(bodies) {
            // A run compacted away between the listing and the read is simply gone.
            if let Some((bytes, _)) = body.map_err(self.err(name))? {
                out.extend(
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok()),
                );
            }
        }
        Ok(out)
    }

    /// Delete the journal blobs of runs that are neither recent nor in doubt.
    pub async fn compact_journal(
        &self,
        entries: &[JournalEntry],
        keep_runs: usize,
    ) -> Result<(), StateError> {
        let keep = super::runs_to_keep(entries, keep_runs);
        let seen: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.run.as_str()).collect();
        let names = self
            .client
            .list("journal/")
            .await
            .map_err(self.err("journal/"))?;
        for (name, _) in names {
            let run = name
                .strip_prefix("journal/")
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            // Only runs that were read: one that started since is somebody's now.
            if seen.contains(run) && !keep.iter().any(|k| k == run) {
                self.client.delete(&name).await.map_err(self.err(&name))?;
            }
        }
        Ok(())
    }

    pub fn journal_writer(&self, run: &str) -> BlobJournal {
        BlobJournal {
            client: self.client.clone(),
            run: run.to_string(),
            queue: std::sync::Mutex::new(Vec::new()),
            segment: tokio::sync::Mutex::new(Segment::default()),
        }
    }

    /// Append one sealed record at the end of `audit.jsonl`, re-reading the tail
    /// and trying again whenever another writer appended first.
    pub async fn audit_append(&self, entry: Entry) -> Result<audit::Head, StateError> {
        let path = std::path::PathBuf::from(self.audit_location());
        let fail = |source| StateError::blob(self.audit_location(), source);
        let started = Instant::now();
        // Lines sent whose answer was a 412: one may be ours, landed by a retry
        // after a lost answer, and must not be appended twice.
        let mut sent: Vec<(String, audit::Head)> = Vec::new();
        let mut lost = 0u32;
        // After a lost race the blob is longer than we knew: the next read of its
        // tail says by how much, so only the first attempt asks for its length.
        let mut known: Option<u64> = None;
        loop {
            let len = match known {
                Some(l) => l,
                None => match self.client.properties(AUDIT).await.map_err(fail)? {
                    Some(props) => props.length,
                    None => {
                        self.client.create_append_blob(AUDIT).await.map_err(fail)?;
                        continue;
                    }
                },
            };
            let (window, last, len) = self.tail(len).await.map_err(fail)?;
            if let Some((_, hash)) = sent.iter().find(|(l, _)| window.contains(l.as_str())) {
                return Ok(hash.clone());
            }
            let (line, head) = audit::next_record(&path, last.as_deref(), entry.clone())?;
            let cond = Conditions {
                append_position: Some(len),
                ..Default::default()
            };
            match self
                .client
                .append_block(AUDIT, Bytes::from(format!("{line}\n")), &cond, true)
                .await
            {
                Ok(_) => return Ok(head),
                Err(e) if e.status() == Some(412) && started.elapsed() < APPEND_PATIENCE => {
                    known = Some(len);
                    sent.push((line, head));
                    lost += 1;
                    // Contention: back off a little more each time, with jitter.
                    let ms = 2u64 << lost.min(6);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ms))).await;
                }
                Err(e) => return Err(fail(e)),
            }
        }
    }

    /// The audit blob from some offset before `len` (a length it had at least) to
    /// its current end: that window, its last complete line (`None` for an empty
    /// blob) and the current length.
    async fn tail(&self, len: u64) -> Result<(String, Option<String>, u64), BlobError> {
        let mut window = 8192u64;
        loop {
            // An empty blob has no byte to start a range at: read it whole.
            let from = (len > 0).then(|| len.saturating_sub(window));
            let Some((bytes, props)) = self.client.get_range(AUDIT, from).await? else {
                return Ok((String::new(), None, 0));
            };
            let start = from.unwrap_or(0);
            let total = if from.is_some() {
                props.length
            } else {
                bytes.len() as u64
            };
            if bytes.is_empty() {
                return Ok((String::new(), None, total));
            }
            if let Some(line) = last_line(&bytes, start == 0) {
                return Ok((
                    String::from_utf8_lossy(&bytes).into_owned(),
                    Some(line),
                    total,
                ));
            }
            window *= 4;
        }
    }

    /// Every audit record, checking the chain.
    pub async fn audit_verify(&self) -> Result<Vec<Record>, StateError> {
        let path = std::path::PathBuf::from(self.audit_location());
        match self.client.get(AUDIT).await.map_err(self.err(AUDIT))? {
            None => Ok(Vec::new()),
            Some((bytes, _)) => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    StateError::Audit(audit::AuditError::Broken {
                        path: path.clone(),
                        line: 0,
                        reason: "not UTF-8".into(),
                    })
                })?;
                Ok(audit::verify_text(&path, &text)?)
            }
        }
    }

    /// Store `plans/<hash>.json` once; the same hash again is the same plan.
    pub async fn save_plan(
        &self,
        hash: &str,
        bytes: Vec<u8>,
        tenants: &[String],
    ) -> Result<String, StateError> {
        let name = format!("plans/{hash}.json");
        let meta = [
            ("planhash", hash.to_string()),
            ("tenants", tenants.join(",")),
            ("createdby", super::owner_name()),
            ("createdat", jiff::Timestamp::now().to_string()),
        ];
        self.client
            .create_block_blob(&name, Bytes::from(bytes), "application/json", &meta)
            .await
            .map_err(self.err(&name))?;
        Ok(self.client.location(&name))
    }

    pub async fn load_plan(&self, hash: &str) -> Result<Option<(Vec<u8>, String)>, StateError> {
        let name = format!("plans/{hash}.json");
        Ok(self
            .client
            .get(&name)
            .await
            .map_err(self.err(&name))?
            .map(|(b, _)| (b.to_vec(), self.client.location(&name))))
    }
}

/// A held lease on a lock blob.
#[derive(Debug)]
pub struct BlobLock {
    client: BlobClient,
    name: String,
    lease_id: String,
    pub info: LockInfo,
    pub scope: String,
}

impl BlobLock {
    /// Renew the lease and the expiry in the metadata. A lease that is no longer
    /// ours (it ran out and someone took it) is [`StateError::LockLost`].
    pub async fn renew(&mut self, lease: Duration) -> Result<(), StateError> {
        let lost = |e: BlobError| StateError::LockLost {
            scope: self.scope.clone(),
            location: self.client.location(&self.name),
            reason: e.to_string(),
        };
        match self
            .client
            .lease(&self.name, LeaseAction::Renew, &self.lease_id)
            .await
        {
            Ok(()) => {}
            Err(e) if matches!(e.status(), Some(409 | 412)) => return Err(lost(e)),
            Err(e) => {
                return Err(StateError::blob(self.client.location(&self.name), e));
            }
        }
        self.info.expires = (jiff::Timestamp::now() + lease_span(lease)).to_string();
        let cond = Conditions {
            lease_id: Some(self.lease_id.clone()),
            ..Default::default()
        };
        self.client
            .set_metadata(&self.name, &lock_metadata(&self.info), &cond)
            .await
            .map_err(|source| StateError::blob(self.client.location(&self.name), source))
    }

    pub async fn release(self) -> Result<(), StateError> {
        match self
            .client
            .lease(&self.name, LeaseAction::Release, &self.lease_id)
            .await
        {
            Ok(()) => Ok(()),
            // Already expired and taken: nothing of ours to release.
            Err(e) if matches!(e.status(), Some(409 | 412)) => Ok(()),
            Err(source) => Err(StateError::blob(self.client.location(&self.name), source)),
        }
    }
}

#[derive(Debug, Default)]
struct Segment {
    index: u32,
    created: bool,
}

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

/// The journal of one run, appended with group commit: whoever holds the segment
/// writes everything queued so far in one Append Block and wakes the others.
pub struct BlobJournal {
    client: BlobClient,
    run: String,
    queue: std::sync::Mutex<Vec<(Vec<u8>, Waiter)>>,
    segment: tokio::sync::Mutex<Segment>,
}

impl BlobJournal {
    fn name(&self, s: &Segment) -> String {
        format!("journal/{}/{:04}.jsonl", self.run, s.index)
    }

    pub async fn append(&self, e: &JournalEntry) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(e).expect("entry serializes");
        line.push(b'\n');
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.lock().expect("journal queue").push((line, tx));
        {
            let mut seg = self.segment.lock().await;
            let batch = std::mem::take(&mut *self.queue.lock().expect("journal queue"));
            if !batch.is_empty() {
                let (lines, waiters): (Vec<Vec<u8>>, Vec<Waiter>) = batch.into_iter().unzip();
                let result = self.write(&mut seg, lines).await.map_err(|e| e.to_string());
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        }
        let location = self.client.location(&format!("journal/{}/", self.run));
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StateError::JournalWrite { location, message }),
            Err(_) => Err(StateError::JournalWrite {
                location,
                message: "the writer of this batch stopped".into(),
            }),
        }
    }

    async fn write(&self, seg: &mut Segment, lines: Vec<Vec<u8>>) -> Result<(), BlobError> {
        let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
        for l in lines {
            if chunks.last().is_some_and(|c| c.len() + l.len() > MAX_BLOCK) {
                chunks.push(Vec::new());
            }
            chunks.last_mut().expect("one chunk").extend_from_slice(&l);
        }
        for chunk in chunks {
            let name = self.name(seg);
            if !seg.created {
                self.client.create_append_blob(&name).await?;
                seg.created = true;
            }
            // Repeating an append after a lost answer at worst writes the same
            // entries twice, which readers take as one (last event per resource).
            let props = self
                .client
                .append_block(&name, Bytes::from(chunk), &Conditions::default(), true)
                .await?;
            if props.committed_blocks.unwrap_or(0) >= SEGMENT_BLOCKS {
                seg.index += 1;
                seg.created = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_of_a_window() {
        assert_eq!(last_line(b"a\nbb\n", true).as_deref(), Some("bb"));
        assert_eq!(last_line(b"only\n", true).as_deref(), Some("only"));
        assert_eq!(last_line(b"partial-of-a-long-line\n", false), None);
        assert_eq!(last_line(b"x\nlast\n", false).as_deref(), Some("last"));
    }

    #[test]
    fn lease_ids_are_guids() {
        let id = lease_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, lease_id());
    }

    #[test]
    fn lock_metadata_round_trips() {
        let mut info = LockInfo::mine("apply", Duration::from_secs(60));
        info.owner = "José".into();
        info.pipeline_run = Some("4711".into());
        let meta = lock_metadata(&info);
        let props = crate::cloud::blob::Properties {
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), crate::cloud::blob::encode_meta(v)))
                .collect(),
            ..Default::default()
        };
        assert_eq!(lock_info_from(&props), Some(info));
    }
}
