//! Policy findings for people (text, Markdown lines) and machines (JSON, and SARIF
//! 2.1.0 for Azure DevOps' Scans tab and GitHub code scanning). Pure formatting.

use std::fmt::Write;

use serde_json::{Value, json};

use lifeboat_core::policy::{self, Finding, RULES, Severity};

/// One finding as two or three indented lines.
pub fn finding_human(f: &Finding) -> String {
    let what = f
        .resource
        .as_deref()
        .and_then(|id| lifeboat_core::id::ResourceId::parse(id).ok())
        .map(|id| format!("{} ({})", id.display_name(), id.resource_type()))
        .unwrap_or_else(|| format!("tenant {}", f.tenant.as_deref().unwrap_or("shared")));
    // A waived finding is counted as waived, so it is labelled so (its
    // severity stays in the text).
    let label = match &f.waived {
        Some(_) => "waived".to_string(),
        None => f.severity.as_str().to_string(),
    };
    let mut s = format!(
        "{:<7} {} {}: {}: {}\n        at {} — fix: {}\n",
        label, f.rule, f.title, what, f.message, f.location, f.fix
    );
    if let Some(w) = &f.waived {
        let _ = writeln!(
            s,
            "        {} waived until {} ({}): {}",
            f.severity.as_str(),
            w.expires,
            w.location,
            w.reason
        );
    }
    s
}

pub fn summary_text(findings: &[Finding]) -> String {
    let s = policy::summarize(findings);
    format!(
        "{} error(s), {} warning(s), {} note(s), {} waived",
        s.error, s.warning, s.note, s.waived
    )
}

/// `check`: every finding, then the summary; waived ones last.
pub fn check_human(findings: &[Finding], resources: usize) -> String {
    let mut out = String::new();
    let (waived, open): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.waived.is_some());
    for f in open.iter().chain(waived.iter()) {
        out.push_str(&finding_human(f));
    }
    let _ = writeln!(
        out,
        "Check: {} rules on {resources} resources: {}.",
        RULES.len(),
        summary_text(findings)
    );
    out
}

pub fn check_json(findings: &[Finding], resources: usize) -> Value {
    json!({
        "format_version": "1",
        "rules": RULES.len(),
        "resources": resources,
        "summary": policy::summarize(findings),
        "findings": findings,
    })
}

fn level(s: Severity) -> &'static str {
    s.as_str()
}

/// SARIF 2.1.0: one run, the whole rule catalogue, one result per finding with the
/// template or manifest line as its physical location and the ARM id as its logical
/// location; waived findings carry an accepted external suppression.
pub fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            let mut tags = vec!["security"];
            if r.id.starts_with("CIS-") {
                tags.push("CIS Microsoft Azure Foundations");
            }
            json!({
                "id": r.id,
                "name": r.id.replace(['-', '.'], ""),
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": r.title},
                "help": {"text": format!("Fix: {}", r.fix)},
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {"tags": tags},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": {"uri": f.location.file, "uriBaseId": "PROJECTROOT"},
                    "region": {"startLine": f.location.line, "startColumn": f.location.column},
                },
            });
            if let Some(id) = &f.resource {
                location["logicalLocations"] =
                    json!([{"fullyQualifiedName": id, "kind": "resource"}]);
            }
            let mut r = json!({
                "ruleId": f.rule,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule).unwrap_or(0),
                "level": level(f.severity),
                "message": {"text": format!("{} Fix: {}", f.message, f.fix)},
                "locations": [location],
                "properties": {"tenant": f.tenant.as_deref().unwrap_or("shared")},
            });
            if let Some(w) = &f.waived {
                r["suppressions"] = json!([{
                    "kind": "external",
                    "status": "accepted",
                    "justification": format!("{} (waiver until {}, {})", w.reason, w.expires, w.location),
                }]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "lifeboat",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "originalUriBaseIds": {"PROJECTROOT": {"description": {"text": "the lifeboat project directory (platform.yaml)"}}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}
