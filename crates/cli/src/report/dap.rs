//! Activation, deactivation and drill results for people (timeline text, a
//! self-contained HTML report) and for pipelines (JUnit XML, so Azure DevOps shows
//! a drill as test results). Pure formatting.

use std::fmt::Write;

use lifeboat_engine::ops::dap::{Drill, Run};

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn minutes(secs: f64) -> String {
    format!(
        "{}m{:02}s",
        (secs / 60.0).floor() as u64,
        (secs % 60.0).round() as u64 % 60
    )
}

/// The timeline and the RTO.
/// The end of `activate A B …` / `deactivate A B …`: the makespan and each
/// tenant's outcome and RTO.
pub fn summary_human(kind: &str, makespan_ms: u64, runs: &[Run]) -> String {
    use std::fmt::Write;
    let ok = runs.iter().filter(|r| r.outcome == "succeeded").count();
    let mut s = format!(
        "\n{kind}: {ok} of {} tenant(s) succeeded in {:.1} s\n",
        runs.len(),
        makespan_ms as f64 / 1000.0
    );
    for r in runs {
        let _ = writeln!(
            s,
            "  {:<8} {:<9} RTO {:.1} s (modelled {:.0} Azure-s){}",
            r.tenant,
            r.outcome,
            r.rto_ms as f64 / 1000.0,
            r.modelled_rto_seconds,
            r.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    s
}

pub fn run_human(r: &Run) -> String {
    let mut s = String::new();
    let what = if r.drill {
        format!("{} (drill)", r.kind)
    } else {
        r.kind.clone()
    };
    let _ = writeln!(s, "\n{what} {}: {}", r.tenant, r.outcome.to_uppercase());
    for st in &r.steps {
        let _ = writeln!(
            s,
            "  +{:>8.2} s  {:<22} {:>8.2} s  {:<7} {}",
            st.start_ms as f64 / 1000.0,
            st.name,
            st.duration_ms as f64 / 1000.0,
            st.outcome,
            st.detail
        );
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  {e}");
        if r.outcome == "failed" {
            let _ = writeln!(
                s,
                "  Every step is idempotent: re-run `lifeboat {} {}` to continue.",
                r.kind, r.tenant
            );
        }
    }
    if r.outcome != "refused" {
        let _ = writeln!(
            s,
            "{} in {:.2} s (critical path of the steps {:.2} s); in Azure time {} ({:.0} s).",
            if r.kind == "activate" { "RTO" } else { "Done" },
            r.rto_ms as f64 / 1000.0,
            r.critical_path_ms as f64 / 1000.0,
            minutes(r.modelled_rto_seconds),
            r.modelled_rto_seconds
        );
    }
    s
}

pub fn drill_human(d: &Drill) -> String {
    let mut s = run_human(&d.activation);
    if let Some(x) = &d.deactivation {
        s.push_str(&run_human(x));
    }
    let _ = writeln!(
        s,
        "Drill {} {}: RTO {} (Azure time).",
        d.tenant,
        d.outcome.to_uppercase(),
        minutes(d.modelled_rto_seconds)
    );
    s
}

/// JUnit XML: one suite per drill, one test case per step of each phase.
pub fn drill_junit(d: &Drill) -> String {
    let runs: Vec<&Run> = std::iter::once(&d.activation)
        .chain(d.deactivation.as_ref())
        .collect();
    let cases: usize = runs.iter().map(|r| r.steps.len()).sum();
    let failures: usize = runs
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.outcome == "failed")
        .count();
    let skipped: usize = runs
        .iter()
        .flat_map(|r| &r.steps)
        .filter(|s| s.outcome == "skipped")
        .count();
    let total: f64 = runs.iter().map(|r| r.rto_ms as f64 / 1000.0).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"lifeboat drill\" tests=\"{cases}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total:.3}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"drill {}\" tests=\"{cases}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{total:.3}\" timestamp=\"{}\">",
        escape(&d.tenant),
        escape(&d.started_at)
    );
    let _ = writeln!(
        x,
        "    <properties><property name=\"tenant\" value=\"{}\"/><property name=\"rto_seconds_azure\" value=\"{:.0}\"/><property name=\"outcome\" value=\"{}\"/></properties>",
        escape(&d.tenant),
        d.modelled_rto_seconds,
        d.outcome
    );
    for r in runs {
        for st in &r.steps {
            let _ = write!(
                x,
                "    <testcase classname=\"lifeboat.drill.{}.{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&d.tenant),
                r.kind,
                escape(&st.name),
                st.duration_ms as f64 / 1000.0
            );
            match st.outcome.as_str() {
                "failed" => {
                    let _ = writeln!(
                        x,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        escape(&st.detail),
                        escape(&st.detail)
                    );
                }
                "skipped" => {
                    let _ = writeln!(
                        x,
                        "><skipped message=\"{}\"/></testcase>",
                        escape(&st.detail)
                    );
                }
                _ => {
                    let _ = writeln!(
                        x,
                        "><system-out>{}</system-out></testcase>",
                        escape(&st.detail)
                    );
                }
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// One self-contained page (inline CSS, no scripts, no external resources): the
/// verdict, the RTO, and each phase's steps as a timeline.
pub fn drill_html(d: &Drill) -> String {
    let mut h = String::new();
    let verdict = if d.outcome == "passed" {
        "pass"
    } else {
        "fail"
    };
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lifeboat drill {tenant}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1b1b1b; }}
h1 {{ font-size: 1.4em; }} .pass {{ color: #0a6b2c; }} .fail {{ color: #a4161a; }}
table {{ border-collapse: collapse; margin: 1em 0; min-width: 60em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }}
.bar {{ background: #e8eef7; height: 1em; position: relative; width: 24em; }}
.bar span {{ background: #2f6fd1; height: 1em; position: absolute; }}
.failed span {{ background: #a4161a; }} .num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1 id="verdict" class="{verdict}">Drill {tenant}: {outcome}</h1>
<p>Started {started}. Reason: {reason}. RTO <strong id="rto">{rto}</strong> (Azure time; measured {wall:.2} s).</p>
"#,
        tenant = escape(&d.tenant),
        outcome = d.outcome.to_uppercase(),
        started = escape(&d.started_at),
        reason = escape(d.reason.as_deref().unwrap_or("-")),
        rto = minutes(d.modelled_rto_seconds),
        wall = d.rto_ms as f64 / 1000.0,
    );
    for r in std::iter::once(&d.activation).chain(d.deactivation.as_ref()) {
        let span = r.rto_ms.max(1) as f64;
        let _ = writeln!(
            h,
            "<h2>{} — {}</h2><table><tr><th>step</th><th>outcome</th><th class=\"num\">start s</th><th class=\"num\">duration s</th><th>timeline</th><th>detail</th></tr>",
            escape(&r.kind),
            escape(&r.outcome)
        );
        for st in &r.steps {
            let left = st.start_ms as f64 / span * 100.0;
            let width = (st.duration_ms as f64 / span * 100.0).max(0.5);
            let _ = writeln!(
                h,
                "<tr class=\"step {o}\"><td>{n}</td><td>{o}</td><td class=\"num\">{s:.2}</td><td class=\"num\">{du:.2}</td><td><div class=\"bar {o}\"><span style=\"left:{left:.1}%;width:{width:.1}%\"></span></div></td><td>{det}</td></tr>",
                o = escape(&st.outcome),
                n = escape(&st.name),
                s = st.start_ms as f64 / 1000.0,
                du = st.duration_ms as f64 / 1000.0,
                det = escape(&st.detail)
            );
        }
        h.push_str("</table>\n");
        if let Some(e) = &r.error {
            let _ = writeln!(h, "<p class=\"fail\">{}</p>", escape(e));
        }
    }
    h.push_str("</body></html>\n");
    h
}
