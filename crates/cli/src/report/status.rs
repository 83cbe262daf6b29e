//! Fleet status as a table for people, JSON, Prometheus text exposition (for a
//! node-exporter textfile or a pushgateway) and a self-contained HTML page.

use std::fmt::Write;

use serde_json::{Value, json};

use super::dap::escape;
use lifeboat_engine::ops::status::TenantStatus;

fn age(s: Option<i64>) -> String {
    match s {
        Some(s) => format!("{}m{:02}s", s / 60, s % 60),
        None => "-".into(),
    }
}

fn power_text(t: &TenantStatus) -> String {
    if t.power.is_empty() {
        return format!("0/{} built", t.frontends_declared);
    }
    let text = t
        .power
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    if t.shortfall.is_empty() {
        text
    } else {
        format!(
            "{text}; short {}/{}",
            t.shortfall.len(),
            t.frontends_declared
        )
    }
}

fn image_text(t: &TenantStatus) -> String {
    let on = t.images.get(&t.declared_image).copied().unwrap_or(0);
    let total: usize = t.images.values().sum();
    if total == 0 {
        format!("{} (not built/rolled out)", t.declared_image)
    } else if on == total {
        t.declared_image.clone()
    } else {
        let others: Vec<String> = t
            .images
            .iter()
            .filter(|(v, _)| **v != t.declared_image)
            .map(|(v, n)| format!("{n} on {v}"))
            .collect();
        format!("{} ({on}/{total}; {})", t.declared_image, others.join(", "))
    }
}

/// `14 users, MFA` / `no group` / `14 users, MFA missing !`.
fn access_text(t: &TenantStatus) -> String {
    let users = match t.roster_members {
        None if t.mfa_policy.is_none() => return "-".into(),
        None => "no group".to_string(),
        Some(n) => format!("{n} users"),
    };
    match t.mfa_policy.as_deref() {
        Some("enabled") => format!("{users}, MFA"),
        Some(other) => format!("{users}, MFA {other} !"),
        None => users,
    }
}

pub fn human(ts: &[TenantStatus]) -> String {
    let mut s = format!(
        "{:<8} {:<10} {:<22} {:<14} {:<10} {:<24} {:<26} {:>5}  {:<16} {:<18} {}\n",
        "TENANT",
        "STATE",
        "SQL",
        "RPO",
        "TARGET",
        "IMAGE",
        "FRONT-ENDS",
        "DRIFT",
        "ACCESS",
        "ALERTS",
        "LAST DRILL"
    );
    for t in ts {
        let sql = t
            .sql
            .as_ref()
            .map_or("-".into(), |q| format!("{} ({})", q.state, q.mode));
        // A new tenant's secondary has restored no log backup yet: say so,
        // rather than an age of `-` flagged as over target.
        let rpo = match (&t.sql, t.sql.as_ref().and_then(|q| q.rpo_seconds)) {
            (None, _) => "-".to_string(),
            (Some(_), None) => "no backup yet".to_string(),
            (Some(_), Some(r)) if !t.rpo_ok => format!("{} !", age(Some(r))),
            (Some(_), Some(r)) => age(Some(r)),
        };
        let mut drill = match (&t.last_drill, t.last_drill_rto_seconds) {
            (Some(d), Some(r)) => format!(
                "{} RTO {}",
                d.split_whitespace().next().unwrap_or(""),
                age(Some(r as i64))
            ),
            (Some(d), None) => d.clone(),
            _ => "never".into(),
        };
        if t.last_drill_passed == Some(false) && !drill.ends_with("failed") {
            drill.push_str(" FAILED");
        }
        let _ = writeln!(
            s,
            "{:<8} {:<10} {:<22} {:<14} {:<10} {:<24} {:<26} {:>5}  {:<16} {:<18} {}",
            t.tenant,
            t.state,
            sql,
            rpo,
            age(Some(t.rpo_target_seconds)),
            image_text(t),
            power_text(t),
            t.drift,
            access_text(t),
            if t.alerts.is_empty() {
                "-".to_string()
            } else {
                format!("{} !", t.alerts.join(", "))
            },
            drill
        );
    }
    s
}

pub fn json(ts: &[TenantStatus]) -> Value {
    json!({"format_version": "1", "tenants": ts})
}

/// Prometheus text exposition format 0.0.4.
pub fn prometheus(ts: &[TenantStatus]) -> String {
    let mut s = String::new();
    let mut metric = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in rows {
            let _ = writeln!(s, "{name}{{{labels}}} {v}");
        }
    };
    let l = |t: &TenantStatus| format!("tenant=\"{}\"", t.tenant);
    metric(
        "lifeboat_tenant_active",
        "1 while the tenant's emergency environment is activated (or activating).",
        ts.iter()
            .map(|t| (l(t), f64::from(u8::from(t.state.starts_with("ACTIV")))))
            .collect(),
    );
    metric(
        "lifeboat_rpo_seconds",
        "Age of the newest log backup the SQL secondary holds.",
        ts.iter()
            .filter_map(|t| Some((l(t), t.sql.as_ref()?.rpo_seconds? as f64)))
            .collect(),
    );
    metric(
        "lifeboat_rpo_target_seconds",
        "The tenant's agreed RPO (rpoTargetMinutes).",
        ts.iter()
            .map(|t| (l(t), t.rpo_target_seconds as f64))
            .collect(),
    );
    metric(
        "lifeboat_restore_lag_seconds",
        "Age of the last restored log backup (restoreDelay plus any backlog).",
        ts.iter()
            .filter_map(|t| Some((l(t), t.sql.as_ref()?.restore_lag_seconds? as f64)))
            .collect(),
    );
    metric(
        "lifeboat_sql_restoring",
        "1 while the secondary database is RESTORING (norecovery).",
        ts.iter()
            .filter_map(|t| {
                Some((
                    l(t),
                    f64::from(u8::from(t.sql.as_ref()?.state == "RESTORING")),
                ))
            })
            .collect(),
    );
    metric(
        "lifeboat_frontends",
        "Front-end VMs by power state.",
        ts.iter()
            .flat_map(|t| {
                t.power
                    .iter()
                    .map(move |(k, v)| (format!("{},state=\"{k}\"", l(t)), *v as f64))
            })
            .collect(),
    );
    metric(
        "lifeboat_frontends_on_declared_image",
        "Front-ends running the HiX image version the manifest declares.",
        ts.iter()
            .map(|t| {
                (
                    l(t),
                    t.images.get(&t.declared_image).copied().unwrap_or(0) as f64,
                )
            })
            .collect(),
    );
    metric(
        "lifeboat_drift_resources",
        "Existing resources whose declared properties differ.",
        ts.iter().map(|t| (l(t), t.drift as f64)).collect(),
    );
    metric(
        "lifeboat_last_drill_passed",
        "1 when the tenant's last drill passed, 0 when it failed.",
        ts.iter()
            .filter_map(|t| Some((l(t), f64::from(u8::from(t.last_drill_passed?)))))
            .collect(),
    );
    metric(
        "lifeboat_last_drill_rto_seconds",
        "RTO of the tenant's last drill (Azure time).",
        ts.iter()
            .filter_map(|t| Some((l(t), t.last_drill_rto_seconds?)))
            .collect(),
    );
    metric(
        "lifeboat_roster_members",
        "Enabled members of the tenant's emergency group (who may log in).",
        ts.iter()
            .filter_map(|t| Some((l(t), t.roster_members? as f64)))
            .collect(),
    );
    metric(
        "lifeboat_alert_firing",
        "1 for each of the tenant's alert rules that fires now.",
        ts.iter()
            .flat_map(|t| {
                t.alerts
                    .iter()
                    .map(move |a| (format!("{},alert=\"{a}\"", l(t)), 1.0))
            })
            .collect(),
    );
    s
}

/// One self-contained page: inline CSS, no scripts or external resources.
pub fn html(ts: &[TenantStatus], generated: &str) -> String {
    let mut h = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lifeboat status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1b1b1b; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: left; }}
.ACTIVE {{ background: #fde2e1; }} .ACTIVATING {{ background: #fff3c4; }} .bad {{ color: #a4161a; font-weight: bold; }}
</style></head><body><h1>lifeboat status</h1><p>Generated {}.</p>
<table id="status"><tr><th>tenant</th><th>state</th><th>SQL</th><th>RPO / target</th><th>image</th><th>front-ends</th><th>drift</th><th>last drill</th></tr>
"#,
        escape(generated)
    );
    for t in ts {
        let sql = t
            .sql
            .as_ref()
            .map_or("-".into(), |q| format!("{} ({})", q.state, q.mode));
        let rpo_class = if t.sql.is_some() && !t.rpo_ok {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr class=\"{state}\" data-tenant=\"{id}\"><td>{id}</td><td>{state}</td><td>{sql}</td><td{rpo_class}>{rpo} / {target}</td><td>{img}</td><td>{pw}</td><td>{drift}</td><td>{drill}</td></tr>",
            state = escape(&t.state),
            id = escape(&t.tenant),
            sql = escape(&sql),
            rpo = age(t.sql.as_ref().and_then(|q| q.rpo_seconds)),
            target = age(Some(t.rpo_target_seconds)),
            img = escape(&image_text(t)),
            pw = escape(&power_text(t)),
            drift = t.drift,
            drill = escape(t.last_drill.as_deref().unwrap_or("never")),
        );
    }
    h.push_str("</table></body></html>\n");
    h
}
