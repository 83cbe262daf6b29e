//! The guards: what a plan must pass before anything is written. Unwaived
//! policy errors are refused; capacity reductions need their flag; disruptive
//! tenant changes need the tenant's maintenance window (or `--outside-window`)
//! and are refused outright while the tenant is activated.
//!
//! Every refusal of a plan is reported together (a reviewer fixes them in one
//! round, not one per run). Pure: the clock and the project come in as values;
//! nothing here reads the cloud or prints.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use lifeboat_core::id::ResourceId;
use lifeboat_core::model::Project;
use lifeboat_core::plan::{Kept, Plan, window};

/// What the operator allowed on top of the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardOptions {
    /// `--allow-capacity-reduction`.
    pub allow_capacity_reduction: bool,
    /// `--outside-window`.
    pub outside_window: bool,
}

/// One reason a plan may not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An unwaived policy error on a resource (or layer) the plan changes.
    PolicyError {
        rule: String,
        /// The resource's display name, or `tenant X`.
        subject: String,
        message: String,
        location: String,
    },
    /// A change that lowers a guarded resource's capacity.
    CapacityReduction { description: String },
    /// Disruptive changes to a tenant whose emergency environment is in use.
    TenantActivated {
        tenant: String,
        changes: usize,
        example: String,
    },
    /// Disruptive changes to a tenant without a manifest (so without a window).
    NoWindow {
        tenant: String,
        changes: usize,
        example: String,
    },
    /// Disruptive changes outside the tenant's maintenance window.
    OutsideWindow {
        tenant: String,
        changes: usize,
        example: String,
        window: String,
        next_opens: String,
    },
    /// The tenant's window cannot be evaluated (unknown zone, bad day).
    BadWindow { tenant: String, reason: String },
    /// The plan adds more vCPUs to a VM family than its regional quota has free.
    Quota { description: String },
}

/// Every refusal of one plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refusals(pub Vec<Refusal>);

/// Check `plan` against the guards at time `now`.
pub fn check(
    project: &Project,
    plan: &Plan,
    opts: GuardOptions,
    now: Timestamp,
) -> Result<(), Refusals> {
    let mut refusals: Vec<Refusal> = plan
        .blocking_findings()
        .map(|f| Refusal::PolicyError {
            rule: f.rule.clone(),
            subject: f.resource.as_deref().map_or_else(
                || format!("tenant {}", f.tenant.as_deref().unwrap_or("shared")),
                |id| ResourceId::parse(id).map_or(id.to_string(), |i| i.display_name()),
            ),
            message: f.message.clone(),
            location: f.location.to_string(),
        })
        .collect();
    if !opts.allow_capacity_reduction {
        refusals.extend(
            plan.capacity_reductions
                .iter()
                .map(|c| Refusal::CapacityReduction {
                    description: c.describe(),
                }),
        );
    }
    refusals.extend(
        plan.quota
            .iter()
            .filter(|q| !q.fits())
            .map(|q| Refusal::Quota {
                description: q.describe(),
            }),
    );
    let mut by_tenant: BTreeMap<&str, Vec<&Kept>> = BTreeMap::new();
    for d in &plan.disruptions {
        by_tenant
            .entry(d.tenant.as_deref().unwrap_or("shared"))
            .or_default()
            .push(d);
    }
    for (tenant, ds) in by_tenant {
        let example = format!("{} {}", ds[0].id.display_name(), ds[0].reason);
        let (tenant, changes) = (tenant.to_string(), ds.len());
        if plan.activated.contains(&tenant) {
            refusals.push(Refusal::TenantActivated {
                tenant,
                changes,
                example,
            });
            continue;
        }
        if opts.outside_window {
            continue;
        }
        let Some(t) = project.tenant(&tenant) else {
            refusals.push(Refusal::NoWindow {
                tenant,
                changes,
                example,
            });
            continue;
        };
        let w = &t.maintenance_window;
        let state = match window::state(w, now) {
            Ok(s) => s,
            Err(reason) => {
                refusals.push(Refusal::BadWindow { tenant, reason });
                continue;
            }
        };
        if state.open_until.is_none() {
            let next_opens = jiff::tz::TimeZone::get(&w.timezone).map_or_else(
                |_| state.next_start.to_string(),
                |tz| {
                    state
                        .next_start
                        .to_zoned_datetime(tz)
                        .strftime("%A %Y-%m-%d %H:%M %Z")
                        .to_string()
                },
            );
            refusals.push(Refusal::OutsideWindow {
                tenant,
                changes,
                example,
                window: format!("{} {} {}, {} h", w.day, w.start, w.timezone, w.hours),
                next_opens,
            });
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Refusals(refusals))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PolicyError {
                rule,
                subject,
                message,
                location,
            } => write!(f, "{rule} on {subject}: {message} ({location})"),
            Refusal::CapacityReduction { description } => f.write_str(description),
            Refusal::TenantActivated {
                tenant,
                changes,
                example,
            } => write!(
                f,
                "tenant {tenant} is activated (an emergency is in progress): {changes} disruptive change(s) refused (e.g. {example}); deactivate it first"
            ),
            Refusal::NoWindow {
                tenant,
                changes,
                example,
            } => write!(
                f,
                "tenant {tenant} has no manifest, so no maintenance window: {changes} disruptive change(s) (e.g. {example}) need --outside-window"
            ),
            Refusal::OutsideWindow {
                tenant,
                changes,
                example,
                window,
                next_opens,
            } => write!(
                f,
                "tenant {tenant}: {changes} disruptive change(s) (e.g. {example}) wait for its maintenance window ({window}; next opens {next_opens}); or pass --outside-window"
            ),
            Refusal::BadWindow { tenant, reason } => {
                write!(f, "tenant {tenant}: its maintenance window: {reason}")
            }
            Refusal::Quota { description } => write!(
                f,
                "not enough vCPU quota: {description}; request a quota increase (Azure portal, Quotas) or plan fewer or smaller VMs"
            ),
        }
    }
}

/// Grouped by kind, each group with what to do about it.
impl fmt::Display for Refusals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy: Vec<String> = self
            .0
            .iter()
            .filter(|r| matches!(r, Refusal::PolicyError { .. }))
            .map(Refusal::to_string)
            .collect();
        let capacity: Vec<String> = self
            .0
            .iter()
            .filter(|r| matches!(r, Refusal::CapacityReduction { .. }))
            .map(Refusal::to_string)
            .collect();
        let mut parts = Vec::new();
        if !policy.is_empty() {
            parts.push(format!(
                "refusing a plan with {} unwaived policy error(s):\n  {}\nFix them, or add a waiver (exceptions: rule, reason, expires) to the manifest after review",
                policy.len(),
                policy.join("\n  ")
            ));
        }
        if !capacity.is_empty() {
            parts.push(format!(
                "refusing to lower capacity: {}. Check that the workload fits, then re-run with --allow-capacity-reduction",
                capacity.join("; ")
            ));
        }
        parts.extend(
            self.0
                .iter()
                .filter(|r| {
                    !matches!(
                        r,
                        Refusal::PolicyError { .. } | Refusal::CapacityReduction { .. }
                    )
                })
                .map(Refusal::to_string),
        );
        f.write_str(&parts.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_core::plan::capacity::{CapacityReduction, Figure};
    use lifeboat_core::policy::{Finding, Location, Severity, Waived};

    /// The example project at the repository root (cwz: Saturday 22:00, 6 h;
    /// mst: Sunday 02:00, 4 h; both Europe/Amsterdam).
    fn project() -> Project {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        lifeboat_core::manifest::load(&root).expect("the examples are valid")
    }

    fn id(s: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{s}"
        ))
        .unwrap()
    }

    fn kept(tenant: &str, what: &str) -> Kept {
        Kept {
            id: id(&format!(
                "lb-{tenant}/providers/Microsoft.Compute/virtualMachines/{what}"
            )),
            tenant: Some(tenant.into()),
            reason: "is replaced".into(),
        }
    }

    fn finding(waived: bool) -> Finding {
        let at = Location {
            file: "templates/tenant/network.yaml.tera".into(),
            line: 12,
            column: 5,
        };
        Finding {
            rule: "CIS-6.1".into(),
            title: "RDP from the internet".into(),
            severity: Severity::Error,
            resource: Some(
                id("lb-cwz/providers/Microsoft.Network/networkSecurityGroups/fe").to_string(),
            ),
            tenant: Some("cwz".into()),
            message: "port 3389 open to 0.0.0.0/0".into(),
            location: at.clone(),
            fix: "remove the rule".into(),
            waived: waived.then(|| Waived {
                reason: "reviewed".into(),
                expires: "2099-01-01".into(),
                location: at,
            }),
        }
    }

    fn reduction() -> CapacityReduction {
        CapacityReduction {
            id: id("lb-cwz/providers/Microsoft.Compute/virtualMachines/sql"),
            tenant: Some("cwz".into()),
            change: "Standard_E8ds_v5 -> Standard_E4ds_v5".into(),
            lower: vec![Figure {
                what: "vCPUs".into(),
                before: 8,
                after: 4,
            }],
        }
    }

    /// Wednesday noon in Amsterdam: outside every example window.
    fn wednesday() -> Timestamp {
        "2026-12-02T11:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_plan_without_concerns_passes() {
        let plan = Plan::default();
        assert_eq!(
            check(&project(), &plan, GuardOptions::default(), wednesday()),
            Ok(())
        );
    }

    #[test]
    fn every_refusal_is_reported_together() {
        let plan = Plan {
            findings: vec![finding(false), finding(true)],
            capacity_reductions: vec![reduction()],
            disruptions: vec![
                kept("mst", "fe-01"),
                kept("cwz", "fe-01"),
                kept("cwz", "fe-02"),
                kept("gone", "x"),
            ],
            activated: vec!["mst".into()],
            ..Plan::default()
        };
        let Err(Refusals(r)) = check(&project(), &plan, GuardOptions::default(), wednesday())
        else {
            panic!("refused");
        };
        // One policy error (the waived one does not count), the reduction, mst
        // activated, cwz outside its window (both changes counted), a tenant
        // without a manifest.
        assert_eq!(r.len(), 5, "{r:#?}");
        assert!(matches!(&r[0], Refusal::PolicyError { rule, .. } if rule == "CIS-6.1"));
        assert!(matches!(&r[1], Refusal::CapacityReduction { .. }));
        // Tenants in name order.
        assert!(
            matches!(&r[2], Refusal::OutsideWindow { tenant, changes: 2, next_opens, .. }
            if tenant == "cwz" && next_opens.starts_with("Saturday 2026-12-05 22:00"))
        );
        assert!(matches!(&r[3], Refusal::NoWindow { tenant, .. } if tenant == "gone"));
        assert!(
            matches!(&r[4], Refusal::TenantActivated { tenant, changes: 1, .. } if tenant == "mst")
        );
        let text = Refusals(r).to_string();
        for needle in [
            "refusing a plan with 1 unwaived policy error(s):\n  CIS-6.1 on ",
            "refusing to lower capacity: ",
            "--allow-capacity-reduction",
            "tenant mst is activated",
            "tenant cwz: 2 disruptive change(s)",
            "tenant gone has no manifest",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }

    #[test]
    fn flags_lift_their_own_guard_and_never_an_activated_tenant() {
        let plan = Plan {
            capacity_reductions: vec![reduction()],
            disruptions: vec![kept("cwz", "fe-01"), kept("mst", "fe-01")],
            activated: vec!["mst".into()],
            ..Plan::default()
        };
        let opts = GuardOptions {
            allow_capacity_reduction: true,
            outside_window: true,
        };
        let Err(Refusals(r)) = check(&project(), &plan, opts, wednesday()) else {
            panic!("mst is activated");
        };
        assert_eq!(r.len(), 1);
        assert!(matches!(&r[0], Refusal::TenantActivated { tenant, .. } if tenant == "mst"));
    }

    #[test]
    fn disruptions_pass_inside_the_window() {
        let plan = Plan {
            disruptions: vec![kept("cwz", "fe-01")],
            ..Plan::default()
        };
        // Saturday 23:30 in Amsterdam (UTC+1 in December): cwz's window is open.
        let saturday_night = "2026-12-05T22:30:00Z".parse().unwrap();
        assert_eq!(
            check(&project(), &plan, GuardOptions::default(), saturday_night),
            Ok(())
        );
        assert!(check(&project(), &plan, GuardOptions::default(), wednesday()).is_err());
    }
}
