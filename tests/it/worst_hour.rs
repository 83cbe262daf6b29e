//! The worst hour (#15), tested like an attacker or an unlucky operator would:
//! an apply or destroy queued behind an activation, an edited saved plan, a
//! closed output pipe in the middle of an activation, usage errors read as
//! "changes present", absurd lock timeouts. Each test reproduces the attack and
//! shows it now fails safely.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, Project, Run};

const FAST: (&str, &str) = ("LIFEBOAT_EMULATOR_TIME_SCALE", "0.001");

fn run(p: &Project, args: &[&str]) -> Run {
    p.run_env(args, &[FAST])
}

/// The examples provisioned with their images and front-ends.
fn provisioned(name: &str) -> Project {
    crate::dap::provisioned(name, None)
}

fn status_of(p: &Project, tenant: &str) -> Value {
    let r = run(p, &["--output", "json", "status", "--tenant", tenant]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["tenants"][0].clone()
}

/// The emergency access rule of `tenant` as the embedded cloud stores it.
fn access_rule(p: &Project, tenant: &str) -> String {
    let dir = p.dir.join(".lifeboat/cloud");
    for e in walk(&dir) {
        let Ok(text) = std::fs::read_to_string(&e) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        // Rules PUT inline in their NSG are stored as the child resources they are.
        let id = v["id"].as_str().unwrap_or("").to_ascii_lowercase();
        if id.contains(&format!("-{tenant}-"))
            && id.ends_with("/securityrules/allow-hdx-from-gateway")
        {
            return v["body"]["properties"]["access"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }
    panic!("no emergency access rule for {tenant} in {}", dir.display());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out
}

/// Start a slow activation of cwz (time scale 0.05: several seconds) and wait
/// until it holds the tenant lock.
fn activation_holding_the_lock(p: &Project) -> common::Background {
    let activation = p.spawn_env(
        &[
            "--no-progress",
            "activate",
            "cwz",
            "--reason",
            "ransomware",
            "--force",
        ],
        &[("LIFEBOAT_EMULATOR_TIME_SCALE", "0.05")],
    );
    // The lock file outlives its holders (the lock is the OS's, on the open
    // file); it names the holder while one holds it.
    let lock = p.dir.join(".lifeboat/state/locks/tenant-cwz.lock");
    let held_by_activate =
        || std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("\"command\": \"activate\""));
    let t0 = Instant::now();
    while !held_by_activate() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "activate never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    activation
}

/// #15 item 1: started a moment after `activate cwz`, an apply waits for the
/// tenant lock and only then reads the cloud and plans, so it plans against the
/// activated tenant: emergency access stays open, the running front-ends are
/// neither re-created nor deallocated, and status stays ACTIVE without drift.
#[test]
fn an_apply_queued_behind_activate_leaves_the_tenant_active_and_intact() {
    let p = provisioned("queued-apply");
    let mut activation = activation_holding_the_lock(&p);
    let t0 = Instant::now();
    let apply = run(
        &p,
        &[
            "apply",
            "--tenant",
            "cwz",
            "--auto-approve",
            "--lock-timeout",
            "120",
        ],
    );
    let waited = t0.elapsed();
    let activated = activation.0.wait().unwrap();
    assert!(activated.success(), "the activation failed");
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    eprintln!(
        "queued apply waited {:.1} s for the activation, then planned: {}",
        waited.as_secs_f64(),
        apply.stderr.lines().last().unwrap_or("")
    );
    let cwz = status_of(&p, "cwz");
    assert_eq!(cwz["state"], "ACTIVE", "{cwz}");
    assert_eq!(cwz["power"]["running"], 20, "{cwz}");
    assert_eq!(cwz["drift"], 0, "{cwz}");
    assert_eq!(access_rule(&p, "cwz"), "Allow");
}

/// #15 item 1: a destroy queued behind `activate` is refused once it holds the
/// lock and sees the tenant activated; nothing is deleted.
#[test]
fn a_destroy_queued_behind_activate_is_refused_and_deletes_nothing() {
    let p = provisioned("queued-destroy");
    let mut activation = activation_holding_the_lock(&p);
    let destroy = run(
        &p,
        &[
            "destroy",
            "--tenant",
            "cwz",
            "--auto-approve",
            "--allow-data-loss",
            "cwz",
            "--outside-window",
            "--lock-timeout",
            "120",
        ],
    );
    assert!(
        activation.0.wait().unwrap().success(),
        "the activation failed"
    );
    assert_eq!(destroy.code, 1, "{}\n{}", destroy.stdout, destroy.stderr);
    assert!(
        destroy.stderr.contains("tenant cwz is activated"),
        "{}",
        destroy.stderr
    );
    let cwz = status_of(&p, "cwz");
    assert_eq!(cwz["state"], "ACTIVE", "{cwz}");
    assert_eq!(cwz["power"]["running"], 20, "{cwz}");
    assert_eq!(access_rule(&p, "cwz"), "Allow");
}

/// #15 item 3: a saved plan edited after `plan --out` (a rule opened to RDP
/// from the internet; a forged delete of another tenant's protected data disk)
/// is refused: what runs is what the plan's recorded inputs produce.
#[test]
fn an_edited_saved_plan_is_refused() {
    let p = Project::example("edited-plan");
    let r = run(&p, &["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let original = p.read("plan.json");
    let plan: Value = serde_json::from_str(&original).unwrap();

    // 1. Open RDP from the internet in an NSG the plan creates.
    let mut rdp = plan.clone();
    let nsg = rdp["changes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["type"] == "Microsoft.Network/networkSecurityGroups")
        .expect("the plan creates an NSG");
    nsg["body"]["properties"]["securityRules"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "rdp", "properties": {
            "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
            "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": "*", "destinationPortRange": "3389"}}));
    p.write("plan.json", serde_json::to_vec_pretty(&rdp).unwrap());
    let r = run(&p, &["apply", "plan.json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not what its recorded inputs produce"),
        "{}",
        r.stderr
    );

    // 2. A forged delete of mst's SQL data disk (the plan creates it).
    let mut forged = plan.clone();
    let mut delete = forged["changes"][0].clone();
    let disk = format!(
        "/subscriptions/{}/resourceGroups/lb-mst-rg/providers/Microsoft.Compute/disks/lb-mst-sql-data01",
        plan["changes"][0]["id"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(2)
            .unwrap()
    );
    delete["id"] = Value::from(disk);
    delete["type"] = Value::from("Microsoft.Compute/disks");
    delete["tenant"] = Value::from("mst");
    delete["action"] = Value::from("delete");
    delete["body"] = Value::Null;
    forged["changes"].as_array_mut().unwrap().push(delete);
    p.write("plan.json", serde_json::to_vec_pretty(&forged).unwrap());
    let r = run(&p, &["apply", "plan.json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not what its recorded inputs produce")
            && r.stderr.contains("lb-mst-sql-data01"),
        "{}",
        r.stderr
    );
    // Nothing was written: the untouched plan still applies.
    p.write("plan.json", &original);
    let r = run(&p, &["apply", "plan.json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
}

/// #15 item 8: `lifeboat activate … | head -2` used to panic after preflight
/// (exit 101) and leave the tenant ACTIVATING. The pipe closing changes
/// nothing now: the activation finishes and exits 0.
#[test]
fn a_closed_output_pipe_never_stops_an_activation_halfway() {
    let p = provisioned("closed-pipe");
    let bin = env!("CARGO_BIN_EXE_lifeboat");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{bin}' -C '{}' --no-progress activate rst --reason x --force 2>&1 | head -2 >/dev/null; echo ${{PIPESTATUS[0]}}",
            p.dir.display()
        ))
        .env("LIFEBOAT_EMULATOR_TIME_SCALE", "0.001")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(code, "0", "lifeboat's exit status behind the closed pipe");
    let rst = status_of(&p, "rst");
    assert_eq!(rst["state"], "ACTIVE", "{rst}");
    assert_eq!(rst["power"]["running"], 12, "{rst}");
}

/// #15 item 9: a usage error exits 1, never 2 (which `--detailed-exitcode`
/// pipelines read as "changes present"); help still exits 0.
#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let p = Project::example("usage");
    let r = run(&p, &["plan", "--detailed-exitcod"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--detailed-exitcod"), "{}", r.stderr);
    let r = run(&p, &["no-such-command"]);
    assert_eq!(r.code, 1);
    let r = run(&p, &["plan", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--detailed-exitcode"));
}

/// #15 item 13: `--lock-timeout 1e300` used to panic, `NaN` gave a misleading
/// message; both are clear errors now, before anything is read or written.
#[test]
fn absurd_lock_timeouts_are_clear_errors() {
    let p = Project::example("timeouts");
    for (value, says) in [
        ("1e300", "too long to wait"),
        ("NaN", "must be a number of seconds"),
    ] {
        let r = run(&p, &["apply", "--auto-approve", "--lock-timeout", value]);
        assert_eq!(r.code, 1, "{value}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{value}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    assert!(
        !p.dir.join(".lifeboat/cloud").exists(),
        "nothing was started"
    );
}

/// #15 item 14: drilling a tenant whose front-ends do not exist used to pass
/// preflight and print 24 raw ARM 404s, and the failed drill then showed in
/// `status` with an RTO and no "failed". Preflight now says what is missing in
/// one line, changes nothing, and the failed drill reads as failed everywhere.
#[test]
fn a_drill_of_an_unready_tenant_fails_in_preflight_and_reads_as_failed() {
    let p = Project::example("unready");
    // Provisioned, but no HiX image was built: the front-ends wait for it.
    let r = run(&p, &["apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&p, &["roster", "apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(
        &p,
        &["--no-progress", "drill", "rst", "--reason", "quarterly"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("not ready to activate: 12 of 12 front-end(s) do not exist"),
        "{all}"
    );
    assert!(!all.contains("ResourceNotFound"), "no raw ARM 404s: {all}");
    assert!(all.len() < 8_000, "{} bytes of output", all.len());
    let rst = status_of(&p, "rst");
    assert_eq!(rst["state"], "STANDBY", "nothing was changed: {rst}");
    assert_eq!(rst["last_drill_passed"], false, "{rst}");
    let table = run(&p, &["status", "--tenant", "rst"]).stdout;
    assert!(
        table.contains("failed") || table.contains("FAILED"),
        "{table}"
    );
    let prom = run(&p, &["status", "--format", "prometheus"]).stdout;
    assert!(
        prom.contains("lifeboat_last_drill_passed{tenant=\"rst\"} 0"),
        "{prom}"
    );
}

/// #15 item 12: control characters in a manifest name (which lifeboat used to
/// sign into a catalog no XML parser accepts) and in a reason are refused with
/// file, line and column; hostile but printable text in a waiver reason reaches
/// the Markdown plan (the pull request comment) as text, unable to close
/// `<details>` or hide the rest in `<!--`.
#[test]
fn hostile_text_is_refused_or_shown_as_text() {
    let p = Project::example("hostile-text");
    p.edit(
        "tenants/cwz.yaml",
        "name: Canisius Wilhelmina Ziekenhuis",
        "name: \"Canisius\\e[2K\\rWilhelmina\"",
    );
    let r = run(&p, &["validate"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    r.expect_error("cwz.yaml:5:9: metadata.name", "control character U+001B");

    let p = Project::example("hostile-reason");
    let r = run(&p, &["activate", "cwz", "--reason", "outage\u{1b}[2K"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("control character U+001B"),
        "{}",
        r.stderr
    );
    assert!(
        !p.dir.join(".lifeboat/cloud").exists(),
        "nothing was started"
    );

    p.edit(
        "tenants/cwz.yaml",
        "  contacts:",
        "  exceptions:\n    - { rule: CIS-7.1, reason: \"ok</summary></details><!-- hidden\", expires: 2027-03-01 }\n  contacts:",
    );
    let r = run(&p, &["plan", "--format", "markdown"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("<!--"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("ok&lt;/summary&gt;&lt;/details&gt;&lt;\\!-- hidden"),
        "{}",
        r.stdout
    );
}

/// #15 item 13: a tenant manifest that is a symbolic link out of the project
/// (here to a file holding a secret) is refused without reading or echoing it.
#[test]
fn a_symlinked_manifest_outside_the_project_is_refused_unread() {
    let p = Project::example("symlink");
    let secret = p.dir.with_extension("secret.yaml");
    std::fs::write(
        &secret,
        "apiVersion: lifeboat/v1\nkind: Tenant\nmetadata: { id: zz, name: TOPSECRET-VALUE }\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, p.dir.join("tenants/zz.yaml")).unwrap();
    let r = run(&p, &["validate"]);
    let _ = std::fs::remove_file(&secret);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("outside the project"), "{}", r.stderr);
    assert!(!r.stderr.contains("TOPSECRET"), "{}", r.stderr);
    // A link inside the project is fine.
    std::fs::remove_file(p.dir.join("tenants/zz.yaml")).unwrap();
    std::fs::rename(p.dir.join("tenants/rst.yaml"), p.dir.join("rst.yaml")).unwrap();
    std::os::unix::fs::symlink(p.dir.join("rst.yaml"), p.dir.join("tenants/rst.yaml")).unwrap();
    let r = run(&p, &["validate"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// #15 item 11: the emulator answered anyone (an anonymous PUT was accepted),
/// bound any address and buffered any body. Now: its token or 401, loopback
/// unless `--allow-remote`, bodies over 4 MiB refused with 413.
#[test]
fn the_emulator_answers_only_its_token_on_loopback_with_bounded_bodies() {
    let p = Project::example("emulator-door");
    let r = p.run_env(
        &["emulator", "serve", "--listen", "0.0.0.0:0"],
        &[("LIFEBOAT_EMULATOR_TOKEN", "tok")],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a loopback address"), "{}", r.stderr);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _emu = p.spawn_env(
        &[
            "emulator",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[("LIFEBOAT_EMULATOR_TOKEN", "tok")],
    );
    let url = format!(
        "http://127.0.0.1:{port}/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/intruder?api-version=2021-04-01"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    lifeboat_engine::cloud::install_crypto();
    let http = reqwest::Client::new();
    rt.block_on(async {
        let t0 = Instant::now();
        let anonymous = loop {
            match http
                .put(&url)
                .json(&serde_json::json!({"location": "westeurope"}))
                .send()
                .await
            {
                Ok(r) => break r,
                Err(_) if t0.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("the emulator never answered: {e}"),
            }
        };
        assert_eq!(anonymous.status(), 401);
        let wrong = http
            .put(&url)
            .bearer_auth("guess")
            .json(&serde_json::json!({"location": "westeurope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let v: Value = wrong.json().await.unwrap();
        assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
        let got = http.get(&url).bearer_auth("tok").send().await.unwrap();
        assert_eq!(got.status(), 404, "the anonymous PUT created nothing");
        let huge = vec![b' '; 5 * 1024 * 1024];
        let big = http.put(&url).bearer_auth("tok").body(huge).send().await;
        // Refused from its Content-Length, before the body is read: the client
        // sees the 413, or the connection closed under its upload.
        match big {
            Ok(r) => assert_eq!(r.status(), 413),
            Err(e) => assert!(e.is_request(), "{e}"),
        }
        let ok = http
            .put(&url)
            .bearer_auth("tok")
            .json(&serde_json::json!({"location": "westeurope"}))
            .send()
            .await
            .unwrap();
        assert!(ok.status().is_success(), "{}", ok.status());
    });
}

/// A tenant template with one more document (a #15 item 6 attack).
fn with_tenant_document(name: &str, doc: &str) -> Project {
    let p = Project::example(name);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let net = std::fs::read_to_string(root.join("templates/tenant/network.yaml.tera")).unwrap();
    p.write(
        "templates/tenant/network.yaml.tera",
        format!("{}\n---\n{doc}\n", net.trim_end()),
    );
    p
}

/// #15 item 6: the policy gate judges rules declared as their own resources,
/// sees two /1 prefixes as the internet, and refuses roles that grant access.
#[test]
fn the_policy_gate_sees_child_rules_split_internet_and_owner_roles() {
    let p = with_tenant_document(
        "gate",
        r#"type: Microsoft.Network/networkSecurityGroups/securityRules
apiVersion: "2024-05-01"
resourceGroup: {{ names.rg | json }}
name: {{ (names.nsgFrontend ~ "/sneaky-rdp") | json }}
body:
  properties: { priority: 95, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefixes: ["0.0.0.0/1", "128.0.0.0/1"], sourcePortRange: "*", destinationAddressPrefix: "*", destinationPortRange: "3389" }
---
type: Microsoft.Authorization/roleAssignments
apiVersion: "2022-04-01"
scope: {{ ("/subscriptions/" ~ platform.subscriptionId ~ "/resourceGroups/" ~ names.rg) | json }}
name: {{ (guid(seed=names.rg ~ "/owner")) | json }}
body:
  properties:
    roleDefinitionId: {{ ("/subscriptions/" ~ platform.subscriptionId ~ "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635") | json }}
    principalId: 00000000-0000-0000-0000-0000000000aa
    principalType: User"#,
    );
    let r = run(&p, &["--output", "json", "check"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let hits = |rule: &str, needle: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == rule && f["resource"].as_str().unwrap_or("").contains(needle))
            .count()
    };
    assert_eq!(
        hits("CIS-6.1", "/securityRules/sneaky-rdp"),
        3,
        "one per tenant"
    );
    assert_eq!(hits("LB-ROLE-PRIVILEGED", "roleAssignments"), 3);
}

/// #15 item 6: a tenant template that writes into another tenant's resource
/// group, outside a resource group, or into a region the platform does not use
/// is a render error: nothing is planned.
#[test]
fn templates_are_confined_to_what_their_layer_owns() {
    for (name, doc, says) in [
        (
            "confine-rg",
            r#"type: Microsoft.Network/networkSecurityGroups
apiVersion: "2024-05-01"
resourceGroup: lb-mst-rg
name: {{ ("planted-" ~ tenant.id) | json }}
location: {{ platform.region | json }}
body: {}"#,
            "which its tenant layer (cwz) does not own",
        ),
        (
            "confine-region",
            r#"type: Microsoft.Network/networkSecurityGroups
apiVersion: "2024-05-01"
resourceGroup: {{ names.rg | json }}
name: abroad
location: eastus
body: {}"#,
            "is located in `eastus`",
        ),
        (
            "confine-subscription",
            r#"type: Microsoft.Authorization/roleAssignments
apiVersion: "2022-04-01"
scope: {{ ("/subscriptions/" ~ platform.subscriptionId) | json }}
name: {{ (guid(seed=names.rg ~ "/sub-reader")) | json }}
body:
  properties:
    roleDefinitionId: {{ ("/subscriptions/" ~ platform.subscriptionId ~ "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7") | json }}
    principalId: 00000000-0000-0000-0000-0000000000aa"#,
            "is not inside a resource group",
        ),
    ] {
        let p = with_tenant_document(name, doc);
        let r = run(&p, &["plan"]);
        assert_eq!(r.code, 1, "{name}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("templates/tenant/network.yaml.tera")
                || r.stderr.contains("tenant/network.yaml.tera"),
            "{name}: {}",
            r.stderr
        );
    }
}

/// The head a command published on stderr (`Audit trail head: N:HASH`).
fn published_head(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("Audit trail head: "))
        .unwrap_or_else(|| panic!("no audit head published:\n{}", r.stderr))
        .trim()
        .to_string()
}

/// #15 item 7: with the head a command published, `audit verify` detects a
/// trail cut short (a hospital's `destroy` removed), deleted, or rewritten and
/// re-sealed with plain SHA-256; without one it cannot (documented).
#[test]
fn a_published_head_catches_a_truncated_deleted_or_resealed_trail() {
    use sha2::{Digest, Sha256};
    let p = Project::example("audit-head");
    let first = run(&p, crate::common::APPLY_RST);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = run(
        &p,
        &[
            "--no-progress",
            "destroy",
            "--tenant",
            "rst",
            "--auto-approve",
            "--outside-window",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let head = published_head(&second);
    assert!(head.starts_with("2:"), "{head}");
    let verify = |expect: Option<&str>| {
        let mut args = vec!["audit", "verify"];
        if let Some(h) = expect {
            args.extend(["--expect-head", h]);
        }
        run(&p, &args)
    };
    assert_eq!(verify(Some(&head)).code, 0);
    let trail = ".lifeboat/state/audit.jsonl";
    let original = p.read(trail);
    let lines: Vec<&str> = original.lines().collect();

    // Cut short: the destroy's record removed.
    p.write(trail, format!("{}\n", lines[0]));
    assert_eq!(
        verify(None).code,
        0,
        "alone, a shorter chain is still a chain"
    );
    let r = verify(Some(&head));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("records were removed"), "{}", r.stderr);

    // Deleted.
    p.remove(trail);
    let r = verify(Some(&head));
    assert_eq!(r.code, 1, "{}", r.stdout);

    // Rewritten (the destroy now "refused") and re-sealed with plain SHA-256.
    let reseal = |json: &str| {
        let hash = lifeboat_core::id::hex(&Sha256::digest(json.as_bytes()));
        (
            format!("{},\"hash\":\"{hash}\"}}", &json[..json.len() - 1]),
            hash,
        )
    };
    let unsealed = |line: &str| line[..line.len() - ",\"hash\":\"\"}".len() - 64].to_string() + "}";
    let (l0, h0) = reseal(&unsealed(lines[0]));
    let forged = unsealed(lines[1]).replace("\"outcome\":\"succeeded\"", "\"outcome\":\"refused\"");
    let forged = forged.replace(
        &lines[1][lines[1].find("\"prev\":\"").unwrap()..][..72],
        &format!("\"prev\":\"{h0}"),
    );
    let (l1, _) = reseal(&forged);
    p.write(trail, format!("{l0}\n{l1}\n"));
    assert_eq!(verify(None).code, 0, "re-sealed: the chain alone holds");
    let r = verify(Some(&head));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("rewritten"), "{}", r.stderr);

    // The genuine trail still matches.
    p.write(trail, &original);
    assert_eq!(verify(Some(&head)).code, 0);
}

/// #15 item 4: tags alone never make a resource lifeboat's to delete, and
/// protection is not lost with a tag. A hospital's own NSG tagged
/// `lifeboat-managed=true, lifeboat-layer=shared` in the shared resource group is
/// kept (lifeboat never recorded creating it); rst's SQL data disk with its
/// `lifeboat-protected` tag removed and rst's manifest deleted is still kept
/// without `--allow-data-loss` (the ledger recorded it as protected).
#[test]
fn tags_alone_neither_hand_over_a_resource_nor_take_away_protection() {
    use lifeboat_emulator::store::{Store, StoredResource};
    let p = Project::example("ownership");
    let r = run(&p, &["--no-progress", "apply", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = Store::for_project(&p.dir);
    let resources = store.list().unwrap();
    let rg = resources
        .iter()
        .find(|r| r.id.is_resource_group() && r.id.name() == "lb-shared-rg")
        .unwrap();
    let foreign_id = format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/hospital-own-nsg",
        rg.id
    );
    store
        .put(&StoredResource::new(
            lifeboat_core::id::ResourceId::parse(&foreign_id).unwrap(),
            "Microsoft.Network/networkSecurityGroups".into(),
            "2024-05-01".into(),
            serde_json::json!({"location": "westeurope", "tags": {"lifeboat-managed": "true", "lifeboat-layer": "shared"},
                "properties": {"provisioningState": "Succeeded", "securityRules": []}}),
        ))
        .unwrap();
    let mut disk = resources
        .into_iter()
        .find(|r| r.id.name() == "lb-rst-sql-data01")
        .unwrap();
    disk.body["tags"]
        .as_object_mut()
        .unwrap()
        .remove("lifeboat-protected");
    store.put(&disk).unwrap();
    p.remove("tenants/rst.yaml");

    let r = run(&p, &["--output", "json", "plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    let deletes: Vec<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        !deletes.iter().any(|d| d.ends_with("/hospital-own-nsg")),
        "{deletes:?}"
    );
    assert!(
        !deletes.iter().any(|d| d.ends_with("/lb-rst-sql-data01")),
        "{deletes:?}"
    );
    assert!(!deletes.is_empty(), "rst's unprotected resources still go");
    let r = run(
        &p,
        &[
            "--no-progress",
            "apply",
            "--auto-approve",
            "--outside-window",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(crate::apply::has_resource(&p, "/hospital-own-nsg"));
    assert!(crate::apply::has_resource(&p, "/disks/lb-rst-sql-data01"));
    assert!(!crate::apply::has_resource(
        &p,
        "/virtualMachines/lb-rst-sql"
    ));
}
