//! A saved plan (`plan --out`, or its artifact in the state store by hash),
//! checked against what it was computed from before it may be applied. After a
//! crash the cloud differs from the plan's prior state by exactly what the
//! journal records for this plan; then the plan resumes with its finished
//! changes left out.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use lifeboat_core::graph;
use lifeboat_core::plan::{Action, Plan};

use super::{ReviewError, Workspace, inputs};
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
    #[error("{}: refusing a stale plan: {}. Run `lifeboat plan` again.", .file.display(), .reasons.join("; "))]
    Stale { file: PathBuf, reasons: Vec<String> },
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

impl Workspace {
    /// The saved plan `file` (a path, a plan hash or `plans/<hash>.json`), checked
    /// against the project, the templates and the cloud now; with its hash.
    pub fn saved_plan(&self, file: &Path, refresh: Refresh) -> Result<(Plan, String), ReviewError> {
        let (session, project, templates) = (&self.session, &self.project, &self.templates);
        let (bytes, stored) = self.read_plan(file)?;
        let mut plan: Plan =
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
        let graph = graph::build(project, templates, &plan.scope).map_err(ReviewError::Render)?;
        let prior = session.prior_state(project, &graph, refresh)?;
        let now = inputs(project, templates, &prior);
        let journal = session
            .rt
            .block_on(session.state.journal())
            .map_err(ReviewError::state("reading the apply journal"))?;
        let resumed = journal.iter().any(|e| e.plan == hash);
        let mut stale = Vec::new();
        if now.lifeboat_version != plan.inputs.lifeboat_version {
            stale.push(format!(
                "lifeboat {} made it, this is {}",
                plan.inputs.lifeboat_version, now.lifeboat_version
            ));
        }
        for (what, a, b) in [
            ("manifest", &plan.inputs.manifests, &now.manifests),
            ("template", &plan.inputs.templates, &now.templates),
        ] {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                if a.get(k) != b.get(k) {
                    stale.push(format!("{what} {k} changed"));
                }
            }
        }
        if now.prior_state != plan.inputs.prior_state && !resumed {
            stale.push("the cloud changed since the plan was made".into());
        }
        if !stale.is_empty() {
            return Err(SavedPlanError::Stale {
                file: file.to_path_buf(),
                reasons: stale,
            }
            .into());
        }
        if resumed {
            let done: HashSet<String> = journal
                .iter()
                .filter(|e| e.plan == hash && e.event == "done")
                .map(|e| e.id.key().to_string())
                .collect();
            let pending = plan
                .changes
                .iter()
                .filter(|c| c.action != Action::NoOp && !done.contains(c.id.key()))
                .count();
            if pending == 0 {
                return Err(SavedPlanError::AlreadyApplied {
                    file: file.to_path_buf(),
                }
                .into());
            }
            for c in &mut plan.changes {
                if done.contains(c.id.key()) {
                    c.action = Action::NoOp;
                }
            }
        }
        Ok((plan, hash))
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
