//! The roster for people and pipelines: the plan as text or Markdown (JSON is
//! the engine's value as is), what `roster apply` did, and the attestation list
//! (CSV, HTML) a NEN 7510 auditor reads. Pure formatting.

use std::fmt::Write;

use lifeboat_engine::ops::roster::{Applied, RosterPlan};

use super::dap::escape;

/// One line per change, grouped by tenant.
pub fn plan_text(plan: &RosterPlan, markdown: bool) -> String {
    let mut s = String::new();
    let bullet = if markdown { "- " } else { "  " };
    for t in &plan.tenants {
        let head = format!(
            "tenant {} (group {}): {} joiner(s), {} leaver(s), {} mover(s), {} unmanaged; {} of {} after",
            t.tenant,
            t.group,
            t.joiners.len(),
            t.leavers.len(),
            t.movers.len(),
            t.unmanaged.len(),
            t.members_after,
            t.max_users
        );
        if markdown {
            let _ = writeln!(s, "### {head}");
        } else {
            let _ = writeln!(s, "{head}");
        }
        for j in &t.joiners {
            let _ = writeln!(s, "{bullet}+ {} ({})", j.upn, j.rule);
        }
        for l in &t.leavers {
            let _ = writeln!(s, "{bullet}- {} ({})", l.upn, l.why);
        }
        for m in &t.movers {
            let _ = writeln!(s, "{bullet}~ {} ({} -> {})", m.upn, m.from, m.to);
        }
        for u in &t.unmanaged {
            let verb = if plan.keep_unmanaged {
                "kept"
            } else {
                "removed"
            };
            let _ = writeln!(
                s,
                "{bullet}? {} (unmanaged: in the group, not in the roster; {verb})",
                u.upn
            );
        }
    }
    let r = &plan.requests;
    let _ = write!(
        s,
        "Roster: {} change(s). Microsoft Graph requests: {} ({} reads, {} writes, {} batches; {} throttled).",
        plan.changes(),
        r.total(),
        r.reads,
        r.writes,
        r.batches,
        r.throttled
    );
    s
}

pub fn applied_text(a: &Applied) -> String {
    let mut s = String::new();
    for g in &a.groups_created {
        let _ = writeln!(s, "created group {g}");
    }
    for c in &a.changes {
        let mark = match c.change {
            "join" => "+",
            "leave" | "remove" => "-",
            _ => "~",
        };
        match &c.error {
            None => {
                let _ = writeln!(s, "{mark} {} {} ({})", c.tenant, c.upn, c.detail);
            }
            Some(e) => {
                let _ = writeln!(
                    s,
                    "FAILED {mark} {} {} ({}): {e}",
                    c.tenant, c.upn, c.detail
                );
            }
        }
    }
    let r = &a.requests;
    let _ = write!(
        s,
        "Roster applied: {} change(s), {} failed; MFA policy {}. Microsoft Graph requests: {} ({} batches; {} throttled).",
        a.changes.len(),
        a.failed().len(),
        a.policy,
        r.total(),
        r.batches,
        r.throttled
    );
    s
}

/// One attested person.
pub struct Attested {
    pub upn: String,
    pub display_name: String,
    pub basis: String,
    pub since: String,
    pub member: bool,
}

fn csv_cell(s: &str) -> String {
    // A leading = + - @ would be a formula in a spreadsheet: quote it as text.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn attestation_csv(rows: &[Attested]) -> String {
    let mut s = String::from("upn,displayName,basis,since,inGroup\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            csv_cell(&r.upn),
            csv_cell(&r.display_name),
            csv_cell(&r.basis),
            csv_cell(&r.since),
            r.member
        );
    }
    s
}

pub fn attestation_html(tenant: &str, group: &str, generated: &str, rows: &[Attested]) -> String {
    let mut s = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Emergency access: {t}</title>\
         <style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px}}</style></head>\
         <body><h1>Emergency access attestation: {t}</h1><p>Group {g}, generated {d}. Who may log in to the emergency environment, on which basis, since when.</p>\
         <table><thead><tr><th>UPN</th><th>Name</th><th>Basis</th><th>Since</th><th>In group</th></tr></thead><tbody>\n",
        t = escape(tenant),
        g = escape(group),
        d = escape(generated)
    );
    for r in rows {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.upn),
            escape(&r.display_name),
            escape(&r.basis),
            escape(&r.since),
            if r.member { "yes" } else { "no" }
        );
    }
    s.push_str("</tbody></table></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_text_in_csv_and_html() {
        let rows = [Attested {
            upn: "x@cwz.nl".into(),
            display_name: "=HYPERLINK(\"http://evil\")<script>".into(),
            basis: "include[0] (a, b)".into(),
            since: "2026-01-01".into(),
            member: true,
        }];
        let csv = attestation_csv(&rows);
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"http://evil\"\")<script>\""),
            "{csv}"
        );
        let html = attestation_html("cwz", "g", "now", &rows);
        assert!(
            html.contains("=HYPERLINK(&quot;http://evil&quot;)&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }
}
