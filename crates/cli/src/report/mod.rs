//! Stage 6: renders plans (and validation results) for people and machines:
//! Terraform-style text, the JSON document of DESIGN.md, and Markdown for a pull
//! request comment. Pure formatting: takes values, returns strings, prints nothing.

pub mod dap;
pub mod findings;
pub mod roster;
pub mod status;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use lifeboat_core::plan::{Action, Change, Plan};

/// `plan --format json`: exactly the documented shape.
/// Written field by field from the plan (a fleet's plan is 15,000 changes: no
/// intermediate JSON tree of them).
pub fn plan_json(plan: &Plan) -> impl serde::Serialize + '_ {
    #[derive(serde::Serialize)]
    struct ChangeRow<'a> {
        id: &'a lifeboat_core::id::ResourceId,
        #[serde(rename = "type")]
        resource_type: &'a str,
        tenant: &'a Option<String>,
        layer: lifeboat_core::id::Layer,
        action: Action,
        diff: &'a [lifeboat_core::plan::DiffEntry],
    }
    #[derive(serde::Serialize)]
    struct PlanJson<'a, C: serde::Serialize> {
        format_version: &'a str,
        summary: &'a lifeboat_core::plan::Summary,
        changes: C,
        requests: &'a lifeboat_core::observed::Requests,
        kept: &'a [lifeboat_core::plan::Kept],
        deferred: &'a [lifeboat_core::plan::Kept],
        capacity_reductions: &'a [lifeboat_core::plan::capacity::CapacityReduction],
        quota: &'a [lifeboat_core::plan::quota::QuotaNeed],
        disruptions: &'a [lifeboat_core::plan::Kept],
        activated: &'a [String],
        shared_dependents: &'a BTreeMap<String, Vec<String>>,
        policy: lifeboat_core::policy::Summary,
        findings: &'a [lifeboat_core::policy::Finding],
        cost: &'a Option<lifeboat_core::cost::CostEstimate>,
    }
    struct Rows<'a>(&'a [Change]);
    impl serde::Serialize for Rows<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|c| ChangeRow {
                id: &c.id,
                resource_type: &c.resource_type,
                tenant: &c.tenant,
                layer: c.layer,
                action: c.action,
                diff: &c.diff,
            }))
        }
    }
    PlanJson {
        format_version: &plan.format_version,
        summary: &plan.summary,
        changes: Rows(&plan.changes),
        requests: &plan.requests,
        kept: &plan.kept,
        deferred: &plan.deferred,
        capacity_reductions: &plan.capacity_reductions,
        quota: &plan.quota,
        disruptions: &plan.disruptions,
        activated: &plan.activated,
        shared_dependents: &plan.shared_dependents,
        policy: lifeboat_core::policy::summarize(&plan.findings),
        findings: &plan.findings,
        cost: &plan.cost,
    }
}

/// The cost rows as aligned text (or Markdown table rows).
fn cost_rows(c: &lifeboat_core::cost::CostEstimate, markdown: bool) -> String {
    let mut out = String::new();
    let cur = &c.currency;
    if markdown {
        let _ = writeln!(
            out,
            "**Cost** ({cur}, prices of {}):\n\n| layer | idle per month | activated per hour | change idle/month | change activated/hour |\n|---|---:|---:|---:|---:|",
            c.prices_date
        );
    } else {
        let _ = writeln!(
            out,
            "Cost ({cur}, prices of {}; usage-based storage, logs and egress not included):",
            c.prices_date
        );
        let _ = writeln!(
            out,
            "  {:<10} {:>16} {:>20} {:>18} {:>22}",
            "layer",
            "idle per month",
            "activated per hour",
            "change idle/month",
            "change activated/hour"
        );
    }
    let mut notes = String::new();
    for t in &c.tenants {
        let layer = t.tenant.as_deref().unwrap_or("shared");
        let (idle, active) = (t.declared.idle_monthly, t.declared.active_hourly);
        let (di, da) = (t.delta_idle_monthly, t.delta_active_hourly);
        if markdown {
            let _ = writeln!(
                out,
                "| {layer} | {idle:.2} | {active:.2} | {di:+.2} | {da:+.2} |"
            );
        } else {
            let _ = writeln!(
                out,
                "  {layer:<10} {idle:>16.2} {active:>20.2} {di:>+18.2} {da:>+22.2}"
            );
        }
        if !t.unpriced.is_empty() {
            let _ = writeln!(notes, "  ({layer}: no price for {})", t.unpriced.join(", "));
        }
    }
    if markdown && !notes.is_empty() {
        out.push('\n');
    }
    out.push_str(&notes);
    out
}

/// Changes grouped by section title, shared layer first, then tenants by id.
fn sections(plan: &Plan) -> BTreeMap<(u8, String), Vec<&Change>> {
    let mut out: BTreeMap<(u8, String), Vec<&Change>> = BTreeMap::new();
    for c in &plan.changes {
        let key = match &c.tenant {
            None => (0, "shared layer".to_string()),
            Some(t) => (1, format!("tenant {t}")),
        };
        out.entry(key).or_default().push(c);
    }
    out
}

fn short(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 120 {
                format!("{}…", &s[..s.floor_char_boundary(117)])
            } else {
                s
            }
        }
    }
}

fn resource_line(out: &mut String, c: &Change) {
    let _ = write!(
        out,
        "  {:<3} {}  {}",
        c.action.symbol(),
        c.resource_type,
        c.id.display_name()
    );
    if let Some(r) = &c.reason
        && c.action != Action::NoOp
    {
        let _ = write!(out, "  ({r})");
    }
    out.push('\n');
    for d in &c.diff {
        let marker = if d.forces_replacement {
            "  # forces replacement"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "        ~ {}: {} -> {}{marker}",
            d.path,
            short(&d.before),
            short(&d.after)
        );
    }
}

pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    if !s.has_changes() && !plan.deferred.is_empty() {
        return format!(
            "Nothing to apply now, but not done: {} resource(s) wait (see ⧗ above); {} up to date.",
            plan.deferred.len(),
            s.no_op
        );
    }
    if !s.has_changes() {
        return format!("No changes. {} resources are up to date.", s.no_op);
    }
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.no_op
    )
}

fn section_counts(changes: &[&Change]) -> String {
    let mut counts: BTreeMap<Action, usize> = BTreeMap::new();
    for c in changes {
        *counts.entry(c.action).or_default() += 1;
    }
    let parts: Vec<String> = [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
    ]
    .iter()
    .filter_map(|a| counts.get(a).map(|n| format!("{n} to {}", a.as_str())))
    .collect();
    if parts.is_empty() {
        "no changes".into()
    } else {
        parts.join(", ")
    }
}

/// Terraform-style text.
pub fn plan_human(plan: &Plan) -> String {
    let mut out = String::new();
    for ((_, title), changes) in sections(plan) {
        let changed: Vec<&Change> = changes
            .iter()
            .copied()
            .filter(|c| c.action != Action::NoOp)
            .collect();
        let _ = writeln!(out, "# {title}: {}", section_counts(&changes));
        for c in &changed {
            resource_line(&mut out, c);
        }
        out.push('\n');
    }
    if !plan.activated.is_empty() {
        let _ = writeln!(
            out,
            "  ! activated now (an emergency is in progress; disruptive changes refused): {}",
            plan.activated.join(", ")
        );
    }
    for k in &plan.kept {
        let _ = writeln!(out, "  ! kept {}  ({})", k.id, k.reason);
    }
    for c in &plan.capacity_reductions {
        let _ = writeln!(
            out,
            "  ! capacity reduction {}; apply needs --allow-capacity-reduction",
            c.describe()
        );
    }
    for q in &plan.quota {
        let mark = if q.fits() { " " } else { "!" };
        let verdict = if q.fits() {
            ""
        } else {
            "; does not fit: apply refuses it"
        };
        let _ = writeln!(out, "  {mark} vCPU quota {}{verdict}", q.describe());
    }
    let mut disruptive: BTreeMap<&str, Vec<&lifeboat_core::plan::Kept>> = BTreeMap::new();
    for d in &plan.disruptions {
        disruptive
            .entry(d.tenant.as_deref().unwrap_or("shared"))
            .or_default()
            .push(d);
    }
    for (tenant, ds) in disruptive {
        let when = if plan.activated.iter().any(|a| a == tenant) {
            "refused while the tenant is activated".to_string()
        } else {
            "applied only inside the tenant's maintenance window (or with --outside-window)"
                .to_string()
        };
        let _ = writeln!(
            out,
            "  ! {tenant}: {} disruptive change(s): {when}",
            ds.len()
        );
        // Each one named: a reviewer approves changes, not counts.
        for d in ds {
            let _ = writeln!(out, "      {} {}", d.id.display_name(), d.reason);
        }
    }
    for (tenant, reason, ids) in deferred_groups(plan) {
        let _ = writeln!(
            out,
            "  ⧗ {tenant}: {} resource(s) wait: {reason}",
            ids.len()
        );
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(
            out,
            "\nPolicy findings on the changed resources ({}):",
            findings::summary_text(&plan.findings)
        );
        for f in &plan.findings {
            out.push_str(&findings::finding_human(f));
        }
        if plan.blocking_findings().next().is_some() {
            let _ = writeln!(
                out,
                "apply refuses this plan until the errors are fixed or waived."
            );
        }
        out.push('\n');
    }
    if let Some(c) = &plan.cost {
        out.push_str(&cost_rows(c, false));
        out.push('\n');
    }
    if !plan.shared_dependents.is_empty() {
        let _ = writeln!(
            out,
            "Shared resources that change, and the tenants that depend on them:"
        );
        for (id, tenants) in &plan.shared_dependents {
            let _ = writeln!(out, "  {id}: {}", tenants.join(", "));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    let _ = writeln!(
        out,
        "Requests: {} read to plan ({} Resource Graph page(s), {} list(s), {} GET(s)), about {} writes to apply.",
        plan.requests.read,
        plan.requests.graph_pages,
        plan.requests.lists,
        plan.requests.gets,
        plan.requests.write
    );
    out
}

/// Markdown for a pull-request comment: summary table, one collapsible section per tenant.
pub fn plan_markdown(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut out = String::from("### lifeboat plan\n\n");
    let _ = writeln!(
        out,
        "| create | update | replace | delete | unchanged |\n|---:|---:|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |\n",
        s.create, s.update, s.replace, s.delete, s.no_op
    );
    if s.replace + s.delete > 0 {
        let _ = writeln!(
            out,
            "> **Warning:** this plan replaces or deletes resources. Review the sections below.\n"
        );
    }
    for ((_, title), changes) in sections(plan) {
        let changed: Vec<&Change> = changes
            .iter()
            .copied()
            .filter(|c| c.action != Action::NoOp)
            .collect();
        let open = if changed
            .iter()
            .any(|c| matches!(c.action, Action::Replace | Action::Delete))
        {
            " open"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<details{open}><summary><b>{title}</b>: {}</summary>\n",
            section_counts(&changes)
        );
        if changed.is_empty() {
            out.push_str("No changes.\n\n");
        } else {
            out.push_str("```diff\n");
            for c in &changed {
                let mut line = String::new();
                resource_line(&mut line, c);
                // Keep `diff` highlighting: lines start with + - ~ (replace shown as -/+ ).
                out.push_str(&line.replacen("  -/+", "! -/+", 1));
            }
            out.push_str("```\n\n");
        }
        out.push_str("</details>\n\n");
    }
    if !plan.kept.is_empty() {
        out.push_str("**Kept (protected):**\n\n");
        for k in &plan.kept {
            let _ = writeln!(out, "- `{}`: {}", k.id, md_text(&k.reason));
        }
        out.push('\n');
    }
    if !plan.capacity_reductions.is_empty() {
        out.push_str("**Capacity reductions** (apply needs `--allow-capacity-reduction`):\n\n");
        for c in &plan.capacity_reductions {
            let _ = writeln!(out, "- {}", md_text(&c.describe()));
        }
        out.push('\n');
    }
    if !plan.activated.is_empty() {
        let _ = writeln!(
            out,
            "**Activated now** (an emergency is in progress; their disruptive changes are refused): {}\n",
            md_text(&plan.activated.join(", "))
        );
    }
    if !plan.shared_dependents.is_empty() {
        out.push_str("**Shared resources that change**, and the tenants that depend on them:\n\n");
        for (id, tenants) in &plan.shared_dependents {
            let _ = writeln!(out, "- {}: {}", md_code(id), md_text(&tenants.join(", ")));
        }
        out.push('\n');
    }
    if !plan.disruptions.is_empty() {
        out.push_str("**Disruptive changes** (applied only inside the tenant's maintenance window, or with `--outside-window`; refused while the tenant is activated):\n\n");
        for d in &plan.disruptions {
            let tenant = d.tenant.as_deref().unwrap_or("shared");
            let activated = if plan.activated.iter().any(|a| a == tenant) {
                " **(activated: refused)**"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "- {}: {} {}{activated}",
                md_text(tenant),
                md_code(&d.id.display_name()),
                md_text(&d.reason)
            );
        }
        out.push('\n');
    }
    if !plan.quota.is_empty() {
        out.push_str("**vCPU quota** (Azure counts deallocated VMs too):\n\n");
        for q in &plan.quota {
            let verdict = if q.fits() {
                ""
            } else {
                " **does not fit: apply refuses it**"
            };
            let _ = writeln!(out, "- {}{verdict}", md_text(&q.describe()));
        }
        out.push('\n');
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(
            out,
            "**Policy findings** on the changed resources: {}\n",
            findings::summary_text(&plan.findings)
        );
        for f in &plan.findings {
            let waived = f
                .waived
                .as_ref()
                .map(|w| {
                    format!(
                        " — waived until {}: {}",
                        md_text(&w.expires),
                        md_text(&w.reason)
                    )
                })
                .unwrap_or_default();
            let label = if f.waived.is_some() {
                format!("waived {}", f.severity.as_str())
            } else {
                f.severity.as_str().to_string()
            };
            let _ = writeln!(
                out,
                "- **{}** `{}` {}: {} ({}){waived}",
                label,
                f.rule,
                md_text(f.resource.as_deref().unwrap_or("-")),
                md_text(&f.message),
                md_code(&f.location.to_string())
            );
        }
        out.push('\n');
    }
    if let Some(c) = &plan.cost {
        out.push_str(&cost_rows(c, true));
        out.push('\n');
    }
    let groups = deferred_groups(plan);
    if !groups.is_empty() {
        out.push_str("**Waiting:**\n\n");
        for (tenant, reason, ids) in groups {
            let _ = writeln!(
                out,
                "- {}: {} resource(s): {}",
                md_text(&tenant),
                ids.len(),
                md_text(&reason)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}

/// Free text in Markdown (a waiver's reason, a finding's message): HTML and
/// Markdown syntax shown literally, on one line, so no text can close the
/// plan's `<details>`, open an HTML comment that hides the rest of the plan,
/// or forge a heading or a link in the pull request comment.
pub fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span that no text can break out of.
pub fn md_code(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c == '`' || c.is_control() { ' ' } else { c })
        .collect();
    format!("`{clean}`")
}

/// Deferred changes grouped by tenant and reason (a tenant's front-ends share one).
fn deferred_groups(plan: &Plan) -> Vec<(String, String, Vec<String>)> {
    waiting_groups(&plan.deferred)
}

/// What waits, by tenant and reason.
fn waiting_groups(waiting: &[lifeboat_core::plan::Kept]) -> Vec<(String, String, Vec<String>)> {
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in waiting {
        groups
            .entry((
                d.tenant.clone().unwrap_or_else(|| "shared".into()),
                d.reason.clone(),
            ))
            .or_default()
            .push(d.id.display_name());
    }
    groups
        .into_iter()
        .map(|((t, r), ids)| (t, r, ids))
        .collect()
}

/// The end of an apply (or a destroy, `verb`), for people: outcome, timings,
/// requests and what failed.
pub fn apply_human(verb: &str, r: &lifeboat_engine::apply::ApplyReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let q = &r.requests;
    let _ = writeln!(
        s,
        "\n{verb} {}: {} succeeded, {} failed, {} skipped in {:.1} s (critical path {:.1} s, up to {} in flight).",
        r.outcome,
        r.summary.succeeded,
        r.summary.failed,
        r.summary.skipped,
        r.makespan_ms as f64 / 1000.0,
        r.critical_path_ms as f64 / 1000.0,
        r.max_in_flight
    );
    let _ = writeln!(
        s,
        "Requests: {} GET, {} PUT, {} DELETE, {} POST, {} polls, {} queries; {} throttled, {} retried.",
        q.get, q.put, q.delete, q.post, q.poll, q.query, r.throttled, r.retries
    );
    // Not done yet, so never silently "succeeded": what still waits, and why.
    for (tenant, reason, ids) in waiting_groups(&r.waiting) {
        let _ = writeln!(
            s,
            "  ⧗ {tenant}: {} resource(s) still wait: {reason}",
            ids.len()
        );
    }
    for o in r
        .resources
        .iter()
        .filter(|o| o.outcome != lifeboat_engine::apply::Outcome::Succeeded)
    {
        let _ = writeln!(
            s,
            "  {:?} {} {}: {}",
            o.outcome,
            o.action.as_str(),
            o.id,
            o.error.as_deref().unwrap_or("")
        );
    }
    if r.outcome != "succeeded" {
        let _ = writeln!(
            s,
            "Re-run `lifeboat apply` to continue: finished changes are not repeated."
        );
    }
    s
}

/// Drift, for people: each drifted resource and property with expected and actual.
pub fn drift_human(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let drifted: Vec<&lifeboat_core::plan::Change> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Update | Action::Replace))
        .collect();
    if drifted.is_empty() {
        let _ = writeln!(
            s,
            "No drift: every managed resource matches its declared properties."
        );
        return s;
    }
    for c in &drifted {
        let _ = writeln!(
            s,
            "~ {} ({})",
            c.id,
            c.tenant.as_deref().unwrap_or("shared")
        );
        for d in &c.diff {
            let show =
                |v: &Option<Value>| v.as_ref().map_or("(absent)".to_string(), |v| v.to_string());
            let _ = writeln!(
                s,
                "    {}: expected {}, actual {}",
                d.path,
                show(&d.after),
                show(&d.before)
            );
        }
    }
    let _ = writeln!(
        s,
        "\n{} resource(s) drifted. `lifeboat apply` puts them back.",
        drifted.len()
    );
    s
}

/// Drift as JSON: `{"drifted": [{"id","tenant","properties":[{"path","expected","actual"}]}], "missing": N}`.
pub fn drift_json(plan: &Plan) -> Value {
    let drifted: Vec<Value> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Update | Action::Replace))
        .map(|c| {
            json!({"id": c.id.as_str(), "tenant": c.tenant, "type": c.resource_type,
                "properties": c.diff.iter().map(|d| json!({"path": d.path, "expected": d.after, "actual": d.before})).collect::<Vec<_>>()})
        })
        .collect();
    let missing = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .count();
    json!({"drifted": drifted, "missing": missing, "requests": {"read": plan.requests.read}})
}

#[cfg(test)]
mod tests {
    use super::{md_code, md_text};

    /// A waiver reason written to hide the rest of the plan in the pull request
    /// comment, or to forge a link, is shown as text.
    #[test]
    fn hostile_text_cannot_shape_the_markdown_plan() {
        let hostile = "ok</summary></details><!-- \n# Approved [click](https://evil.example) `x`";
        let shown = md_text(hostile);
        for raw in ["<", ">", "\n", "](", "`"] {
            assert!(
                !shown.contains(raw) || shown.contains(&format!("\\{raw}")),
                "{raw:?} survives in {shown}"
            );
        }
        assert!(!shown.contains('<') && !shown.contains('\n'), "{shown}");
        assert!(shown.contains("&lt;/details&gt;&lt;\\!-- "), "{shown}");
        assert!(
            shown.contains("\\[click\\]\\(https://evil.example\\)"),
            "{shown}"
        );
        assert_eq!(md_code("a`b\nc"), "`a b c`");
    }
}
