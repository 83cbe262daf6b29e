//! Integration tests of apply, drift and destroy: the real binary against the
//! embedded cloud (in-process emulator over loopback HTTP), with faults, crashes
//! (kill -9) and concurrent processes.

use crate::common;

use std::time::Duration;

use common::{Project, Run};
use serde_json::Value;

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn report(r: &Run) -> Value {
    json_lines(&r.stdout)
        .into_iter()
        .rev()
        .find(|v| v.get("makespan_ms").is_some())
        .unwrap_or_else(|| panic!("no report object in:\n{}\n{}", r.stdout, r.stderr))
}

fn stored_files(p: &Project) -> Vec<String> {
    let dir = p.dir.join(".lifeboat/cloud/resources");
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether the cloud holds the resource (a finished delete leaves its file until
/// the next read, so that counts as gone).
pub(crate) fn has_resource(p: &Project, suffix: &str) -> bool {
    stored_files(p).iter().any(|f| {
        let Ok(v) = serde_json::from_str::<Value>(f) else {
            return false;
        };
        let deleted = v["operation"]["kind"] == "delete" && v["operation"]["failure"].is_null();
        !deleted && v["id"].as_str().is_some_and(|s| s.ends_with(suffix))
    })
}

fn assert_converged(p: &Project) {
    p.run(&["plan", "--detailed-exitcode"])
        .assert_nothing_to_change();
}

#[test]
fn apply_then_plan_is_empty_and_the_report_has_the_documented_shape() {
    let p = Project::example("apply");
    let r = p.run(&["--output", "json", "apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let events = json_lines(&r.stdout);
    assert!(events.iter().any(|e| e["event"] == "started"));
    assert!(events.iter().any(|e| e["event"] == "finished"));
    let rep = report(&r);
    for key in [
        "makespan_ms",
        "critical_path_ms",
        "requests",
        "throttled",
        "retries",
        "resources",
    ] {
        assert!(rep.get(key).is_some(), "report lacks {key}: {rep}");
    }
    assert_eq!(rep["outcome"], "succeeded");
    // Everything but the 62 front-ends, which wait for their HiX images.
    assert_eq!(rep["summary"]["succeeded"], 193);
    assert!(rep["critical_path_ms"].as_u64().unwrap() <= rep["makespan_ms"].as_u64().unwrap());
    assert!(rep["requests"]["put"].as_u64().unwrap() >= 183);
    assert_converged(&p);
    let r = p.run(&["--time-scale", "0.001", "image", "build", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = p.run(&["--output", "json", "apply", "--auto-approve"]);
    assert_eq!(report(&r)["summary"]["succeeded"], 62, "{}", r.stderr);
    assert_converged(&p);
    // Front-ends are left deallocated: idle, they cost nothing but their disks.
    // (Its OS disk names it too, as `managedBy`.)
    let fe = stored_files(&p)
        .into_iter()
        .map(|f| serde_json::from_str::<Value>(&f).unwrap())
        .find(|v| {
            v["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("/virtualMachines/lb-cwz-fe01"))
        })
        .expect("front-end stored");
    assert_eq!(fe["operation"]["name"], "deallocate", "{fe}");

    // Generated admin passwords went to Key Vault only: never stored on a VM,
    // never in the journal, never in any output.
    let journal = p.read(".lifeboat/state/journal.jsonl");
    assert!(!journal.contains("adminPassword") && !journal.contains("\"value\""));
    for f in stored_files(&p) {
        assert!(!f.contains("adminPassword"), "a VM kept its password: {f}");
        let v: Value = serde_json::from_str(&f).unwrap();
        if v["type"] == "Microsoft.KeyVault/vaults/secrets" {
            assert!(
                v["body"]["properties"].get("value").is_none(),
                "a secret value was stored: {f}"
            );
        }
    }
    assert!(!r.stdout.contains("adminPassword\":\"") && !r.stderr.contains("adminPassword\":\""));
}

#[test]
fn faults_converge_within_two_runs_and_never_touch_protected_data() {
    let p = Project::example("faults");
    let faults = "429=0.05,500=0.05,reset=0.02,lro-fail=0.02";
    let mut converged = false;
    for _ in 0..2 {
        let r = p.run(&[
            "--faults",
            faults,
            "--output",
            "json",
            "apply",
            "--auto-approve",
        ]);
        let rep = report(&r);
        if r.code == 0 {
            converged = true;
            break;
        }
        assert_eq!(rep["outcome"], "failed", "{}", r.stderr);
    }
    assert!(
        converged,
        "apply did not converge within two runs under faults"
    );
    assert_converged(&p);
    assert!(has_resource(&p, "/disks/lb-cwz-sql-data01"));
}

#[test]
fn kill_9_during_apply_then_rerun_converges() {
    let p = Project::example("kill");
    for (i, delay_ms) in [150u64, 600, 1200].into_iter().enumerate() {
        let mut child = p.spawn(&[
            "--time-scale",
            "0.02",
            "--no-progress",
            "apply",
            "--auto-approve",
        ]);
        std::thread::sleep(Duration::from_millis(delay_ms * (i as u64 + 1)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let r = p.run(&["--no-progress", "apply", "--auto-approve"]);
    assert_eq!(
        r.code, 0,
        "re-run after kill -9 failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert_converged(&p);
}

#[test]
fn a_second_apply_on_the_same_tenant_waits_then_fails_naming_the_holder() {
    let p = Project::example("locks");
    let mut first = p.spawn(common::SLOW_APPLY_CWZ);
    let lock = p.dir.join(".lifeboat/state/locks/tenant-cwz.lock");
    for _ in 0..100 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lock.exists(), "the first apply never took the lock");
    let second = p.run(&[
        "apply",
        "--auto-approve",
        "--tenant",
        "cwz",
        "--lock-timeout",
        "0.5",
    ]);
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("tenant-cwz")
            && second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr
    );
    // Another tenant is not blocked.
    let other = p.run(&[
        "--no-progress",
        "apply",
        "--auto-approve",
        "--tenant",
        "rst",
        "--lock-timeout",
        "0",
    ]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert!(first.wait().unwrap().success());
    // The lock is the OS's on the open file; the file stays, naming no holder.
    let left = std::fs::read_to_string(&lock).unwrap_or_default();
    assert!(left.is_empty(), "the lock was not released: {left}");
}

#[test]
fn a_crashed_holders_lock_is_taken_over() {
    let p = Project::example("stale");
    let expired = serde_json::json!({"owner": "ci", "host": "agent-7", "pid": 4242, "command": "apply",
        "started": "2026-01-01T00:00:00Z", "expires": "2026-01-01T00:01:00Z"});
    p.write(".lifeboat/state/locks/tenant-cwz.lock", expired.to_string());
    let r = p.run(&[
        "--no-progress",
        "apply",
        "--auto-approve",
        "--tenant",
        "cwz",
        "--shared",
        "--lock-timeout",
        "0",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn saved_plans_apply_once_and_stale_plans_are_refused() {
    let p = Project::example("saved");
    assert_eq!(
        p.run(&["plan", "--tenant", "rst", "--shared", "--out", "p.json"])
            .code,
        0
    );
    p.edit("tenants/rst.yaml", "count: 12", "count: 11");
    let r = p.run(&["apply", "p.json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("stale") && r.stderr.contains("tenants/rst.yaml changed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        p.run(&["plan", "--tenant", "rst", "--shared", "--out", "p.json"])
            .code,
        0
    );
    let r = p.run(&["--no-progress", "apply", "p.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A saved plan applies once.
    let r = p.run(&["apply", "p.json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already applied"), "{}", r.stderr);
    // A plan made before someone else's apply is stale.
    assert_eq!(
        p.run(&["plan", "--tenant", "cwz", "--out", "q.json"]).code,
        0
    );
    assert_eq!(
        p.run(&[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--tenant",
            "mst"
        ])
        .code,
        0
    );
    let r = p.run(&["apply", "q.json"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("the cloud changed"), "{}", r.stderr);
    p.run(&["plan", "--detailed-exitcode", "--tenant", "rst", "--shared"])
        .assert_nothing_to_change();
}

#[test]
fn apply_without_approval_on_a_pipe_refuses() {
    let p = Project::example("approve");
    let r = p.run(&["apply"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--auto-approve"), "{}", r.stderr);
    assert!(
        stored_files(&p).is_empty(),
        "something was written without approval"
    );
}

#[test]
fn invalid_manifests_write_nothing() {
    let p = Project::example("invalid");
    p.edit("tenants/cwz.yaml", "count: 20", "count: 0");
    let r = p.run(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("tenants/cwz.yaml:"), "{}", r.stderr);
    assert!(stored_files(&p).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_names_an_nsg_rule_changed_through_the_emulators_arm_api() {
    let p = Project::example("drift");
    assert_eq!(
        p.run(&[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--tenant",
            "cwz",
            "--shared"
        ])
        .code,
        0
    );
    // A change made outside lifeboat, through ARM (a standalone emulator on the same data).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut emu = p.spawn_env(
        &[
            "emulator",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[("LIFEBOAT_EMULATOR_TOKEN", "tok")],
    );
    let base = format!("http://127.0.0.1:{port}");
    lifeboat_engine::cloud::install_crypto();
    let http = reqwest::Client::new();
    let nsg = "/subscriptions/3f2a9c1e-7b4d-4e8a-9c6f-2d1b0a8e5f71/resourceGroups/lb-cwz-rg/providers/Microsoft.Network/networkSecurityGroups/lb-cwz-sql-nsg";
    let url = format!("{base}{nsg}?api-version=2024-05-01");
    let mut body: Value = loop {
        match http.get(&url).bearer_auth("tok:someone").send().await {
            Ok(r) => break r.json().await.unwrap(),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    body["properties"]["securityRules"][0]["properties"]["destinationPortRange"] = "3389".into();
    let put = http
        .put(&url)
        .bearer_auth("tok:someone")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let _ = emu.kill();
    let _ = emu.wait();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = p.run(&["drift", "--detailed-exitcode", "--tenant", "cwz"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("lb-cwz-sql-nsg")
            && r.stdout
                .contains("destinationPortRange: expected \"1433\", actual \"3389\""),
        "{}",
        r.stdout
    );
    assert_eq!(
        p.run(&[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--tenant",
            "cwz"
        ])
        .code,
        0
    );
    assert_eq!(
        p.run(&["drift", "--detailed-exitcode", "--tenant", "cwz"])
            .code,
        0
    );
}

#[test]
fn destroy_keeps_protected_data_and_the_shared_layer_while_tenants_exist() {
    let p = Project::example("destroy");
    assert_eq!(
        p.run(&[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--tenant",
            "rst",
            "--shared"
        ])
        .code,
        0
    );
    let r = p.run(&[
        "--no-progress",
        "destroy",
        "--tenant",
        "shared",
        "--auto-approve",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("while tenants exist (rst)"),
        "{}",
        r.stderr
    );
    let r = p.run(&["destroy", "--tenant", "xyz", "--auto-approve"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no tenants/xyz.yaml and nothing in the cloud"),
        "{}",
        r.stderr
    );
    // Deletes are disruptive: only inside rst's window (Wednesday 23:30
    // Europe/Amsterdam, 3 h) or with --outside-window.
    let outside = [("LIFEBOAT_NOW", "2026-11-25T12:00:00Z")];
    let r = p.run_env(&["destroy", "--tenant", "rst", "--auto-approve"], &outside);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("wait for its maintenance window (wednesday 23:30 Europe/Amsterdam, 3 h; next opens Wednesday 2026-11-25 23:30 CET)"),
        "{}",
        r.stderr
    );
    assert!(
        has_resource(&p, "/networkInterfaces/lb-rst-fe01-nic"),
        "nothing deleted"
    );
    let inside = [("LIFEBOAT_NOW", "2026-11-25T23:00:00Z")];
    let r = p.run_env(
        &[
            "--no-progress",
            "destroy",
            "--tenant",
            "rst",
            "--auto-approve",
        ],
        &inside,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        has_resource(&p, "/disks/lb-rst-sql-data01"),
        "protected disk deleted"
    );
    assert!(!has_resource(&p, "/virtualMachines/lb-rst-fe01"));
    let r = p.run(&[
        "--no-progress",
        "destroy",
        "--tenant",
        "rst",
        "--auto-approve",
        "--allow-data-loss",
        "rst",
        "--outside-window",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!has_resource(&p, "/disks/lb-rst-sql-data01"));
    assert!(!has_resource(&p, "/resourceGroups/lb-rst-rg"));
}

/// A tenant with its front-ends and SQL VM running goes in one destroy: a
/// disk's `managedBy` (its VM) orders nothing, so an attached disk and its VM
/// are no cycle (they were, and the SQL VM, its disk, the key vault, the NIC
/// and the group were left behind); the OS disks Azure made go with their
/// VMs, and no held disk is deleted on its own (the emulator refuses that,
/// as ARM does).
#[test]
fn a_running_tenant_goes_in_one_destroy_with_its_vms_disks() {
    let p = Project::example("destroy-running");
    let up = crate::common::APPLY_RST;
    assert_eq!(p.run(up).code, 0);
    let r = p.run(&["--time-scale", "0.001", "image", "build", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(p.run(up).code, 0);
    assert!(
        has_resource(&p, "/disks/lb-rst-fe01-osdisk"),
        "Azure's OS disk"
    );
    // ... which a plan neither deletes nor lists as kept.
    let r = p.run(&["--output", "json", "plan", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["summary"]["delete"], 0, "{}", r.stdout);
    assert_eq!(plan["kept"], serde_json::json!([]), "{}", r.stdout);
    let r = p.run(&[
        "--no-progress",
        "destroy",
        "--tenant",
        "rst",
        "--auto-approve",
        "--allow-data-loss",
        "rst",
        "--outside-window",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("osdisk"),
        "OS disks are not planned: {}",
        r.stdout
    );
    for gone in [
        "/virtualMachines/lb-rst-sql",
        "/disks/lb-rst-sql-data01",
        "/disks/lb-rst-fe01-osdisk",
        "/networkInterfaces/lb-rst-sql-nic",
        "/resourceGroups/lb-rst-rg",
    ] {
        assert!(!has_resource(&p, gone), "{gone} left behind");
    }
}

#[test]
fn lowering_sql_capacity_needs_the_flag_and_shows_before_and_after() {
    let p = Project::example("capacity");
    let args = crate::common::APPLY_RST;
    assert_eq!(p.run(args).code, 0);
    p.edit(
        "tenants/rst.yaml",
        "size: Standard_E8ds_v5",
        "size: Standard_D8ds_v5",
    );
    let r = p.run(&["plan", "--tenant", "rst"]);
    assert!(
        r.stdout.contains(
            "! capacity reduction lb-rst-sql (Standard_E8ds_v5 -> Standard_D8ds_v5): memory GiB 64 -> 32"
        ),
        "{}",
        r.stdout
    );
    let json: Value = serde_json::from_str(
        &p.run(&["--output", "json", "plan", "--tenant", "rst"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["capacity_reductions"][0]["lower"][0]["after"], 32);
    let r = p.run(&["apply", "--auto-approve", "--tenant", "rst"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("refusing to lower capacity")
            && r.stderr.contains("--allow-capacity-reduction"),
        "{}",
        r.stderr
    );
    assert_eq!(
        p.run(&["plan", "--detailed-exitcode", "--tenant", "rst"])
            .code,
        2,
        "nothing was applied"
    );
    let r = p.run(&[
        "--no-progress",
        "apply",
        "--auto-approve",
        "--tenant",
        "rst",
        "--allow-capacity-reduction",
        "--outside-window",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_converged_scope(&p, "rst");
}

fn assert_converged_scope(p: &Project, tenant: &str) {
    p.run(&["plan", "--detailed-exitcode", "--tenant", tenant])
        .assert_nothing_to_change();
}

/// Every output and every file lifeboat writes, searched for the admin passwords it
/// generated (read from the emulated Key Vault's data plane): none may appear.
#[test]
fn generated_secrets_never_leak() {
    let p = Project::example("leak");
    let mut seen = String::new();
    let mut record = |r: Run| {
        seen.push_str(&r.stdout);
        seen.push_str(&r.stderr);
    };
    record(p.run(&["--output", "json", "apply", "--auto-approve"]));
    record(p.run(&["--time-scale", "0.001", "image", "build", "--all"]));
    record(p.run(&["apply", "--auto-approve"]));
    p.edit(
        "tenants/cwz.yaml",
        "costCenter: CWZ-ICT-1234",
        "costCenter: CWZ-ICT-9",
    );
    for format in ["human", "json", "markdown"] {
        record(p.run(&["plan", "--format", format]));
    }
    let r = p.run(&["plan", "--out", "saved.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    record(r);
    record(p.run(&["drift"]));
    record(p.run(&["--output", "json", "drift"]));
    record(p.run(&["image", "list"]));
    record(p.run(&["export", "terraform", "--out", "tf"]));
    // The guardrail, activation and status outputs too.
    record(p.run(&["--output", "json", "check", "--sarif", "findings.sarif"]));
    record(p.run(&["roster", "apply", "--auto-approve"]));
    record(p.run(&["drill", "cwz", "--force", "--report", "drill"]));
    for format in ["human", "json", "prometheus", "html"] {
        record(p.run(&["status", "--format", format]));
    }
    record(p.run(&["audit", "verify"]));
    record(p.run(&[
        "--output",
        "json",
        "apply",
        "--auto-approve",
        "--outside-window",
    ]));

    let secrets = lifeboat_emulator::store::Store::for_project(&p.dir)
        .secret_values()
        .unwrap();
    assert!(secrets.len() >= 6, "{secrets:?}");
    let mut files = Vec::new();
    let mut stack = vec![p.dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.ends_with(".lifeboat/cloud/vault") {
                continue; // Key Vault itself
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("journal.jsonl")));
    assert!(files.iter().any(|f| f.ends_with("saved.json")));
    for f in [
        "audit.jsonl",
        "findings.sarif",
        "drill.html",
        "drill-junit.xml",
    ] {
        assert!(files.iter().any(|x| x.ends_with(f)), "{f} was written");
    }
    for s in &secrets {
        assert!(
            !seen.contains(s.as_str()),
            "a generated secret appeared in an output"
        );
        for f in &files {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            assert!(
                !text.contains(s.as_str()),
                "a generated secret is in {}",
                f.display()
            );
        }
    }
}
