//! The audit trail: every mutating command (apply, destroy, image build and prune,
//! activate, deactivate, drill) appends one record — who, when, where, command,
//! tenants, reason, plan hash, outcome — to an append-only JSON-lines log whose
//! records form a hash chain: each carries the SHA-256 of the previous record, and
//! its own hash covers its exact bytes. Editing, deleting, inserting or reordering
//! any record breaks the chain at that line, which `verify` reports.
//!
//! Locally, appends from several processes are serialised with an exclusive file
//! lock; in Blob Storage (`state::blob`) an append is conditional on the blob's
//! length, so a writer that lost the race re-reads the tail and tries again. Either
//! way no record is lost and the chain stays linear. This module never decides
//! what to record; commands do.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log {path}, line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// What a command records (the chain fields are added on append).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub command: String,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Hash of the plan that was applied, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// `succeeded`, `failed`, `refused`, ...
    pub outcome: String,
    /// Command-specific figures (RTO, counts).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// Who the cloud knows the caller as (from the access token's claims:
    /// user principal name or application id, and object id), when there is an
    /// Entra ID token; `who` is only what the agent's environment says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// The head of the trail: how many records it holds and the last one's hash.
/// Published after every append (the command's output, the pipeline's log), so
/// `audit verify --expect-head` can tell a trail that was cut short, deleted or
/// rewritten and re-sealed from one that was only appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub records: u64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.records, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;
    fn from_str(s: &str) -> Result<Head, String> {
        let (n, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected RECORDS:HASH (as `lifeboat` prints it)"))?;
        let records = n
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{n}`: a number of records, 1 or more"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{hash}`: a record hash is 64 hex digits"));
        }
        Ok(Head {
            records,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl Head {
    /// Does the verified trail `records` still hold this head?
    pub fn check(&self, records: &[Record]) -> Result<(), String> {
        let n = records.len() as u64;
        if n < self.records {
            return Err(format!(
                "the trail holds {n} record(s) but its published head says {}: records were removed (or the trail was replaced)",
                self.records
            ));
        }
        let r = &records[(self.records - 1) as usize];
        if r.hash != self.hash {
            return Err(format!(
                "record {} is not the one its published head names: the trail was rewritten",
                self.records
            ));
        }
        Ok(())
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    pub who: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<String>,
    #[serde(flatten)]
    pub entry: Entry,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// This record's own hash (its seal; filled in when the trail is read).
    #[serde(skip)]
    pub hash: String,
}

/// Serialise `r` and seal it: the line is the record's JSON with `"hash"` (the
/// SHA-256 of that JSON) appended as the last member.
fn seal(r: &Record) -> (String, String) {
    let body = serde_json::to_string(r).expect("record serializes");
    let hash = lifeboat_core::id::hex(&Sha256::digest(body.as_bytes()));
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    (line, hash)
}

/// Split a sealed line into the record's JSON and its claimed hash.
fn unseal(line: &str) -> Option<(String, &str)> {
    let cut = line.len().checked_sub(",\"hash\":\"\"}".len() + 64)?;
    let tail = line.get(cut..)?;
    let hash = tail.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{}}}", &line[..cut]), hash))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The last complete line of `f` (read from the end: logs grow without bound).
fn last_line(f: &mut std::fs::File, path: &Path) -> Result<Option<String>, AuditError> {
    let len = f.seek(SeekFrom::End(0)).map_err(io(path))?;
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start)).map_err(io(path))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io(path))?;
        let text = String::from_utf8_lossy(&buf);
        let trimmed = text.trim_end_matches('\n');
        if let Some(p) = trimmed.rfind('\n') {
            return Ok(Some(trimmed[p + 1..].to_string()));
        }
        if start == 0 {
            return Ok((!trimmed.is_empty()).then(|| trimmed.to_string()));
        }
        window *= 4;
    }
}

/// The sealed line (and its hash) that follows `last` (the log's last line, `None`
/// for an empty log): the one place both backends extend the chain.
pub fn next_record(
    path: &Path,
    last: Option<&str>,
    entry: Entry,
) -> Result<(String, Head), AuditError> {
    let (seq, prev) = match last {
        None => (0, GENESIS.to_string()),
        Some(l) => {
            let broken = |reason: String| AuditError::Broken {
                path: path.to_path_buf(),
                line: 0,
                reason,
            };
            let (json, hash) = unseal(l).ok_or_else(|| {
                broken("the last record is not sealed; run `lifeboat audit verify`".into())
            })?;
            let r: Record = serde_json::from_str(&json)
                .map_err(|e| broken(format!("the last record does not parse: {e}")))?;
            (r.seq + 1, hash.to_string())
        }
    };
    let record = Record {
        seq,
        at: jiff::Timestamp::now().to_string(),
        who: super::owner_name(),
        host: super::host_name(),
        pipeline_run: std::env::var("BUILD_BUILDID").ok(),
        entry,
        prev,
        hash: String::new(),
    };
    let (line, hash) = seal(&record);
    Ok((
        line,
        Head {
            records: seq + 1,
            hash,
        },
    ))
}

pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn at(path: PathBuf) -> AuditLog {
        AuditLog { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` under an exclusive lock; returns the trail's new head.
    pub fn append(&self, entry: Entry) -> Result<Head, AuditError> {
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        f.lock().map_err(io(&self.path))?;
        let last = last_line(&mut f, &self.path)?;
        let (line, head) = next_record(&self.path, last.as_deref(), entry)?;
        // One write per record: a crash leaves whole lines or a torn last one.
        f.write_all(format!("{line}\n").as_bytes())
            .map_err(io(&self.path))?;
        f.sync_data().map_err(io(&self.path))?;
        Ok(head)
    }

    /// Every record, checking the chain; the first break is an error naming its line.
    pub fn verify(&self) -> Result<Vec<Record>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.path)(e)),
        };
        verify_text(&self.path, &text)
    }
}

pub fn verify_text(path: &Path, text: &str) -> Result<Vec<Record>, AuditError> {
    let broken = |line: usize, reason: String| AuditError::Broken {
        path: path.to_path_buf(),
        line,
        reason,
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let n = text.lines().count();
        return Err(broken(
            n,
            "the last line is incomplete (torn write or truncation)".into(),
        ));
    }
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let (json, claimed) =
            unseal(line).ok_or_else(|| broken(n, "not a sealed record".into()))?;
        let actual = lifeboat_core::id::hex(&Sha256::digest(json.as_bytes()));
        if actual != claimed {
            return Err(broken(
                n,
                "the record was edited: its hash does not match its content".into(),
            ));
        }
        let mut r: Record =
            serde_json::from_str(&json).map_err(|e| broken(n, format!("does not parse: {e}")))?;
        r.hash = claimed.to_string();
        if r.prev != prev {
            return Err(broken(
                n,
                "the chain is broken: a record before it was removed, inserted or reordered".into(),
            ));
        }
        if r.seq != i as u64 {
            return Err(broken(
                n,
                format!("sequence number {} where {i} was expected", r.seq),
            ));
        }
        prev = claimed.to_string();
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str) -> AuditLog {
        let d = std::env::temp_dir().join(format!("lifeboat-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        AuditLog::at(d.join("audit.jsonl"))
    }

    fn entry(cmd: &str) -> Entry {
        Entry {
            command: cmd.into(),
            tenants: vec!["cwz".into()],
            reason: Some("drill".into()),
            plan: None,
            outcome: "succeeded".into(),
            details: serde_json::Value::Null,
            principal: None,
        }
    }

    #[test]
    fn chain_detects_edits_removals_and_reordering() {
        let l = log("chain");
        for c in ["apply", "activate", "deactivate"] {
            l.append(entry(c)).unwrap();
        }
        let recs = l.verify().unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].entry.command, "activate");
        let text = std::fs::read_to_string(l.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let edited = text.replace("\"activate\"", "\"apply\"");
        let e = verify_text(l.path(), &edited).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("edited"), "{e}");

        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        let e = verify_text(l.path(), &removed).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("chain is broken"), "{e}");

        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert!(verify_text(l.path(), &swapped).is_err());

        let torn = &text[..text.len() - 10];
        assert!(
            verify_text(l.path(), torn)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );

        // A re-sealed edit still breaks the next record's link.
        let mut r1: Record = serde_json::from_str(&unseal(lines[1]).unwrap().0).unwrap();
        r1.entry.reason = Some("changed".into());
        let (resealed, _) = seal(&r1);
        let forged = format!("{}\n{}\n{}\n", lines[0], resealed, lines[2]);
        let e = verify_text(l.path(), &forged).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn concurrent_appends_keep_every_record_in_one_chain() {
        let l = log("threads");
        std::thread::scope(|s| {
            for t in 0..8 {
                let l = &l;
                s.spawn(move || {
                    for i in 0..25 {
                        l.append(entry(&format!("t{t}-{i}"))).unwrap();
                    }
                });
            }
        });
        assert_eq!(l.verify().unwrap().len(), 200);
    }
}
