//! Executing a reviewed plan: the guards again (a saved plan may be applied
//! days after its review), the layer locks, the journal (in-doubt resources,
//! compaction, this run's writer), the apply itself and its audit record.

use std::time::Duration;

use lifeboat_core::plan::{Action, Plan};

use super::guards::{self, GuardOptions};
use super::{ReviewError, Workspace, changed_layers, lock_scopes, locks};
use crate::apply::{self, ApplyOptions, ApplyReport, Event};
use crate::state::{self, audit};

/// How to execute.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Cap on changes in flight (`--max-parallel`); `None` = the quotas decide.
    pub max_parallel: Option<usize>,
    /// How long to wait for each layer lock.
    pub lock_timeout: Duration,
    pub guards: GuardOptions,
}

/// What an execution came to.
#[derive(Debug)]
pub enum Executed {
    /// The plan has nothing to do; no lock was taken, nothing recorded.
    NoChanges,
    /// The apply ran (its outcome may be a failure) and was recorded.
    Applied(Box<ApplyReport>),
}

impl Workspace {
    /// Check the guards now, then apply `plan` (named `hash`) holding the locks
    /// of every layer it changes; record the run in the audit trail as `command`.
    pub fn execute(
        &self,
        plan: &Plan,
        hash: String,
        opts: ExecOptions,
        command: &str,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        guards::check(
            &self.project,
            plan,
            opts.guards,
            lifeboat_core::clock::now()?,
        )?;
        if !plan.has_changes() || plan.changes.iter().all(|c| c.action == Action::NoOp) {
            return Ok(Executed::NoChanges);
        }
        let session = &self.session;
        // UTC time first (runs sort by it), then enough to be unique across agents.
        let run_id = format!(
            "{}-{}-{:04x}",
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
            std::process::id(),
            fastrand::u16(..)
        );
        let scopes = lock_scopes(plan);
        let report = session.rt.block_on(locks::holding(
            &session.state,
            &scopes,
            command,
            opts.lock_timeout,
            async {
                let entries = session
                    .state
                    .journal()
                    .await
                    .map_err(ReviewError::state("reading the apply journal"))?;
                let in_doubt = state::in_doubt(&entries)
                    .into_iter()
                    .map(|e| e.id)
                    .collect();
                session
                    .state
                    .compact_journal(&entries, 5)
                    .await
                    .map_err(ReviewError::state("compacting the apply journal"))?;
                let journal = session
                    .state
                    .journal_writer(&run_id)
                    .await
                    .map_err(ReviewError::state("opening the apply journal"))?;
                let opts = ApplyOptions {
                    max_parallel: opts.max_parallel,
                    run: run_id.clone(),
                    in_doubt,
                    plan_hash: hash,
                };
                Ok::<_, ReviewError>(
                    apply::apply(plan, &session.client, &journal, opts, emit).await,
                )
            },
        ))?;
        session
            .rt
            .block_on(session.state.audit_append(audit::Entry {
                command: command.into(),
                tenants: changed_layers(plan),
                reason: None,
                plan: Some(report.plan.clone()),
                outcome: report.outcome.into(),
                details: serde_json::json!({"summary": report.summary, "makespan_ms": report.makespan_ms}),
            }))
            .map_err(ReviewError::state("recording in the audit trail"))?;
        Ok(Executed::Applied(Box::new(report)))
    }
}
