//! The Disaster Activation Plan: `activate` and `deactivate` of one tenant as a
//! small DAG of timed steps, and what a drill runs (activate, verify, deactivate).
//!
//! Activation: preflight (tenant provisioned and not active; the SQL secondary's
//! log-shipping state — the RPO is the age of the newest log backup it holds,
//! refused above `rpoTargetMinutes` unless forced) -> SQL to STANDBY (read-only;
//! restores go on) in parallel with starting every front-end -> open emergency
//! access (the gateway's HDX rule on the front-end NSG) -> mark the tenant ACTIVE
//! (resource-group tag, which plan/apply and the endpoint catalog read) -> health
//! probe (front-ends running, database online, access open).
//!
//! Activation should take about as long as starting one VM, so nothing slower than
//! a read sits on the critical path beside that start:
//! - the preflight is bulk reads only, all at once: the resource group, one list
//!   of the tenant's VMs, the SQL VM's instance view, the access NSG and the
//!   monitor row the SQL VM reports to Log Analytics. The row is a sample: its
//!   RPO is aged by the time since it was taken. Only when there is no row, or
//!   the row would refuse (RPO above target, database not in its idle mode), is
//!   the secondary asked directly through a runCommand (30 s on Azure): a refusal
//!   always rests on a direct read;
//! - the runCommand that switches the database reads the monitor row back in the
//!   same script, so "database ONLINE" is checked from a read taken after the
//!   change, while the front-ends are still starting, not by a second runCommand
//!   after them. The health probe reports it with its own reads of the
//!   front-ends' power and the access rule.
//!
//! Every step is idempotent, and the tenant is tagged `activating` before any
//! change, so a re-run after a partial failure continues where it stopped.
//! Deactivation mirrors it back to the manifest's restore mode.
//!
//! Talks to the cloud only through the ARM client and never prints: it reports
//! [`DapEvent`]s and returns a [`Run`] (rendered by `report::dap`).

use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cloud::client::{ArmClient, ArmError};
use lifeboat_core::id::ResourceId;
use lifeboat_core::model::naming::TenantNames;
use lifeboat_core::model::{Platform, RestoreMode, Tenant};
use lifeboat_core::plan::ACTIVATION_TAG;

pub use lifeboat_core::api::RESOURCE_GROUPS as RG_API;
use lifeboat_core::api::{COMPUTE as COMPUTE_API, NETWORK as NETWORK_API};
/// The NSG rule that is the users' way in (Deny while idle).
pub const ACCESS_RULE: &str = "allow-hdx-from-gateway";
/// When the tenant was activated, and why (resource-group tags).
pub const ACTIVATED_AT_TAG: &str = "lifeboat-activated-at";
pub const REASON_TAG: &str = "lifeboat-activation-reason";
/// `<RFC 3339> rto=<seconds>s <ok|failed>` of the last drill.
pub const LAST_DRILL_TAG: &str = "lifeboat-last-drill";

/// What the DAP acts on, from the manifest's derived names.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant: String,
    pub rg: ResourceId,
    pub sql_vm: ResourceId,
    pub frontends: Vec<ResourceId>,
    pub access_nsg: ResourceId,
    /// The gallery image version the manifest declares for the front-ends.
    pub declared_image: ResourceId,
    pub rpo_target_minutes: u32,
    /// The mode the database waits in while idle.
    pub idle_mode: &'static str,
    /// The platform's Log Analytics workspace (the SQL VMs' monitor rows).
    pub workspace: ResourceId,
}

/// The platform's Log Analytics workspace, where every SQL VM reports its
/// log-shipping monitor row.
pub fn log_workspace(p: &Platform) -> ResourceId {
    let names = lifeboat_core::model::naming::PlatformNames::derive(p);
    ResourceId::parse(&format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
        p.subscription_id, names.rg, names.log_analytics
    ))
    .expect("derived names form an ARM id")
}

impl Target {
    pub fn derive(p: &Platform, t: &Tenant) -> Target {
        let n = TenantNames::derive(p, t);
        let rg = format!(
            "/subscriptions/{}/resourceGroups/{}",
            p.subscription_id, n.rg
        );
        let id = |s: String| ResourceId::parse(&s).expect("derived ids parse");
        Target {
            tenant: t.id.value.clone(),
            rg: id(rg.clone()),
            sql_vm: id(format!(
                "{rg}/providers/Microsoft.Compute/virtualMachines/{}",
                n.sql.vm
            )),
            frontends: n
                .frontends
                .iter()
                .map(|f| {
                    id(format!(
                        "{rg}/providers/Microsoft.Compute/virtualMachines/{}",
                        f.vm
                    ))
                })
                .collect(),
            access_nsg: id(format!(
                "{rg}/providers/Microsoft.Network/networkSecurityGroups/{}",
                n.nsg_frontend
            )),
            declared_image: lifeboat_core::model::naming::declared_image(p, t),
            rpo_target_minutes: t.sql.rpo_target_minutes,
            idle_mode: match t.sql.restore_mode {
                RestoreMode::Norecovery => "norecovery",
                RestoreMode::Standby => "standby",
            },
            workspace: log_workspace(p),
        }
    }
}

/// The SQL secondary as `msdb.dbo.log_shipping_monitor_secondary` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlState {
    /// `norecovery`, `standby` or `recovery`.
    pub mode: String,
    /// `RESTORING` or `ONLINE`.
    pub state: String,
    pub last_copied_file: Option<String>,
    /// When the newest backup the secondary holds was taken.
    pub last_copied_backup: Option<String>,
    pub last_restored_file: Option<String>,
    pub last_restored_backup: Option<String>,
    /// The server's clock.
    pub now: String,
    /// Age of the newest backup held: the data a failover would lose.
    pub rpo_seconds: Option<i64>,
    /// How far the restores lag behind now (the deliberate `restoreDelay` plus).
    pub restore_lag_seconds: Option<i64>,
}

/// `HIX_20261124003000.trn` -> the backup's time (log shipping names files so).
pub fn backup_time(file: &str) -> Option<jiff::Timestamp> {
    let stem = file.strip_suffix(".trn")?;
    let digits = stem.rsplit('_').next()?;
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let dt = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", digits).ok()?;
    dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

impl SqlState {
    /// From the monitor row (columns of `log_shipping_monitor_secondary`, plus the
    /// database state and the server's `GETUTCDATE()`).
    pub fn from_row(row: &serde_json::Map<String, Value>) -> Option<SqlState> {
        let s = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
        let now = s("now_utc")?;
        let now_t: jiff::Timestamp = now.parse().ok()?;
        let copied = s("last_copied_file");
        let restored = s("last_restored_file");
        let at = |f: &Option<String>| f.as_deref().and_then(backup_time);
        let age = |f: &Option<String>| at(f).map(|t| (now_t - t).as_secs());
        Some(SqlState {
            mode: s("restore_mode").unwrap_or_else(|| "norecovery".into()),
            state: s("state_desc").unwrap_or_default(),
            last_copied_backup: at(&copied).map(|t| t.to_string()),
            last_restored_backup: at(&restored).map(|t| t.to_string()),
            rpo_seconds: age(&copied),
            restore_lag_seconds: age(&restored),
            last_copied_file: copied,
            last_restored_file: restored,
            now,
        })
    }

    /// The state as it may be `now`, for a sample taken at `self.now`: the RPO
    /// grows by the sample's age (backups that arrived since only make it
    /// smaller). A sample from the future (an emulator's faster clock) ages by 0.
    pub fn aged(mut self, now: jiff::Timestamp) -> SqlState {
        let age = self
            .now
            .parse::<jiff::Timestamp>()
            .map_or(0, |t| (now - t).as_secs().max(0));
        self.rpo_seconds = self.rpo_seconds.map(|s| s + age);
        self
    }

    /// The database's state while in `mode`.
    pub fn expected_state(mode: &str) -> &'static str {
        if mode == "norecovery" {
            "RESTORING"
        } else {
            "ONLINE"
        }
    }

    pub fn rpo_within(&self, target_minutes: u32) -> bool {
        self.rpo_seconds
            .is_some_and(|s| s <= i64::from(target_minutes) * 60)
    }
}

/// The monitor query lifeboat runs on the SQL VM (and the columns the emulated
/// server and the Log Analytics table answer with).
pub const MONITOR_QUERY: &str = "SELECT m.secondary_database, m.last_copied_file, m.last_copied_date_utc, m.last_restored_file, m.last_restored_date_utc, m.last_restored_latency, d.state_desc, d.is_in_standby, CASE WHEN d.state_desc = 'RESTORING' THEN 'norecovery' WHEN d.is_in_standby = 1 THEN 'standby' ELSE 'recovery' END AS restore_mode, CONVERT(varchar(33), GETUTCDATE(), 127) + 'Z' AS now_utc FROM msdb.dbo.log_shipping_monitor_secondary m JOIN sys.databases d ON d.name = m.secondary_database";

/// Why a step failed, or why the activation was refused. ARM's own errors stay
/// values (code, message, resource id) until a report turns them into text.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Arm(#[from] ArmError),
    #[error("{id} does not exist{hint}")]
    Missing { id: String, hint: &'static str },
    /// A runCommand script wrote to StdErr.
    #[error("{stderr}")]
    Script { stderr: String },
    #[error("the monitor query answered `{output}`: {reason}")]
    MonitorUnreadable { output: String, reason: String },
    #[error("the monitor row has no server time: {output}")]
    MonitorWithoutTime { output: String },
    #[error("reading the SQL secondary: {0}")]
    Secondary(Box<StepError>),
    #[error("the NSG has no security rules")]
    NoSecurityRules,
    #[error("the NSG has no rule {ACCESS_RULE}")]
    NoAccessRule,
    #[error("{} of {total} front-end(s) failed to {action}: {}", .failed.len(), .failed.join("; "))]
    Power {
        action: String,
        total: usize,
        failed: Vec<String>,
    },
    #[error("not {want}: {}", .off.join(", "))]
    NotInState { want: String, off: Vec<String> },
    #[error("database is {state} ({mode}), not {want}")]
    Database {
        state: String,
        mode: String,
        want: &'static str,
    },
    #[error("emergency access is {access}")]
    AccessNotOpen { access: String },
    #[error("emergency access is {access}, not closed")]
    AccessNotClosed { access: String },
    #[error(
        "the database was recovered read-write (RESTORE WITH RECOVERY is irreversible): it cannot return to the log-shipping chain; re-seed the secondary from a full backup"
    )]
    Recovered,
    /// What the preflight found missing or wrong; nothing was changed.
    #[error("not ready to activate: {}", .problems.join("; "))]
    NotReady { problems: Vec<String> },
    /// Steps that failed independently (deactivation runs them all).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<StepError>),
    /// Refused, not failed: nothing was changed.
    #[error(
        "tenant {tenant} is already active (since {since}); `lifeboat deactivate {tenant}` first"
    )]
    AlreadyActive { tenant: String, since: String },
    /// Refused, not failed: nothing was changed.
    #[error("{rpo}; activating would lose more data than agreed. Re-run with --force to accept it")]
    RpoAboveTarget { rpo: String },
}

impl StepError {
    /// `refused` (the run changed nothing, by rule) or `failed`.
    pub fn outcome(&self) -> &'static str {
        match self {
            StepError::AlreadyActive { .. } | StepError::RpoAboveTarget { .. } => "refused",
            _ => "failed",
        }
    }
}

fn script(lines: &[&str]) -> Value {
    json!({"commandId": "RunPowerShellScript", "script": lines})
}

/// StdOut of a runCommand's output, or its StdErr as the error.
fn std_out(output: &Value) -> Result<String, StepError> {
    let items = output
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let msg = |kind: &str| {
        items
            .iter()
            .find(|i| i["code"].as_str().is_some_and(|c| c.contains(kind)))
            .and_then(|i| i["message"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let err = msg("StdErr");
    if !err.trim().is_empty() {
        return Err(StepError::Script { stderr: err });
    }
    Ok(msg("StdOut"))
}

async fn run_script(
    client: &ArmClient,
    vm: &ResourceId,
    lines: &[&str],
) -> Result<String, StepError> {
    let out = client
        .action(vm, "runCommand", COMPUTE_API, Some(&script(lines)), false)
        .await?;
    std_out(&out)
}

/// Run `first` (if any) and then the monitor query on the SQL VM, in one
/// runCommand: the secondary's state after `first`.
async fn monitored(
    client: &ArmClient,
    vm: &ResourceId,
    first: Option<String>,
) -> Result<SqlState, StepError> {
    let q = format!("$q = \"{MONITOR_QUERY}\"");
    let read = "Invoke-Sqlcmd -Query $q | Select-Object -First 1 | ConvertTo-Json -Compress";
    let mut lines: Vec<&str> = first.iter().map(String::as_str).collect();
    lines.extend([q.as_str(), read]);
    let out = run_script(client, vm, &lines).await?;
    let row: serde_json::Map<String, Value> =
        serde_json::from_str(&out).map_err(|e| StepError::MonitorUnreadable {
            output: out.clone(),
            reason: e.to_string(),
        })?;
    SqlState::from_row(&row).ok_or(StepError::MonitorWithoutTime { output: out })
}

/// Read the secondary's state through a runCommand on the SQL VM.
pub async fn sql_state(client: &ArmClient, vm: &ResourceId) -> Result<SqlState, StepError> {
    monitored(client, vm, None).await
}

/// `RESTORE ... WITH NORECOVERY | STANDBY | RECOVERY` on the secondary, and its
/// state read back by the same script: an error unless the database is in the
/// state that mode means (RESTORING or ONLINE).
pub async fn set_sql_mode(
    client: &ArmClient,
    vm: &ResourceId,
    mode: &str,
) -> Result<SqlState, StepError> {
    // `-ErrorAction Stop`: a refused switch ends the script before the read.
    let s = monitored(
        client,
        vm,
        Some(format!(
            "Set-LifeboatSqlMode -Mode {mode} -ErrorAction Stop"
        )),
    )
    .await?;
    let want = SqlState::expected_state(mode);
    if s.state != want {
        return Err(StepError::Database {
            state: s.state,
            mode: s.mode,
            want,
        });
    }
    Ok(s)
}

/// The SQL VM's latest log-shipping monitor row in Log Analytics, aged to now
/// (see [`SqlState::aged`]); `None` when it has reported nothing.
pub async fn reported_sql_state(
    client: &ArmClient,
    target: &Target,
) -> Result<Option<SqlState>, ArmError> {
    let query = format!(
        "LifeboatLogShipping_CL | where ResourceId =~ '{}' | summarize arg_max(TimeGenerated, *) by ResourceId",
        target.sql_vm.as_str()
    );
    let rows = client.log_query(&target.workspace, &query).await?;
    // The server's clock against ours: a protocol time, not `LIFEBOAT_NOW`.
    let now = jiff::Timestamp::now();
    Ok(rows
        .iter()
        .filter(|r| {
            r.get("ResourceId")
                .and_then(Value::as_str)
                .is_some_and(|id| id.eq_ignore_ascii_case(target.sql_vm.as_str()))
        })
        .find_map(SqlState::from_row)
        .map(|s| s.aged(now)))
}

/// The secondary's state for a preflight: the reported row when `trusted` says
/// it can be acted on, else a direct read (a runCommand). The second value says
/// where it came from.
async fn secondary_state(
    client: &ArmClient,
    target: &Target,
    reported: Result<Option<SqlState>, ArmError>,
    trusted: impl Fn(&SqlState) -> bool,
) -> Result<(SqlState, &'static str), StepError> {
    match reported {
        Ok(Some(s)) if trusted(&s) => Ok((s, "Log Analytics")),
        _ => sql_state(client, &target.sql_vm)
            .await
            .map(|s| (s, "runCommand"))
            .map_err(|e| StepError::Secondary(Box::new(e))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    /// Offset from the start of the run.
    pub start_ms: u64,
    pub duration_ms: u64,
    /// The step's own operation time: for a fan-out (every front-end at once), the
    /// slowest single operation, so time lost to queueing or pacing shows as the
    /// difference between the RTO and the critical path.
    #[serde(default)]
    pub operation_ms: u64,
    /// `ok`, `failed` or `skipped`.
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DapEvent {
    Started { tenant: String, step: String },
    Finished { tenant: String, step: Step },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// `activate` or `deactivate`.
    pub kind: String,
    pub tenant: String,
    pub reason: Option<String>,
    pub drill: bool,
    pub read_write: bool,
    pub started_at: String,
    pub steps: Vec<Step>,
    /// `succeeded`, `failed` or `refused`.
    pub outcome: String,
    pub error: Option<String>,
    /// Wall time from the first step's start to the last step's end.
    pub rto_ms: u64,
    /// Sum along the DAG's longest chain of the steps' measured durations.
    pub critical_path_ms: u64,
    /// `rto_ms` in Azure time (the emulator runs `1 / time_scale` times faster).
    pub modelled_rto_seconds: f64,
    pub sql: Option<SqlState>,
    /// Front-ends an activation could not start (no capacity), while the others
    /// serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortfall: Vec<String>,
}

impl Run {
    /// A run refused before its first step (nobody may log in, no MFA policy):
    /// nothing was changed.
    pub fn refused(kind: &str, tenant: &str, opts: &Options, error: String) -> Run {
        Run {
            outcome: "refused".into(),
            ..Run::not_started(kind, tenant, opts, error)
        }
    }

    /// A run that never started (its tenant's lock was not granted, say): failed,
    /// with why.
    pub fn not_started(kind: &str, tenant: &str, opts: &Options, error: String) -> Run {
        Run {
            kind: kind.into(),
            tenant: tenant.into(),
            reason: opts.reason.clone(),
            drill: opts.drill,
            read_write: opts.read_write,
            started_at: lifeboat_core::clock::stamp(),
            steps: Vec::new(),
            outcome: "failed".into(),
            error: Some(error),
            rto_ms: 0,
            critical_path_ms: 0,
            modelled_rto_seconds: 0.0,
            sql: None,
            shortfall: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub reason: Option<String>,
    /// Activate even when the RPO is above target (or unknown).
    pub force: bool,
    /// RESTORE WITH RECOVERY (irreversible); the command asked for confirmation.
    pub read_write: bool,
    pub drill: bool,
}

struct Runner<'a, E: Fn(DapEvent)> {
    tenant: String,
    t0: Instant,
    started_at: String,
    /// Its time scale (1 on Azure) gives the modelled RTO; read at the end, as an
    /// emulator announces it with its first answer.
    client: &'a ArmClient,
    steps: Vec<Step>,
    shortfall: Vec<String>,
    emit: &'a E,
}

impl<'a, E: Fn(DapEvent)> Runner<'a, E> {
    fn new(client: &'a ArmClient, tenant: &str, emit: &'a E) -> Self {
        Runner {
            tenant: tenant.to_string(),
            t0: Instant::now(),
            started_at: lifeboat_core::clock::stamp(),
            client,
            steps: Vec::new(),
            shortfall: Vec::new(),
            emit,
        }
    }

    /// Two steps that run at the same time; both are recorded.
    async fn pair<A, B>(
        &mut self,
        (na, a): (&str, A),
        (nb, b): (&str, B),
    ) -> (Result<String, StepError>, Result<String, StepError>)
    where
        A: std::future::Future<Output = Result<String, StepError>>,
        B: std::future::Future<Output = Result<String, StepError>>,
    {
        let start = self.t0.elapsed().as_millis() as u64;
        for n in [na, nb] {
            (self.emit)(DapEvent::Started {
                tenant: self.tenant.clone(),
                step: n.into(),
            });
        }
        let t0 = self.t0;
        let ta = async {
            let r = a.await;
            (r, t0.elapsed().as_millis() as u64)
        };
        let tb = async {
            let r = b.await;
            (r, t0.elapsed().as_millis() as u64)
        };
        let ((ra, ea), (rb, eb)) = futures::join!(ta, tb);
        for (n, r, end) in [(na, &ra, ea), (nb, &rb, eb)] {
            let step = self.finish(n, start, end, r);
            self.steps.push(step);
        }
        (ra, rb)
    }

    /// A fan-out step's critical operation time (its slowest single operation).
    fn operation_time(&mut self, name: &str, ms: u64) {
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.name == name) {
            s.operation_ms = ms.min(s.duration_ms);
        }
    }

    /// Time one step; its detail on success, the error text on failure.
    async fn step<F>(&mut self, name: &str, fut: F) -> Result<String, StepError>
    where
        F: std::future::Future<Output = Result<String, StepError>>,
    {
        let start = self.t0.elapsed().as_millis() as u64;
        (self.emit)(DapEvent::Started {
            tenant: self.tenant.clone(),
            step: name.into(),
        });
        let r = fut.await;
        let end = self.t0.elapsed().as_millis() as u64;
        let step = self.finish(name, start, end, &r);
        self.steps.push(step);
        r
    }

    /// Record a step that ran from `start` to `end` (ms since the run began).
    fn finish(&self, name: &str, start: u64, end: u64, r: &Result<String, StepError>) -> Step {
        let step = Step {
            name: name.into(),
            start_ms: start,
            duration_ms: end - start,
            operation_ms: end - start,
            outcome: if r.is_ok() { "ok" } else { "failed" }.into(),
            detail: match r {
                Ok(d) => d.clone(),
                Err(e) => e.to_string(),
            },
        };
        (self.emit)(DapEvent::Finished {
            tenant: self.tenant.clone(),
            step: step.clone(),
        });
        step
    }

    fn skip(&mut self, names: &[&str]) {
        let at = self.t0.elapsed().as_millis() as u64;
        for n in names {
            let step = Step {
                name: (*n).into(),
                start_ms: at,
                duration_ms: 0,
                operation_ms: 0,
                outcome: "skipped".into(),
                detail: "an earlier step failed".into(),
            };
            (self.emit)(DapEvent::Finished {
                tenant: self.tenant.clone(),
                step: step.clone(),
            });
            self.steps.push(step);
        }
    }
}

/// Longest chain of operation times: the steps named in `parallel` overlap, the
/// rest follow each other.
fn critical_path(steps: &[Step], parallel: &[&str]) -> u64 {
    let par = steps
        .iter()
        .filter(|s| parallel.contains(&s.name.as_str()))
        .map(|s| s.operation_ms)
        .max()
        .unwrap_or(0);
    steps
        .iter()
        .filter(|s| !parallel.contains(&s.name.as_str()))
        .map(|s| s.operation_ms)
        .sum::<u64>()
        + par
}

async fn rg_tags(client: &ArmClient, rg: &ResourceId) -> Result<Value, StepError> {
    client
        .get(rg, RG_API)
        .await?
        .ok_or_else(|| StepError::Missing {
            id: rg.as_str().to_string(),
            hint: ": provision the tenant with `lifeboat apply`",
        })
}

/// PUT the resource group back with `edit` applied to its tags.
async fn retag(
    client: &ArmClient,
    rg: &ResourceId,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<(), StepError> {
    let cur = rg_tags(client, rg).await?;
    let mut tags = cur
        .get("tags")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    edit(&mut tags);
    let body =
        json!({"location": cur.get("location").cloned().unwrap_or(Value::Null), "tags": tags});
    client.put(rg, RG_API, &body).await?;
    Ok(())
}

/// What activation needs to exist before it changes anything: every declared
/// front-end, built from the declared image; the SQL VM running; the emergency
/// access rule. One line per problem (not one ARM 404 per front-end). Three
/// reads at once: one list of the tenant's VMs, the SQL VM's instance view and
/// the NSG.
async fn ready_to_activate(client: &ArmClient, target: &Target) -> Result<(), StepError> {
    let vms = format!(
        "{}/providers/Microsoft.Compute/virtualMachines",
        target.rg.as_str()
    );
    let (listed, sql_power, access) = futures::join!(
        client.list(&vms, COMPUTE_API),
        power_state(client, &target.sql_vm),
        access_is(client, &target.access_nsg)
    );
    let listed: std::collections::HashMap<String, Value> = listed?
        .into_iter()
        .filter_map(|vm| Some((vm.get("name")?.as_str()?.to_ascii_lowercase(), vm)))
        .collect();
    let mut problems = Vec::new();
    let (mut missing, mut elsewhere) = (Vec::new(), Vec::new());
    for vm in &target.frontends {
        match listed.get(&vm.name().to_ascii_lowercase()) {
            None => missing.push(vm.name().to_string()),
            Some(b) => {
                let image = b
                    .pointer("/properties/storageProfile/imageReference/id")
                    .and_then(Value::as_str)
                    .and_then(|i| ResourceId::parse(i).ok());
                if image.as_ref() != Some(&target.declared_image) {
                    elsewhere.push(format!(
                        "{} ({})",
                        vm.name(),
                        image.map_or("no gallery image".into(), |i| i.name().to_string())
                    ));
                }
            }
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} front-end(s) do not exist ({}): run `lifeboat apply` (and `lifeboat image build`)",
            missing.len(),
            target.frontends.len(),
            missing.join(", ")
        ));
    }
    if !elsewhere.is_empty() {
        problems.push(format!(
            "{} front-end(s) are not on the declared HiX image {}: {}",
            elsewhere.len(),
            target.declared_image.name(),
            elsewhere.join(", ")
        ));
    }
    match sql_power {
        Ok(p) if p == "running" => {}
        Ok(p) => problems.push(format!(
            "the SQL VM {} is {p}, not running",
            target.sql_vm.name()
        )),
        Err(e) => problems.push(format!("the SQL VM {}: {e}", target.sql_vm.name())),
    }
    if access? == "missing" {
        problems.push(format!(
            "the emergency access rule {ACCESS_RULE} does not exist on {}",
            target.access_nsg.name()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::NotReady { problems })
    }
}

/// Set the access rule of the front-end NSG to `access` (`Allow`/`Deny`).
async fn set_access(
    client: &ArmClient,
    nsg: &ResourceId,
    access: &str,
) -> Result<String, StepError> {
    let mut body = client
        .get(nsg, NETWORK_API)
        .await?
        .ok_or_else(|| StepError::Missing {
            id: nsg.as_str().to_string(),
            hint: "",
        })?;
    let rules = body
        .pointer_mut("/properties/securityRules")
        .and_then(Value::as_array_mut)
        .ok_or(StepError::NoSecurityRules)?;
    let rule = rules
        .iter_mut()
        .find(|r| r["name"].as_str() == Some(ACCESS_RULE))
        .ok_or(StepError::NoAccessRule)?;
    if rule.pointer("/properties/access").and_then(Value::as_str) == Some(access) {
        return Ok(format!("{ACCESS_RULE} already {access}"));
    }
    rule["properties"]["access"] = json!(access);
    for k in ["etag", "id", "name", "type"] {
        body.as_object_mut().map(|o| o.remove(k));
    }
    client.put(nsg, NETWORK_API, &body).await?;
    Ok(format!("{ACCESS_RULE}: {access}"))
}

async fn access_is(client: &ArmClient, nsg: &ResourceId) -> Result<String, StepError> {
    let body = client.get(nsg, NETWORK_API).await?.unwrap_or(Value::Null);
    Ok(body
        .pointer("/properties/securityRules")
        .and_then(Value::as_array)
        .and_then(|r| r.iter().find(|r| r["name"].as_str() == Some(ACCESS_RULE)))
        .and_then(|r| r.pointer("/properties/access"))
        .and_then(Value::as_str)
        .unwrap_or("missing")
        .to_string())
}

/// The power state of a VM from its instance view (`running`, `deallocated`, ...).
pub async fn power_state(client: &ArmClient, vm: &ResourceId) -> Result<String, StepError> {
    let v = client.get_view(vm, "instanceView", COMPUTE_API).await?;
    Ok(v["statuses"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .filter_map(|x| x["code"].as_str())
                .find_map(|c| c.strip_prefix("PowerState/"))
        })
        .unwrap_or("unknown")
        .to_string())
}

/// Starts that hit `AllocationFailed` (the region has no capacity for the size
/// right now) are tried this many times in all, this far apart (Azure seconds).
const ALLOCATION_ATTEMPTS: u32 = 3;
const ALLOCATION_RETRY_SECS: f64 = 30.0;

fn allocation_failed(e: &crate::cloud::client::ArmError) -> bool {
    matches!(e, crate::cloud::client::ArmError::Operation { code, .. }
        | crate::cloud::client::ArmError::Api { code, .. } if code == "AllocationFailed")
}

/// Run `action` (`start`/`deallocate`) on every VM at once (the client paces
/// them); `slowest` receives the longest single operation (ms). A start that
/// hits `AllocationFailed` is retried; front-ends that still cannot start are
/// named in `short` and the others keep serving (the step fails only when none
/// started, or on any other error).
async fn power_all(
    client: &ArmClient,
    vms: &[ResourceId],
    action: &str,
    slowest: &std::sync::atomic::AtomicU64,
    short: &std::sync::Mutex<Vec<String>>,
) -> Result<String, StepError> {
    let results = join_all(vms.iter().map(|vm| async move {
        let mut attempt = 1;
        loop {
            let t = Instant::now();
            let r = client.action(vm, action, COMPUTE_API, None, true).await;
            slowest.fetch_max(
                t.elapsed().as_millis() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            match r {
                Err(e)
                    if action == "start"
                        && allocation_failed(&e)
                        && attempt < ALLOCATION_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs_f64(
                        ALLOCATION_RETRY_SECS * client.time_scale(),
                    ))
                    .await;
                }
                r => return (r, attempt),
            }
        }
    }))
    .await;
    let mut failed = Vec::new();
    let mut unallocated = Vec::new();
    for (vm, (r, attempts)) in vms.iter().zip(&results) {
        match r {
            Ok(_) => {}
            Err(e) if allocation_failed(e) => unallocated.push(format!(
                "{} (AllocationFailed after {attempts} attempts)",
                vm.display_name()
            )),
            Err(e) => failed.push(format!("{}: {e}", vm.display_name())),
        }
    }
    let started = vms.len() - failed.len() - unallocated.len();
    let all_short = !unallocated.is_empty() && started == 0;
    if !failed.is_empty() || all_short {
        failed.extend(unallocated);
        return Err(StepError::Power {
            action: action.to_string(),
            total: vms.len(),
            failed,
        });
    }
    if unallocated.is_empty() {
        return Ok(
            format!("{} front-end(s) {action}ed", vms.len()).replace("deallocateed", "deallocated")
        );
    }
    let done = format!("{started} of {} front-end(s) {action}ed", vms.len());
    let detail = format!(
        "{done}; serving without {} (no capacity for their size in the region: retry `lifeboat activate` later, or resize them)",
        unallocated.join(", ")
    );
    short.lock().expect("shortfall").extend(unallocated);
    Ok(detail)
}

/// Every VM in `want` state (a probe).
async fn all_in(client: &ArmClient, vms: &[ResourceId], want: &str) -> Result<(), StepError> {
    let states = join_all(vms.iter().map(|vm| power_state(client, vm))).await;
    let off: Vec<String> = vms
        .iter()
        .zip(states)
        .filter_map(|(vm, s)| match s {
            Ok(s) if s == want => None,
            Ok(s) => Some(format!("{} {s}", vm.display_name())),
            Err(e) => Some(format!("{} {e}", vm.display_name())),
        })
        .collect();
    if off.is_empty() {
        Ok(())
    } else {
        Err(StepError::NotInState {
            want: want.to_string(),
            off,
        })
    }
}

fn fmt_age(s: i64) -> String {
    format!("{}m{:02}s", s / 60, s % 60)
}

fn finish_run(
    kind: &str,
    target: &Target,
    opts: &Options,
    r: Runner<'_, impl Fn(DapEvent)>,
    result: Result<(), StepError>,
    sql: Option<SqlState>,
    parallel: &[&str],
) -> Run {
    let rto_ms = r.steps.last().map_or(0, |s| s.start_ms + s.duration_ms);
    let (outcome, error) = match result {
        Ok(()) => ("succeeded".to_string(), None),
        Err(e) => (e.outcome().to_string(), Some(e.to_string())),
    };
    Run {
        kind: kind.into(),
        tenant: target.tenant.clone(),
        reason: opts.reason.clone(),
        drill: opts.drill,
        read_write: opts.read_write,
        started_at: r.started_at.clone(),
        critical_path_ms: critical_path(&r.steps, parallel),
        steps: r.steps,
        outcome,
        error,
        rto_ms,
        // To the tenth of a second: a figure for people, not 126.99999999999999.
        modelled_rto_seconds: (rto_ms as f64 / 100.0 / r.client.time_scale().max(1e-9)).round()
            / 10.0,
        sql,
        shortfall: r.shortfall,
    }
}

const ACTIVATE_STEPS: &[&str] = &[
    "preflight",
    "sql-standby",
    "start-frontends",
    "open-access",
    "mark-active",
    "health-probe",
];

/// Activate `target`. Refusals (already active, RPO above target) and failures
/// are in the returned [`Run`]'s outcome, never half-hidden.
pub async fn activate(
    client: &ArmClient,
    target: &Target,
    opts: &Options,
    emit: &impl Fn(DapEvent),
) -> Run {
    let mut r = Runner::new(client, &target.tenant, emit);
    let mut sql = None;
    let result = activate_steps(client, target, opts, &mut r, &mut sql).await;
    if result.is_err() {
        let done: Vec<String> = r.steps.iter().map(|s| s.name.clone()).collect();
        let rest: Vec<&str> = ACTIVATE_STEPS
            .iter()
            .copied()
            .filter(|s| !done.iter().any(|d| d == s))
            .collect();
        r.skip(&rest);
    }
    finish_run(
        "activate",
        target,
        opts,
        r,
        result,
        sql,
        &["sql-standby", "start-frontends"],
    )
}

async fn activate_steps(
    client: &ArmClient,
    target: &Target,
    opts: &Options,
    r: &mut Runner<'_, impl Fn(DapEvent)>,
    sql_out: &mut Option<SqlState>,
) -> Result<(), StepError> {
    // Preflight: refusals are `refused`, not failures (see `StepError::outcome`).
    let mut seen = None;
    let pre = r
        .step("preflight", async {
            let (rg, ready, reported) = futures::join!(
                rg_tags(client, &target.rg),
                ready_to_activate(client, target),
                reported_sql_state(client, target)
            );
            let rg = rg?;
            if rg
                .pointer(&format!("/tags/{ACTIVATION_TAG}"))
                .and_then(Value::as_str)
                == Some("active")
            {
                return Err(StepError::AlreadyActive {
                    tenant: target.tenant.clone(),
                    since: rg
                        .pointer(&format!("/tags/{ACTIVATED_AT_TAG}"))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
            ready?;
            let (state, source) = secondary_state(client, target, reported, |s| {
                s.rpo_within(target.rpo_target_minutes)
                    && s.mode == target.idle_mode
                    && s.state == SqlState::expected_state(target.idle_mode)
            })
            .await?;
            let rpo = match state.rpo_seconds {
                Some(s) => format!(
                    "RPO {} (target {} min, read from {source})",
                    fmt_age(s),
                    target.rpo_target_minutes
                ),
                None => "no log backup has reached the secondary yet".to_string(),
            };
            let detail = format!("{rpo}; database {} ({})", state.state, state.mode);
            let within = state.rpo_within(target.rpo_target_minutes);
            seen = Some(state);
            if !within && !opts.force {
                return Err(StepError::RpoAboveTarget { rpo });
            }
            let (reason, drill) = (opts.reason.clone().unwrap_or_default(), opts.drill);
            retag(client, &target.rg, |t| {
                t.insert(ACTIVATION_TAG.into(), json!("activating"));
                t.insert(
                    REASON_TAG.into(),
                    json!(if drill {
                        format!("drill: {reason}")
                    } else {
                        reason
                    }),
                );
            })
            .await?;
            Ok(detail)
        })
        .await;
    *sql_out = seen;
    pre?;
    let mode = if opts.read_write {
        "recovery"
    } else {
        "standby"
    };
    let slowest = std::sync::atomic::AtomicU64::new(0);
    let short = std::sync::Mutex::new(Vec::new());
    let switched = std::sync::Mutex::new(None::<SqlState>);
    let (sql_res, fe_res) = r
        .pair(
            ("sql-standby", async {
                let s = set_sql_mode(client, &target.sql_vm, mode).await?;
                let detail = format!(
                    "database RESTORE WITH {}: {} ({}) read back",
                    mode.to_uppercase(),
                    s.state,
                    s.mode
                );
                *switched.lock().expect("read back") = Some(s);
                Ok(detail)
            }),
            (
                "start-frontends",
                power_all(client, &target.frontends, "start", &slowest, &short),
            ),
        )
        .await;
    r.operation_time("start-frontends", slowest.into_inner());
    let short = short.into_inner().expect("shortfall");
    // The probe checks the front-ends that started; the others are named.
    let serving: Vec<ResourceId> = target
        .frontends
        .iter()
        .filter(|fe| {
            let name = fe.display_name();
            !short.iter().any(|s| s.starts_with(&format!("{name} ")))
        })
        .cloned()
        .collect();
    r.shortfall = short;
    sql_res?;
    fe_res?;
    r.step(
        "open-access",
        set_access(client, &target.access_nsg, "Allow"),
    )
    .await?;
    let drill = opts.drill;
    r.step("mark-active", async {
        retag(client, &target.rg, |t| {
            t.insert(ACTIVATION_TAG.into(), json!("active"));
            t.insert(
                ACTIVATED_AT_TAG.into(),
                json!(lifeboat_core::clock::stamp()),
            );
        })
        .await?;
        Ok(if drill {
            "ACTIVE (drill)".to_string()
        } else {
            "ACTIVE".to_string()
        })
    })
    .await?;
    let probe = r
        .step("health-probe", async {
            let (running, access) = futures::join!(
                all_in(client, &serving, "running"),
                access_is(client, &target.access_nsg)
            );
            running?;
            let access = access?;
            if access != "Allow" {
                return Err(StepError::AccessNotOpen { access });
            }
            // Checked ONLINE by the switch's own read-back (sql-standby).
            let mode = switched
                .lock()
                .expect("read back")
                .as_ref()
                .map_or_else(|| mode.to_string(), |s| s.mode.clone());
            Ok(format!(
                "{} front-end(s) running, database ONLINE ({mode}), access open",
                serving.len(),
            ))
        })
        .await;
    probe?;
    Ok(())
}

const DEACTIVATE_STEPS: &[&str] = &[
    "preflight",
    "sql-restoring",
    "deallocate-frontends",
    "close-access",
    "mark-standby",
    "health-probe",
];

/// Return `target` to standby: front-ends deallocated, the database back in the
/// manifest's restore mode (log restores resume), access closed, mark removed.
/// A database recovered read-write cannot go back: that step fails, the others
/// still run (deallocating costs nothing and closes the way in).
pub async fn deactivate(
    client: &ArmClient,
    target: &Target,
    opts: &Options,
    last_drill: Option<String>,
    emit: &impl Fn(DapEvent),
) -> Run {
    let mut r = Runner::new(client, &target.tenant, emit);
    let mut seen = None;
    let pre = r
        .step("preflight", async {
            let (rg, reported) = futures::join!(
                rg_tags(client, &target.rg),
                reported_sql_state(client, target)
            );
            let rg = rg?;
            // A recovered database cannot go back (`sql-restoring` says so); the
            // row tells the mode, and a switch since is caught by the step itself.
            let (s, source) = secondary_state(client, target, reported, |_| true).await?;
            let mark = rg
                .pointer(&format!("/tags/{ACTIVATION_TAG}"))
                .and_then(Value::as_str)
                .unwrap_or("standby")
                .to_string();
            let detail = format!(
                "tenant {mark}; database {} ({}), read from {source}",
                s.state, s.mode
            );
            seen = Some(s);
            // While it returns to standby the tenant still counts as in use:
            // an apply must not act on it halfway.
            retag(client, &target.rg, |t| {
                t.insert(ACTIVATION_TAG.into(), json!("deactivating"));
            })
            .await?;
            Ok(detail)
        })
        .await;
    let mut errors = Vec::new();
    if let Err(e) = pre {
        r.skip(&DEACTIVATE_STEPS[1..]);
        return finish_run("deactivate", target, opts, r, Err(e), seen, &[]);
    }
    let recovered = seen.as_ref().is_some_and(|s| s.mode == "recovery");
    let slowest = std::sync::atomic::AtomicU64::new(0);
    let switched = std::sync::Mutex::new(None::<SqlState>);
    let want_state = SqlState::expected_state(target.idle_mode);
    let (sql_res, fe_res) = r
        .pair(
            ("sql-restoring", async {
                if recovered {
                    return Err(StepError::Recovered);
                }
                let s = set_sql_mode(client, &target.sql_vm, target.idle_mode).await?;
                *switched.lock().expect("read back") = Some(s);
                Ok(format!(
                    "database RESTORE WITH {}; log restores resume",
                    target.idle_mode.to_uppercase()
                ))
            }),
            (
                "deallocate-frontends",
                power_all(
                    client,
                    &target.frontends,
                    "deallocate",
                    &slowest,
                    &Default::default(),
                ),
            ),
        )
        .await;
    r.operation_time("deallocate-frontends", slowest.into_inner());
    errors.extend(sql_res.err());
    errors.extend(fe_res.err());
    if let Err(e) = r
        .step(
            "close-access",
            set_access(client, &target.access_nsg, "Deny"),
        )
        .await
    {
        errors.push(e);
    }
    let unmark = r
        .step("mark-standby", async {
            retag(client, &target.rg, |t| {
                t.remove(ACTIVATION_TAG);
                t.remove(ACTIVATED_AT_TAG);
                t.remove(REASON_TAG);
                if let Some(d) = last_drill {
                    t.insert(LAST_DRILL_TAG.into(), json!(d));
                }
            })
            .await?;
            Ok("STANDBY".to_string())
        })
        .await;
    errors.extend(unmark.err());
    let read_back = switched.into_inner().expect("read back");
    let probe = r
        .step("health-probe", async {
            all_in(client, &target.frontends, "deallocated").await?;
            // The switch read its result back; without one, ask the server.
            let s = match read_back {
                Some(s) => s,
                None => sql_state(client, &target.sql_vm).await?,
            };
            if s.state != want_state {
                return Err(StepError::Database {
                    state: s.state,
                    mode: s.mode,
                    want: want_state,
                });
            }
            let access = access_is(client, &target.access_nsg).await?;
            if access != "Deny" {
                return Err(StepError::AccessNotClosed { access });
            }
            Ok(format!(
                "front-ends deallocated, database {want_state} ({}), access closed",
                s.mode
            ))
        })
        .await;
    errors.extend(probe.err());
    let result = match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(StepError::Several(errors)),
    };
    finish_run(
        "deactivate",
        target,
        opts,
        r,
        result,
        seen,
        &["sql-restoring", "deallocate-frontends"],
    )
}

/// A drill: activate (marked as a drill), verify, deactivate. The activation's
/// RTO is the drill's result; the last drill is recorded on the tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drill {
    pub tenant: String,
    pub reason: Option<String>,
    pub started_at: String,
    pub activation: Run,
    pub deactivation: Option<Run>,
    /// `passed` or `failed`.
    pub outcome: String,
    pub rto_ms: u64,
    pub modelled_rto_seconds: f64,
}

pub async fn drill(
    client: &ArmClient,
    target: &Target,
    reason: Option<String>,
    force: bool,
    emit: &impl Fn(DapEvent),
) -> Drill {
    let started_at = lifeboat_core::clock::stamp();
    let opts = Options {
        reason: reason.clone(),
        force,
        read_write: false,
        drill: true,
    };
    let activation = activate(client, target, &opts, emit).await;
    // A refused drill, or one whose preflight failed, changed nothing: nothing
    // to undo. A failed one is still recorded as the tenant's last drill.
    let changed_nothing = activation.outcome == "refused"
        || activation
            .steps
            .first()
            .is_some_and(|s| s.name == "preflight" && s.outcome != "ok");
    let deactivation = if changed_nothing {
        if activation.outcome != "refused" {
            let last = format!("{started_at} failed");
            let _ = retag(client, &target.rg, |t| {
                t.insert(LAST_DRILL_TAG.into(), json!(last));
            })
            .await;
        }
        None
    } else {
        let verdict = if activation.outcome == "succeeded" {
            "ok"
        } else {
            "failed"
        };
        let last = format!(
            "{started_at} rto={:.0}s {verdict}",
            activation.modelled_rto_seconds
        );
        Some(deactivate(client, target, &opts, Some(last), emit).await)
    };
    let passed = activation.outcome == "succeeded"
        && deactivation
            .as_ref()
            .is_some_and(|d| d.outcome == "succeeded");
    Drill {
        tenant: target.tenant.clone(),
        reason,
        started_at,
        rto_ms: activation.rto_ms,
        modelled_rto_seconds: activation.modelled_rto_seconds,
        activation,
        deactivation,
        outcome: if passed { "passed" } else { "failed" }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_time_from_log_shipping_file_names() {
        let t = backup_time("HIX_20261124003000.trn").unwrap();
        assert_eq!(t.to_string(), "2026-11-24T00:30:00Z");
        assert!(backup_time("HIX_2026.trn").is_none());
        assert!(backup_time("HIX_20261124003000.bak").is_none());
    }

    #[test]
    fn rpo_is_the_age_of_the_newest_backup_held() {
        let row: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "last_copied_file": "HIX_20261124003000.trn",
            "last_restored_file": "HIX_20261124000000.trn",
            "state_desc": "RESTORING", "restore_mode": "norecovery",
            "now_utc": "2026-11-24T00:34:10Z"}))
        .unwrap();
        let s = SqlState::from_row(&row).unwrap();
        assert_eq!(s.rpo_seconds, Some(250));
        assert_eq!(s.restore_lag_seconds, Some(2050));
        assert!(s.rpo_within(5) && !s.rpo_within(4));
        let none: serde_json::Map<String, Value> =
            serde_json::from_value(json!({"now_utc": "2026-11-24T00:34:10Z"})).unwrap();
        assert!(!SqlState::from_row(&none).unwrap().rpo_within(1440));
    }

    #[test]
    fn critical_path_takes_the_longest_parallel_branch() {
        let st = |n: &str, d| Step {
            name: n.into(),
            start_ms: 0,
            duration_ms: d + 7,
            operation_ms: d,
            outcome: "ok".into(),
            detail: String::new(),
        };
        let steps = [st("preflight", 10), st("a", 50), st("b", 80), st("c", 5)];
        assert_eq!(critical_path(&steps, &["a", "b"]), 95);
    }

    #[test]
    fn step_errors_say_refused_or_failed_and_read_as_before() {
        let rpo = StepError::RpoAboveTarget {
            rpo: "RPO 20m00s (target 15 min)".into(),
        };
        assert_eq!(rpo.outcome(), "refused");
        assert_eq!(
            rpo.to_string(),
            "RPO 20m00s (target 15 min); activating would lose more data than agreed. Re-run with --force to accept it"
        );
        let arm = StepError::Arm(ArmError::Api {
            method: "PUT".into(),
            target: "/subscriptions/s/resourceGroups/g".into(),
            status: 409,
            code: "Conflict".into(),
            message: "busy".into(),
        });
        assert_eq!(arm.outcome(), "failed");
        assert!(matches!(
            &arm,
            StepError::Arm(ArmError::Api { status: 409, .. })
        ));
        let several = StepError::Several(vec![
            StepError::Recovered,
            StepError::AccessNotClosed {
                access: "Allow".into(),
            },
        ]);
        assert_eq!(several.outcome(), "failed");
        assert!(
            several
                .to_string()
                .ends_with("; emergency access is Allow, not closed")
        );
        assert_eq!(
            StepError::Secondary(Box::new(StepError::Script {
                stderr: "Invoke-Sqlcmd: login failed".into()
            }))
            .to_string(),
            "reading the SQL secondary: Invoke-Sqlcmd: login failed"
        );
    }
}
