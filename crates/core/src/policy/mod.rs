//! Policy findings: the CIS Microsoft Azure Foundations (v2.0.0) controls that apply
//! to a lifeboat estate, lifeboat's own no-single-point-of-failure rules, and the
//! tenants' waivers, evaluated on the rendered graph. Owns the rule catalogue and
//! the [`Finding`] value (rule, severity, resource, the template or manifest line
//! responsible, fix hint, waiver). Pure: it never reads files, never talks to a
//! cloud and never prints; `report` renders findings as text, JSON and SARIF.

mod locate;
mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::graph::{Graph, TemplateSet};
use crate::model::{At, Project};

pub use rules::RULES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One rule of the catalogue.
#[derive(Debug)]
pub struct Rule {
    /// `CIS-3.1` (the benchmark's recommendation number) or `LB-...`.
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    /// What to change to comply.
    pub fix: &'static str,
}

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// A file position a finding points at: the template line that sets (or should
/// set) the property, or the manifest field that drives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A waiver that covers a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waived {
    pub reason: String,
    pub expires: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    /// The resource that violates the rule (`None` for findings about a waiver).
    pub resource: Option<String>,
    pub tenant: Option<String>,
    pub message: String,
    pub location: Location,
    pub fix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waived>,
}

impl Finding {
    /// An error nobody waived: `check` exits 3 and `apply` refuses.
    pub fn is_blocking(&self) -> bool {
        self.severity == Severity::Error && self.waived.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub error: usize,
    pub warning: usize,
    pub note: usize,
    pub waived: usize,
}

pub fn summarize(findings: &[Finding]) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        if f.waived.is_some() {
            s.waived += 1;
            continue;
        }
        match f.severity {
            Severity::Error => s.error += 1,
            Severity::Warning => s.warning += 1,
            Severity::Note => s.note += 1,
        }
    }
    s
}

/// Evaluate every rule on `graph`, then apply the tenants' waivers as of `today`.
/// Sorted by tenant (shared first), rule and resource.
pub fn check(
    project: &Project,
    templates: &TemplateSet,
    graph: &Graph,
    today: jiff::civil::Date,
) -> Vec<Finding> {
    let mut locator = locate::Locator::new(project, templates);
    let mut findings = rules::evaluate(project, graph, &mut locator);
    apply_waivers(project, &mut findings, today, &locator);
    findings.sort_by(|a, b| {
        (&a.tenant, &a.rule, &a.resource, &a.message).cmp(&(
            &b.tenant,
            &b.rule,
            &b.resource,
            &b.message,
        ))
    });
    findings
}

/// A tenant's waiver covers its own resources' findings of that rule until (and
/// including) its expiry date; platform.yaml's cover the shared layer's. An expired waiver covers nothing and is itself an
/// error; one that matches nothing is a note, so stale waivers get cleaned up.
fn apply_waivers(
    project: &Project,
    findings: &mut Vec<Finding>,
    today: jiff::civil::Date,
    locator: &locate::Locator<'_>,
) {
    let mut extra = Vec::new();
    let owners = std::iter::once((None, &project.platform.exceptions)).chain(
        project
            .tenants
            .iter()
            .map(|t| (Some(t.id.value.as_str()), &t.exceptions)),
    );
    for (owner, waivers) in owners {
        for w in waivers {
            let at = locator.manifest(&w.rule);
            if w.expires.value < today {
                extra.push(waiver_finding(
                    "LB-WAIVER-EXPIRED",
                    owner,
                    format!(
                        "the waiver for {} expired on {} ({}); its findings count again",
                        w.rule.value, w.expires.value, w.reason
                    ),
                    locator.manifest(&w.expires),
                ));
                continue;
            }
            let waived = Waived {
                reason: w.reason.clone(),
                expires: w.expires.value.to_string(),
                location: at.clone(),
            };
            let mut used = false;
            for f in findings.iter_mut() {
                if f.rule == w.rule.value && f.tenant.as_deref() == owner {
                    f.waived.get_or_insert_with(|| waived.clone());
                    used = true;
                }
            }
            if !used {
                let known = if rule(&w.rule.value).is_some() {
                    "matches no finding"
                } else {
                    "names a rule lifeboat does not check"
                };
                extra.push(waiver_finding(
                    "LB-WAIVER-UNUSED",
                    owner,
                    format!(
                        "the waiver for {} ({}, until {}) {known}",
                        w.rule.value, w.reason, w.expires.value
                    ),
                    at,
                ));
            }
        }
    }
    findings.extend(extra);
}

fn waiver_finding(id: &str, owner: Option<&str>, message: String, location: Location) -> Finding {
    let r = rule(id).expect("waiver rules are in the catalogue");
    Finding {
        rule: r.id.into(),
        title: r.title.into(),
        severity: r.severity,
        resource: None,
        tenant: owner.map(str::to_string),
        message,
        location,
        fix: r.fix.into(),
        waived: None,
    }
}

/// Findings per tenant (`shared` for the shared layer), for reports.
pub fn by_tenant(findings: &[Finding]) -> BTreeMap<&str, Vec<&Finding>> {
    let mut m: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        m.entry(f.tenant.as_deref().unwrap_or("shared"))
            .or_default()
            .push(f);
    }
    m
}

/// The position of a manifest value.
pub(crate) fn manifest_location<T>(project: &Project, at: &At<T>) -> Location {
    let o = &at.origin;
    let file = o
        .file
        .strip_prefix(&project.root)
        .unwrap_or(&o.file)
        .display()
        .to_string();
    Location {
        file,
        line: o.line,
        column: o.column,
    }
}
