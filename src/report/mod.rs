//! Stage 6: renders plans (and validation results) for people and machines:
//! Terraform-style text, the JSON document of DESIGN.md, and Markdown for a pull
//! request comment. Pure formatting: takes values, returns strings, prints nothing.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::plan::{Action, Change, Plan};

/// `plan --format json`: exactly the documented shape.
pub fn plan_json(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "type": c.resource_type,
                "tenant": c.tenant,
                "layer": c.layer,
                "action": c.action,
                "diff": c.diff,
            })
        })
        .collect();
    json!({
        "format_version": plan.format_version,
        "summary": plan.summary,
        "changes": changes,
        "requests": plan.requests,
        "kept": plan.kept,
        "shared_dependents": plan.shared_dependents,
    })
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
    for k in &plan.kept {
        let _ = writeln!(out, "  ! kept {}  ({})", k.id, k.reason);
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
        "Requests: {} read to plan, about {} writes to apply.",
        plan.requests.read, plan.requests.write
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
            let _ = writeln!(out, "- `{}`: {}", k.id, k.reason);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    out
}
