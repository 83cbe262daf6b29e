//! A saved plan (`plan --out`, or its artifact in the state store by hash),
//! checked under the layer locks against what it was computed from before it
//! may be applied, and recomputed: what runs is the plan its recorded inputs
//! produce now, authorised change by change by the file. After a crash the
//! cloud differs from the plan's prior state by exactly what the journal
//! records for this plan; then the recomputed plan holds the unfinished rest.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use lifeboat_core::plan::{Action, Change, Plan};

use super::{ReviewError, Workspace};
use crate::cloud::inventory::Refresh;

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("reading the plan {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "reading the plan {}: no such file (a saved plan in the state store is named by its 32-character hash)",
        .file.display()
    )]
    NoSuchFile { file: PathBuf },
    #[error("no plan file {} here, and no saved plan {hash} in {store}", .file.display())]
    NotStored {
        file: PathBuf,
        hash: String,
        store: String,
    },
    #[error("{}: not a lifeboat plan (saved with `plan --out`)", .file.display())]
    NotAPlan {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{location}: its content hashes to {actual}, not {expected}: refusing a plan that was changed after it was saved"
    )]
    Tampered {
        location: String,
        expected: String,
        actual: String,
    },
    #[error("{}: refusing a stale plan; since it was made:\n  - {}\nRun `lifeboat plan` again.", .file.display(), .reasons.join("\n  - "))]
    Stale { file: PathBuf, reasons: Vec<String> },
    #[error(
        "{}: refusing a plan whose changes are not what its recorded inputs produce (edited after it was saved?): {}. Run `lifeboat plan` again.",
        .file.display(), .changes.join(", ")
    )]
    Edited { file: PathBuf, changes: Vec<String> },
    #[error(
        "{}: this plan was already applied in full; a saved plan applies once. Run `lifeboat plan` again.",
        .file.display()
    )]
    AlreadyApplied { file: PathBuf },
}

/// A saved plan found in the state store: the hash it must have, and where it was.
struct Stored {
    hash: String,
    location: String,
}

/// A saved plan as read, before it is checked.
pub struct SavedPlan {
    pub file: PathBuf,
    pub plan: Plan,
    /// Its hash (the journal and the audit trail name it by this).
    pub hash: String,
}

impl Workspace {
    /// Read the saved plan `file` (a path, a plan hash or `plans/<hash>.json`);
    /// a stored artifact must still hash to its name. Not checked against the
    /// cloud yet: that happens under the locks ([`Workspace::check_saved`]).
    pub fn read_saved(&self, file: &Path) -> Result<SavedPlan, ReviewError> {
        let (bytes, stored) = self.read_plan(file)?;
        let plan: Plan =
            serde_json::from_slice(&bytes).map_err(|source| SavedPlanError::NotAPlan {
                file: file.to_path_buf(),
                source,
            })?;
        let hash = plan.hash();
        if let Some(s) = stored
            && s.hash != hash
        {
            return Err(SavedPlanError::Tampered {
                location: s.location,
                expected: s.hash,
                actual: hash,
            }
            .into());
        }
        Ok(SavedPlan {
            file: file.to_path_buf(),
            plan,
            hash,
        })
    }

    /// Check a saved plan against the project, the templates and the cloud now,
    /// and return the plan to execute: the plan its recorded inputs produce now
    /// (findings, capacity and window facts included), never the file's own
    /// changes. The file only authorises: every change the recomputed plan
    /// makes must be in it, identically; a plan whose changes differ from what
    /// its inputs produce was edited and is refused. After a crash (this plan's
    /// run is in the journal) the recomputed plan holds exactly the changes that
    /// did not finish.
    pub fn check_saved(&self, saved: &SavedPlan, refresh: Refresh) -> Result<Plan, ReviewError> {
        let (file, hash) = (&saved.file, &saved.hash);
        let session = &self.session;
        let (fresh, _prior) = self.plan_scope(
            &saved.plan.scope,
            refresh,
            &saved.plan.allow_data_loss,
            true,
        )?;
        let journal = session
            .rt
            .block_on(session.state.journal())
            .map_err(ReviewError::state("reading the apply journal"))?;
        let resumed = journal.iter().any(|e| e.plan == *hash);
        let (was, now) = (&saved.plan.inputs, &fresh.inputs);
        let mut stale = Vec::new();
        if now.lifeboat_version != was.lifeboat_version {
            stale.push(format!(
                "lifeboat {} made it, this is {}",
                was.lifeboat_version, now.lifeboat_version
            ));
        }
        for (what, a, b) in [
            ("manifest", &was.manifests, &now.manifests),
            ("template", &was.templates, &now.templates),
        ] {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                if a.get(k) != b.get(k) {
                    stale.push(format!("{what} {k} changed"));
                }
            }
        }
        if now.prior_state != was.prior_state && !resumed {
            stale.push("the cloud changed since the plan was made".into());
        }
        if !stale.is_empty() {
            return Err(SavedPlanError::Stale {
                file: file.to_path_buf(),
                reasons: stale,
            }
            .into());
        }
        let authorised: HashMap<String, serde_json::Value> = saved
            .plan
            .changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| (c.id.key().to_string(), change_value(c)))
            .collect();
        let mut edited = Vec::new();
        for c in fresh.changes.iter().filter(|c| c.action != Action::NoOp) {
            if authorised.get(c.id.key()) != Some(&change_value(c)) {
                edited.push(format!("{} {}", c.action.as_str(), c.id.display_name()));
            }
        }
        if !resumed {
            let wanted: HashSet<&str> = fresh
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp)
                .map(|c| c.id.key())
                .collect();
            for c in saved
                .plan
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp)
            {
                if !wanted.contains(c.id.key()) {
                    edited.push(format!("{} {}", c.action.as_str(), c.id.display_name()));
                }
            }
        }
        if !edited.is_empty() {
            edited.sort();
            edited.dedup();
            return Err(if resumed {
                SavedPlanError::Stale {
                    file: file.to_path_buf(),
                    reasons: vec![format!(
                        "the cloud now needs changes the plan does not hold ({})",
                        edited.join(", ")
                    )],
                }
            } else {
                SavedPlanError::Edited {
                    file: file.to_path_buf(),
                    changes: edited,
                }
            }
            .into());
        }
        if resumed && fresh.changes.iter().all(|c| c.action == Action::NoOp) {
            return Err(SavedPlanError::AlreadyApplied {
                file: file.to_path_buf(),
            }
            .into());
        }
        Ok(fresh)
    }

    /// The bytes of a saved plan: a file, or else (a plan hash, or
    /// `plans/<hash>.json`) the artifact in the state store.
    fn read_plan(&self, file: &Path) -> Result<(Vec<u8>, Option<Stored>), ReviewError> {
        match std::fs::read(file) {
            Ok(b) => return Ok((b, None)),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SavedPlanError::Read {
                    file: file.to_path_buf(),
                    source: e,
                }
                .into());
            }
            Err(_) => {}
        }
        let name = file.to_string_lossy();
        let hash = name
            .strip_prefix("plans/")
            .unwrap_or(&name)
            .trim_end_matches(".json");
        if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SavedPlanError::NoSuchFile {
                file: file.to_path_buf(),
            }
            .into());
        }
        let hash = hash.to_ascii_lowercase();
        let session = &self.session;
        match session
            .rt
            .block_on(session.state.load_plan(&hash))
            .map_err(ReviewError::state(
                "reading a saved plan from the state store",
            ))? {
            Some((bytes, location)) => Ok((bytes, Some(Stored { hash, location }))),
            None => Err(SavedPlanError::NotStored {
                file: file.to_path_buf(),
                hash,
                store: session.state.describe(),
            }
            .into()),
        }
    }
}

/// What must be identical between an authorised change and the one carried out.
fn change_value(c: &Change) -> serde_json::Value {
    serde_json::json!({
        "action": c.action,
        "type": c.resource_type.to_ascii_lowercase(),
        "api_version": c.api_version,
        "body": c.body,
        "lifecycle": c.lifecycle,
        "protected": c.protected,
        "tenant": c.tenant,
        "layer": c.layer,
    })
}
