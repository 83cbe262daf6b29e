//! Fleet status per tenant: STANDBY or ACTIVE (and since when, why), the SQL
//! secondary's mode, last restored backup and RPO against target, the HiX image
//! the front-ends run against the declared hotfix, front-end power states, drift
//! (declared resources that differ), and the last drill with its RTO.
//!
//! Built from bulk reads only — the plan's Resource Graph state (pages of 1000
//! rows) and one Log Analytics query for the log-shipping monitor rows every SQL
//! VM reports — so its cost does not grow with per-tenant requests. [`collect`]
//! does the two reads (concurrently); [`build`] is pure; the CLI renders.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::dap::{ACTIVATED_AT_TAG, LAST_DRILL_TAG, REASON_TAG, SqlState, Target};
use lifeboat_core::model::Project;
use lifeboat_core::observed::PriorState;
use lifeboat_core::plan::{ACTIVATION_TAG, Action, Plan};

/// What `status` read: a row per tenant, and why the SQL columns are empty when
/// the Log Analytics query failed (the rest still shows: at 3 a.m. more than ever).
pub struct Reading {
    pub tenants: Vec<TenantStatus>,
    pub sql_unavailable: Option<crate::cloud::client::ArmError>,
    /// Why the roster columns are empty (Microsoft Graph could not be read).
    pub access_unavailable: Option<String>,
    /// Why no alerts are shown (Alerts Management could not be read).
    pub alerts_unavailable: Option<String>,
    /// The plan and prior state behind it (large: the caller decides when to free).
    pub plan: Plan,
    pub prior: PriorState,
}

/// Read the status of `tenants` (every tenant when empty): the plan's bulk state
/// read and, at the same time, the Log Analytics query for the SQL secondaries.
pub fn collect(
    ws: &crate::review::Workspace,
    tenants: &[String],
) -> Result<Reading, crate::review::ReviewError> {
    let tenants: Vec<String> = if tenants.is_empty() {
        ws.project
            .tenants
            .iter()
            .map(|t| t.id.value.clone())
            .collect()
    } else {
        tenants.to_vec()
    };
    let workspace = super::dap::log_workspace(&ws.project.platform);
    let s = &ws.session;
    let alerts_path = format!(
        "/subscriptions/{}/providers/Microsoft.AlertsManagement/alerts?monitorCondition=Fired",
        ws.project.platform.subscription_id
    );
    let (planned, rows, access, fired) = std::thread::scope(|scope| {
        // Fired alerts (Alerts Management), at the same time.
        let fired = scope.spawn(|| {
            s.rt.block_on(
                s.client
                    .list(&alerts_path, lifeboat_core::api::ALERTS_MANAGEMENT),
            )
        });
        let la = scope.spawn(|| {
            s.rt.block_on(s.client.log_query(&workspace, SHIPPING_QUERY))
        });
        // Who may log in, from Microsoft Graph, at the same time.
        let access = scope.spawn(|| {
            let ts: Vec<&lifeboat_core::model::Tenant> = tenants
                .iter()
                .filter_map(|t| ws.project.tenant(t))
                .collect();
            s.rt.block_on(super::roster::access_all(
                &s.graph,
                &ws.project.platform,
                &ts,
            ))
        });
        let planned = ws.plan_with_prior(crate::review::PlanRequest {
            tenants: &tenants,
            shared: false,
            refresh: crate::cloud::inventory::Refresh::Graph,
            allow_data_loss: &[],
            review: false,
        });
        (
            planned,
            la.join().expect("the query thread does not panic"),
            access.join().expect("the Graph thread does not panic"),
            fired.join().expect("the alerts thread does not panic"),
        )
    });
    let (plan, prior) = planned?;
    let (rows, sql_unavailable) = match rows {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let (access, access_unavailable) = match access {
        Ok(a) => (a, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let mut rows_by_tenant = build(&ws.project, &tenants, &plan, &prior, &rows);
    let (fired, alerts_unavailable) = match fired {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    for a in &fired {
        // The rule's resource group says whose alert it is.
        let rule = a
            .pointer("/properties/essentials/alertRule")
            .and_then(Value::as_str)
            .and_then(|r| lifeboat_core::id::ResourceId::parse(r).ok());
        let Some(rule) = rule else { continue };
        let p = &ws.project.platform;
        for t in &mut rows_by_tenant {
            let Some(tenant) = ws.project.tenant(&t.tenant) else {
                continue;
            };
            let rg = lifeboat_core::model::naming::TenantNames::derive(p, tenant).rg;
            if rule
                .resource_group()
                .is_some_and(|g| g.eq_ignore_ascii_case(&rg))
            {
                let prefix = format!("{}-{}-", p.prefix.value, t.tenant);
                let name = rule.name();
                t.alerts
                    .push(name.strip_prefix(&prefix).unwrap_or(name).to_string());
            }
        }
    }
    for t in &mut rows_by_tenant {
        t.alerts.sort();
        if let Some(a) = access.get(&t.tenant) {
            t.roster_members = a.members;
            t.mfa_policy = Some(a.mfa_policy.clone());
        }
    }
    Ok(Reading {
        tenants: rows_by_tenant,
        access_unavailable,
        alerts_unavailable,
        sql_unavailable,
        plan,
        prior,
    })
}

/// The query the status runs against the platform's Log Analytics workspace.
pub const SHIPPING_QUERY: &str =
    "LifeboatLogShipping_CL | summarize arg_max(TimeGenerated, *) by ResourceId";

#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub tenant: String,
    /// `STANDBY`, `ACTIVATING`, `ACTIVE`, `DEACTIVATING` or `NOT PROVISIONED`.
    pub state: String,
    pub activated_at: Option<String>,
    pub reason: Option<String>,
    pub sql: Option<SqlState>,
    pub rpo_target_seconds: i64,
    pub rpo_ok: bool,
    pub declared_image: String,
    /// Front-ends per image version they run.
    pub images: BTreeMap<String, usize>,
    pub frontends_declared: usize,
    /// Front-ends per power state (`running`, `deallocated`, ...).
    pub power: BTreeMap<String, usize>,
    /// While ACTIVE: the front-ends that are not running (an activation that
    /// could not allocate them, or one stopped since), with their state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortfall: Vec<String>,
    /// Existing resources whose declared properties differ (updates and replaces
    /// the plan would make).
    pub drift: usize,
    pub last_drill: Option<String>,
    pub last_drill_rto_seconds: Option<f64>,
    /// Whether the last drill passed (`None`: never drilled).
    pub last_drill_passed: Option<bool>,
    /// Enabled members of the emergency group (`None`: no group).
    pub roster_members: Option<usize>,
    /// The MFA Conditional Access policy over the group: `enabled`, `disabled`,
    /// `missing`, `not covering the group`.
    pub mfa_policy: Option<String>,
    /// Alert rules firing now (`rpo-over-target`, `shipping-stopped`,
    /// `sql-unavailable`).
    pub alerts: Vec<String>,
}

fn tag<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get("tags")?.get(name)?.as_str()
}

/// `<time> rto=<n>s <ok|failed>` -> n.
fn drill_rto(s: &str) -> Option<f64> {
    s.split_whitespace()
        .find_map(|w| w.strip_prefix("rto="))
        .and_then(|r| r.trim_end_matches('s').parse().ok())
}

pub fn build(
    project: &Project,
    tenants: &[String],
    plan: &Plan,
    prior: &PriorState,
    shipping: &[serde_json::Map<String, Value>],
) -> Vec<TenantStatus> {
    let p = &project.platform;
    let mut drift: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &plan.changes {
        if matches!(c.action, Action::Update | Action::Replace)
            && let Some(t) = &c.tenant
        {
            *drift.entry(t.as_str()).or_default() += 1;
        }
    }
    let by_vm: BTreeMap<String, &serde_json::Map<String, Value>> = shipping
        .iter()
        .filter_map(|row| Some((row.get("ResourceId")?.as_str()?.to_ascii_lowercase(), row)))
        .collect();
    let one = |t: &lifeboat_core::model::Tenant| {
        let target = Target::derive(p, t);
        let rg = prior.get(&target.rg);
        let mark = rg.and_then(|r| tag(&r.body, ACTIVATION_TAG));
        let state = match (rg, mark) {
            (None, _) => "NOT PROVISIONED",
            (_, Some("active")) => "ACTIVE",
            (_, Some("deactivating")) => "DEACTIVATING",
            (_, Some(_)) => "ACTIVATING",
            _ => "STANDBY",
        };
        let rg_tag = |n: &str| rg.and_then(|r| tag(&r.body, n)).map(str::to_string);
        let sql = by_vm
            .get(target.sql_vm.key())
            .and_then(|row| SqlState::from_row(row));
        let target_s = i64::from(t.sql.rpo_target_minutes) * 60;
        let mut images: BTreeMap<String, usize> = BTreeMap::new();
        let mut power: BTreeMap<String, usize> = BTreeMap::new();
        let mut shortfall = Vec::new();
        for fe in &target.frontends {
            let Some(o) = prior.get(fe) else {
                if state == "ACTIVE" {
                    shortfall.push(format!("{} (not built)", fe.name()));
                }
                continue;
            };
            let version = o
                .body
                .pointer("/properties/storageProfile/imageReference/id")
                .and_then(Value::as_str)
                .and_then(|i| i.rsplit('/').next())
                .unwrap_or("?")
                .to_string();
            *images.entry(version).or_default() += 1;
            let ps = o
                .body
                .pointer("/properties/extended/instanceView/powerState/code")
                .and_then(Value::as_str)
                .and_then(|c| c.strip_prefix("PowerState/"))
                .unwrap_or("unknown")
                .to_string();
            if state == "ACTIVE" && ps != "running" {
                shortfall.push(format!("{} ({ps})", fe.name()));
            }
            *power.entry(ps).or_default() += 1;
        }
        let last_drill = rg_tag(LAST_DRILL_TAG);
        TenantStatus {
            tenant: t.id.value.clone(),
            state: state.into(),
            activated_at: rg_tag(ACTIVATED_AT_TAG),
            reason: rg_tag(REASON_TAG),
            rpo_ok: sql
                .as_ref()
                .is_some_and(|s| s.rpo_within(t.sql.rpo_target_minutes)),
            sql,
            rpo_target_seconds: target_s,
            declared_image: t.hix.image_version(),
            images,
            frontends_declared: target.frontends.len(),
            power,
            shortfall,
            drift: drift.get(t.id.value.as_str()).copied().unwrap_or(0),
            last_drill_rto_seconds: last_drill.as_deref().and_then(drill_rto),
            last_drill_passed: last_drill.as_deref().map(|d| d.ends_with(" ok")),
            // Filled in by `collect` from Microsoft Graph.
            roster_members: None,
            mfa_policy: None,
            alerts: Vec::new(),
            last_drill,
        }
    };
    // Deriving a tenant's names (hashes, checks) is most of this: a fleet's 200
    // tenants are split over the cores, in order.
    let selected: Vec<&lifeboat_core::model::Tenant> =
        tenants.iter().filter_map(|id| project.tenant(id)).collect();
    lifeboat_core::par::map_in_order(&selected, |_, t| one(t))
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_drill_tag_carries_the_rto() {
        assert_eq!(
            super::drill_rto("2026-11-24T00:43:28Z rto=127s ok"),
            Some(127.0)
        );
        assert_eq!(super::drill_rto("garbage"), None);
    }
}
