//! The emulated SQL Server inside a SQL VM, reached only the way lifeboat reaches a
//! real one: a VM runCommand (`RunPowerShellScript`), or the log-shipping monitor
//! rows it sends to Log Analytics. It knows the database's restore mode
//! (`norecovery` = RESTORING, `standby` = read-only, `recovery` = read-write, which
//! is final) and simulates log shipping as a pure function of the clock: from the
//! VM's creation the hospital's SQL Server takes a log backup every 5 Azure-minutes,
//! the copy job lands it on the secondary 1 minute later, and the restore job
//! applies it `restoreDelay` after it was taken (the tag `lifeboat-restore-delay`,
//! seconds, written from the manifest), until the database is recovered. What it
//! reports has the columns of `msdb.dbo.log_shipping_monitor_secondary`.

use serde_json::{Value, json};

use super::store::StoredResource;

/// Log backups are taken this often (Azure seconds), as SQL Server log shipping's
/// default backup job schedule (15 min) shortened to what an RPO of minutes needs.
pub const BACKUP_INTERVAL_S: u64 = 300;
/// The copy job lands a backup on the secondary this long after it was taken.
pub const COPY_LAG_S: u64 = 60;
/// The emulated database.
pub const DATABASE: &str = "HIX";

/// A SQL Server marketplace image.
pub fn is_sql_image(vm_body: &Value) -> bool {
    vm_body
        .pointer("/properties/storageProfile/imageReference/publisher")
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("MicrosoftSQLServer"))
}

/// The monitor row at wall time `now_ms`: Azure time runs `1 / scale` times as fast
/// as the wall clock in the emulator, so timestamps are on that virtual clock, which
/// starts at the shipping start.
pub fn monitor(
    vm: &StoredResource,
    now_ms: u64,
    scale: f64,
    stop_after_s: Option<u64>,
) -> Option<Value> {
    let sh = vm.shipping.as_ref()?;
    let scale = scale.max(1e-9);
    let virt = |wall: u64| -> i64 {
        sh.since_ms as i64 + ((wall.saturating_sub(sh.since_ms)) as f64 / scale) as i64
    };
    let now_v = virt(now_ms);
    let delay_s: i64 = vm
        .body
        .pointer("/tags/lifeboat-restore-delay")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let elapsed_s = (now_v - sh.since_ms as i64) / 1000;
    let interval = BACKUP_INTERVAL_S as i64;
    // Backup k (k >= 1) is taken at since + k*interval.
    let taken = |k: i64| sh.since_ms as i64 + k * interval * 1000;
    let mut last_copied = (elapsed_s - COPY_LAG_S as i64).div_euclid(interval);
    if let Some(stop) = stop_after_s {
        last_copied = last_copied.min(stop as i64 / interval);
    }
    let restore_until_v = sh.recovered_ms.map_or(now_v, |r| virt(r).min(now_v));
    let restorable = ((restore_until_v - sh.since_ms as i64) / 1000 - delay_s).div_euclid(interval);
    let last_restored = restorable.min(last_copied);
    let file = |k: i64| -> Value {
        if k < 1 {
            return Value::Null;
        }
        json!(format!(
            "{DATABASE}_{}.trn",
            stamp(taken(k), "%Y%m%d%H%M%S")
        ))
    };
    let date = |k: i64| -> Value {
        if k < 1 {
            Value::Null
        } else {
            json!(stamp(taken(k), "%Y-%m-%dT%H:%M:%SZ"))
        }
    };
    let mode = vm.sql_mode.as_deref().unwrap_or("norecovery");
    Some(json!({
        "secondary_server": vm.id.name(),
        "secondary_database": DATABASE,
        "primary_database": DATABASE,
        "last_copied_file": file(last_copied),
        "last_copied_date_utc": date(last_copied).as_str().map(|_| stamp(taken(last_copied) + COPY_LAG_S as i64 * 1000, "%Y-%m-%dT%H:%M:%SZ")),
        "last_restored_file": file(last_restored),
        "last_restored_date_utc": date(last_restored).as_str().map(|_| stamp(taken(last_restored) + delay_s * 1000, "%Y-%m-%dT%H:%M:%SZ")),
        "last_restored_latency": (last_restored >= 1).then_some(delay_s / 60),
        "state_desc": if mode == "norecovery" { "RESTORING" } else { "ONLINE" },
        "is_in_standby": mode == "standby",
        "restore_mode": mode,
        "now_utc": stamp(now_v, "%Y-%m-%dT%H:%M:%SZ"),
    }))
}

fn stamp(ms: i64, fmt: &str) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime(fmt).to_string())
        .unwrap_or_default()
}

/// Run a script on the VM; the runCommand output (`value[]` of StdOut/StdErr).
pub fn run_command(
    vm: &mut StoredResource,
    body: &[u8],
    now_ms: u64,
    scale: f64,
    stop_after_s: Option<u64>,
) -> Result<Value, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| format!("runCommand body: {e}"))?;
    let command = req.get("commandId").and_then(Value::as_str).unwrap_or("");
    if command != "RunPowerShellScript" {
        return Err(format!(
            "commandId `{command}` is not supported; use RunPowerShellScript"
        ));
    }
    let script: String = req
        .get("script")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let mode = vm.sql_mode.clone().unwrap_or_else(|| "norecovery".into());
    let read_monitor = |vm: &StoredResource| {
        match monitor(vm, now_ms, scale, stop_after_s) {
        Some(row) => (row.to_string(), String::new()),
        None => (
            String::new(),
            "Invoke-Sqlcmd: no log shipping is configured on this server (msdb.dbo.log_shipping_monitor_secondary is empty)".to_string(),
        ),
    }
    };
    let reads_monitor = script.contains("log_shipping_monitor_secondary");
    let (stdout, stderr) = if reads_monitor && !script.contains("Set-LifeboatSqlMode") {
        read_monitor(vm)
    } else if script.contains("Get-LifeboatSqlState") {
        (json!({"mode": mode}).to_string(), String::new())
    } else if let Some(rest) = script.split("Set-LifeboatSqlMode").nth(1) {
        let target = rest
            .split_whitespace()
            .find(|w| !w.starts_with('-'))
            .unwrap_or("");
        match (mode.as_str(), target) {
            ("recovery", t) if t != "recovery" => (
                String::new(),
                "The database was recovered (RESTORE WITH RECOVERY); it cannot return to a restoring state.".to_string(),
            ),
            (_, "norecovery" | "standby" | "recovery") => {
                vm.sql_mode = Some(target.to_string());
                if target == "recovery"
                    && let Some(sh) = vm.shipping.as_mut()
                {
                    sh.recovered_ms.get_or_insert(now_ms);
                }
                // A script that switches and then reads answers with the read.
                if reads_monitor {
                    read_monitor(vm)
                } else {
                    (json!({"mode": target}).to_string(), String::new())
                }
            }
            _ => (String::new(), format!("unknown restore mode `{target}`")),
        }
    } else {
        (
            String::new(),
            "emulator: this script is not simulated".to_string(),
        )
    };
    Ok(json!({"value": [
        {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": stdout},
        {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "message": stderr},
    ]}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Shipping;

    fn vm(delay: &str) -> StoredResource {
        StoredResource {
            id: lifeboat_core::id::ResourceId::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/lb-cwz-sql",
            )
            .unwrap(),
            resource_type: "Microsoft.Compute/virtualMachines".into(),
            api_version: "2024-07-01".into(),
            body: json!({"tags": {"lifeboat-restore-delay": delay}}),
            operation: None,
            power: Some("running".into()),
            sql_mode: None,
            shipping: Some(Shipping {
                since_ms: 1_800_000_000_000,
                recovered_ms: None,
            }),
            visible_from_ms: None,
            replicated_ms: None,
            indexing: None,
        }
    }

    #[test]
    fn backups_arrive_every_five_minutes_and_restore_late() {
        let v = vm("1800");
        let t0 = 1_800_000_000_000u64;
        // Scale 1: 4 minutes in, nothing has arrived.
        let m = monitor(&v, t0 + 240_000, 1.0, None).unwrap();
        assert!(m["last_copied_file"].is_null());
        // 62 minutes in: backups at 5..60 min; copied up to 60 (61 <= 62);
        // restored those taken up to 32 min ago -> 30 min.
        let m = monitor(&v, t0 + 62 * 60_000, 1.0, None).unwrap();
        assert_eq!(m["last_copied_file"], "HIX_20270115090000.trn");
        assert_eq!(m["last_restored_file"], "HIX_20270115083000.trn");
        assert_eq!(m["last_restored_latency"], 30);
        assert_eq!(m["state_desc"], "RESTORING");
        // Time scale 0.01: 37.2 wall seconds are 62 Azure minutes.
        let fast = monitor(&v, t0 + 37_200, 0.01, None).unwrap();
        assert_eq!(fast["last_copied_file"], m["last_copied_file"]);
        // Shipping stopped 10 minutes in: the newest backup held is from 08:10.
        let stopped = monitor(&v, t0 + 62 * 60_000, 1.0, Some(600)).unwrap();
        assert_eq!(stopped["last_copied_file"], "HIX_20270115081000.trn");
    }

    #[test]
    fn recovery_stops_the_restores() {
        let mut v = vm("0");
        let t0 = 1_800_000_000_000u64;
        v.shipping.as_mut().unwrap().recovered_ms = Some(t0 + 10 * 60_000);
        v.sql_mode = Some("recovery".into());
        let m = monitor(&v, t0 + 60 * 60_000, 1.0, None).unwrap();
        assert_eq!(m["last_restored_file"], "HIX_20270115081000.trn");
        assert_eq!(m["state_desc"], "ONLINE");
    }
}
