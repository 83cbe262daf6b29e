//! Applying: locks first, then a fresh read and plan (or the saved plan checked
//! and recomputed against that read), then the guards, the reviewer's approval,
//! and the apply itself with its journal and audit record, all while the locks
//! are held. A plan is never executed on a state read before its locks were
//! taken: an `apply` queued behind `activate` plans against the activated
//! tenant, not the standby one it saw while waiting.

use std::path::Path;
use std::time::Duration;

use lifeboat_core::graph::Scope;
use lifeboat_core::plan::{Action, Plan};

use super::guards::{self, GuardOptions};
use super::locks::Held;
use super::{PlanRequest, ReviewError, Workspace, changed_layers, lock_scopes, scope_locks};
use crate::apply::{self, ApplyOptions, ApplyReport, Event};
use crate::cloud::inventory::Refresh;
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

/// Who looks at a plan made under the locks before it is carried out: the CLI
/// shows it and asks (or a pipeline has approved it already).
pub trait Reviewer {
    /// Show the plan (before the guards run, so a refused plan is still seen).
    fn show(&self, plan: &Plan);
    /// Approve a plan with changes that passed the guards; `Err(why)` stops.
    fn approve(&self, plan: &Plan) -> Result<(), String>;
}

/// What an execution came to.
#[derive(Debug)]
pub enum Executed {
    /// The plan has nothing to do; nothing recorded.
    NoChanges { plan: String },
    /// The apply ran (its outcome may be a failure) and was recorded; the
    /// audit trail's new head, for publishing.
    Applied {
        report: Box<ApplyReport>,
        audit: audit::Head,
    },
}

/// How many times a plan is made again because it needed locks it did not hold.
const MAX_REPLANS: usize = 3;

impl Workspace {
    /// `apply` of the layers `req` names: lock, plan, review, execute.
    pub fn apply(
        &self,
        req: PlanRequest<'_>,
        opts: ExecOptions,
        reviewer: &dyn Reviewer,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        let scope = super::scope_from(&self.project, req.tenants, req.shared)?;
        self.locked(&scope_locks(&self.project, &scope), "apply", opts, |held| {
            let plan = self.settled_plan(held, || self.plan(req))?;
            self.review_and_execute(held, &plan, opts, "apply", reviewer, emit)
        })
    }

    /// `destroy` of one tenant (or `shared`): lock, plan the deletes, review,
    /// execute.
    pub fn destroy(
        &self,
        tenant: &str,
        allow_data_loss: &[String],
        opts: ExecOptions,
        reviewer: &dyn Reviewer,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        let scopes = scope_locks(&self.project, &destroy_scope(tenant));
        self.locked(&scopes, "destroy", opts, |held| {
            let plan = self.settled_plan(held, || self.destroy_plan(tenant, allow_data_loss))?;
            self.review_and_execute(held, &plan, opts, "destroy", reviewer, emit)
        })
    }

    /// `apply PLANFILE`: lock what the saved plan changes, check and recompute
    /// it against a fresh read, execute the recomputed plan.
    pub fn apply_saved(
        &self,
        file: &Path,
        refresh: Refresh,
        opts: ExecOptions,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        let saved = self.read_saved(file)?;
        let mut scopes = lock_scopes(&saved.plan);
        scopes.extend(scope_locks(&self.project, &saved.plan.scope));
        scopes.sort();
        scopes.dedup();
        self.locked(&scopes, "apply", opts, |held| {
            let plan = self.settled_plan(held, || self.check_saved(&saved, refresh))?;
            self.guards(&plan, opts)?;
            self.execute_held(held, &plan, saved.hash.clone(), opts, "apply", emit)
        })
    }

    /// Run `work` holding the locks for `scopes`; always release them.
    fn locked<T>(
        &self,
        scopes: &[String],
        command: &str,
        opts: ExecOptions,
        work: impl FnOnce(&Held<'_>) -> Result<T, ReviewError>,
    ) -> Result<T, ReviewError> {
        let session = &self.session;
        let held = session.rt.block_on(Held::take(
            &session.state,
            scopes,
            command,
            opts.lock_timeout,
        ))?;
        let out = work(&held);
        session.rt.block_on(held.release());
        out
    }

    /// Make the plan under the held locks; when it changes a layer whose lock is
    /// not held (a tenant whose manifest is gone), take that lock too and make it
    /// again, so what is planned is what is locked.
    fn settled_plan(
        &self,
        held: &Held<'_>,
        make: impl Fn() -> Result<Plan, ReviewError>,
    ) -> Result<Plan, ReviewError> {
        for attempt in 0..=MAX_REPLANS {
            let plan = make()?;
            held.check()?;
            let missing = self.unlocked(held, &plan);
            if missing.is_empty() {
                return Ok(plan);
            }
            if attempt == MAX_REPLANS {
                return Err(ReviewError::Unsettled { scopes: missing });
            }
            self.session.rt.block_on(held.extend(&missing))?;
        }
        unreachable!("the last attempt returns")
    }

    /// The layers `plan` changes whose locks are not held.
    fn unlocked(&self, held: &Held<'_>, plan: &Plan) -> Vec<String> {
        let have = self.session.rt.block_on(held.scopes());
        lock_scopes(plan)
            .into_iter()
            .filter(|s| !have.contains(s))
            .collect()
    }

    fn review_and_execute(
        &self,
        held: &Held<'_>,
        plan: &Plan,
        opts: ExecOptions,
        command: &str,
        reviewer: &dyn Reviewer,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        reviewer.show(plan);
        self.guards(plan, opts)?;
        if has_work(plan) {
            reviewer.approve(plan).map_err(ReviewError::NotApproved)?;
        }
        self.execute_held(held, plan, plan.hash(), opts, command, emit)
    }

    /// The guards on `plan`, judged now.
    fn guards(&self, plan: &Plan, opts: ExecOptions) -> Result<(), ReviewError> {
        guards::check(
            &self.project,
            plan,
            opts.guards,
            lifeboat_core::clock::now()?,
        )?;
        Ok(())
    }

    /// Apply `plan` (named `hash`, its guards passed) under `held`, which must
    /// cover every layer it changes; record the run in the ledger and the audit
    /// trail.
    fn execute_held(
        &self,
        held: &Held<'_>,
        plan: &Plan,
        hash: String,
        opts: ExecOptions,
        command: &str,
        emit: &(dyn Fn(Event) + Sync),
    ) -> Result<Executed, ReviewError> {
        let session = &self.session;
        if !has_work(plan) {
            // Declared and present: recorded as lifeboat's (an estate from before
            // the ledger is recorded by its first apply, changes or not).
            self.record(plan, |_| false)?;
            return Ok(Executed::NoChanges { plan: hash });
        }
        let unlocked = self.unlocked(held, plan);
        if !unlocked.is_empty() {
            return Err(ReviewError::Unsettled { scopes: unlocked });
        }
        // UTC time first (runs sort by it), then enough to be unique across agents.
        let run_id = format!(
            "{}-{}-{:04x}",
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
            std::process::id(),
            fastrand::u16(..)
        );
        let report = session.rt.block_on(held.guard(async {
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
            Ok::<_, ReviewError>(apply::apply(plan, &session.client, &journal, opts, emit).await)
        }))?;
        // What lifeboat wrote, and what it declared and found present, is its
        // own from now on (and stays protected if it was).
        let succeeded: std::collections::HashSet<&str> = report
            .resources
            .iter()
            .filter(|r| r.outcome == crate::apply::Outcome::Succeeded)
            .map(|r| r.id.as_str())
            .collect();
        self.record(plan, |c| succeeded.contains(c.id.as_str()))?;
        let audit = session
            .audit(audit::Entry {
                command: command.into(),
                tenants: changed_layers(plan),
                reason: None,
                plan: Some(report.plan.clone()),
                outcome: report.outcome.into(),
                details: serde_json::json!({"summary": report.summary, "makespan_ms": report.makespan_ms}),
                principal: None,
            })
            .map_err(ReviewError::state("recording in the audit trail"))?;
        Ok(Executed::Applied {
            report: Box::new(report),
            audit,
        })
    }
}

impl Workspace {
    /// Record in the ledger the plan's resources that exist now: its no-ops
    /// and the writes `written` says succeeded (never deletes).
    fn record(
        &self,
        plan: &Plan,
        written: impl Fn(&lifeboat_core::plan::Change) -> bool,
    ) -> Result<(), ReviewError> {
        let entries: Vec<(lifeboat_core::id::ResourceId, bool)> = plan
            .changes
            .iter()
            .filter(|c| match c.action {
                Action::NoOp => true,
                Action::Delete => false,
                _ => written(c),
            })
            .map(|c| (c.id.clone(), c.protected || c.lifecycle.prevent_destroy))
            .collect();
        let session = &self.session;
        session
            .rt
            .block_on(session.state.ledger_record(&entries))
            .map_err(ReviewError::state("recording in the ledger"))
    }
}

/// Whether the plan has anything to carry out.
fn has_work(plan: &Plan) -> bool {
    plan.has_changes() && plan.changes.iter().any(|c| c.action != Action::NoOp)
}

/// The scope of a `destroy` (the tenant, or the shared layer).
pub fn destroy_scope(tenant: &str) -> Scope {
    let shared = tenant == "shared";
    Scope {
        shared,
        tenants: Some(if shared {
            Vec::new()
        } else {
            vec![tenant.to_string()]
        }),
    }
}
