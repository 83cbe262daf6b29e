//! The emulated SQL Server inside a SQL VM, reached only the way lifeboat reaches a
//! real one: a VM runCommand (`RunPowerShellScript`). It knows the database's
//! restore mode (`norecovery` = RESTORING, `standby` = read-only, `recovery` =
//! read-write, which is final). Log-shipping arrival and RPO belong to the
//! activation work and build on this state.

use serde_json::{Value, json};

use super::store::StoredResource;

/// Run a script on the VM; the runCommand output (`value[]` of StdOut/StdErr).
pub fn run_command(vm: &mut StoredResource, body: &[u8]) -> Result<Value, String> {
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
    let (stdout, stderr) = if script.contains("Get-LifeboatSqlState") {
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
                (json!({"mode": target}).to_string(), String::new())
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
