//! `lifeboat plan` and `export terraform` through the binary, against the embedded
//! local cloud's store: golden output, JSON shape, Markdown, exit codes, drift,
//! protection of data resources, scoping, template errors.

use crate::common;

use common::Project;
use lifeboat_emulator::store::{Store, StoredResource};
use serde_json::Value;

/// What ARM would hand back for a body: write-only secrets gone, references
/// resolved, server-side fields added.
fn as_returned(body: &Value) -> Value {
    match body {
        Value::Object(m) if m.contains_key("$secret") => Value::Null,
        Value::Object(m) if m.contains_key("$ref") => {
            Value::String("00000000-1111-2222-3333-444444444444".into())
        }
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let v = as_returned(v);
                if !v.is_null() {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(as_returned).collect()),
        v => v.clone(),
    }
}

/// Put every resource of a saved plan into the local cloud, as if applied.
fn seed_from_plan(p: &Project, plan_file: &str) {
    let plan: Value = serde_json::from_str(&p.read(plan_file)).unwrap();
    let store = Store::for_project(&p.dir);
    // As if lifeboat had created them: its ledger records them (and which are
    // protected), or it would never delete any of them.
    let mut ledger = String::new();
    for c in plan["changes"].as_array().unwrap() {
        ledger.push_str(
            &serde_json::json!({"id": c["id"], "protected": c["protected"].as_bool().unwrap_or(false) || c["lifecycle"]["preventDestroy"].as_bool().unwrap_or(false), "at": "2026-12-01T00:00:00Z"})
                .to_string(),
        );
        ledger.push('\n');
    }
    p.write(".lifeboat/state/ledger.jsonl", ledger);
    for c in plan["changes"].as_array().unwrap() {
        let mut body = as_returned(&c["body"]);
        if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("provisioningState".into(), "Succeeded".into());
        }
        lifeboat_emulator::arm::put_as_applied(
            &store,
            StoredResource::new(
                serde_json::from_value(c["id"].clone()).unwrap(),
                c["type"].as_str().unwrap().into(),
                c["api_version"].as_str().unwrap().into(),
                body,
            ),
        )
        .unwrap();
    }
}

fn golden(name: &str, actual: &str, p: &Project) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual = actual.replace(&p.dir.display().to_string(), "<project>");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{name} differs from the golden file; re-run with UPDATE_GOLDEN=1 after checking:\n{actual}"
    );
}

#[test]
fn golden_plan_for_the_example_tenants() {
    let p = Project::example("golden");
    let r = p.run(&["plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    golden("plan-examples.txt", &r.stdout, &p);
    assert!(
        r.stdout.contains("# tenant cwz: 50 to create"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Plan: 193 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.")
    );
}

#[test]
fn json_has_exactly_the_documented_shape() {
    let p = Project::example("json");
    let r = p.run(&["--output", "json", "plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["format_version"], "1");
    let summary: Vec<&str> = v["summary"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(summary, ["create", "update", "replace", "delete", "no_op"]);
    // The 62 front-ends wait for their HiX images (listed under `deferred`).
    assert_eq!(v["summary"]["create"], 193);
    assert_eq!(v["deferred"].as_array().unwrap().len(), 62);
    // Two Resource Graph queries (resources and role assignments); nothing
    // exists yet, so no parent to list non-indexed children of. The three HiX
    // image versions the front-ends need have no row, so each is read directly
    // (it may have been built a moment ago); the region's Resource SKUs and
    // its vCPU usages are a list each.
    assert_eq!(v["requests"]["graph_pages"], 2);
    assert_eq!(v["requests"]["gets"], 3);
    assert_eq!(v["requests"]["lists"], 2);
    assert_eq!(v["requests"]["read"], 7);
    assert_eq!(v["requests"]["write"], 193);
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 193);
    for c in changes {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "type", "tenant", "layer", "action", "diff"]);
        assert!(
            c["id"]
                .as_str()
                .unwrap()
                .starts_with("/subscriptions/3f2a9c1e-")
        );
        assert!(["shared", "tenant", "image"].contains(&c["layer"].as_str().unwrap()));
        assert_eq!(c["layer"] == "shared", c["tenant"].is_null());
        assert_eq!(c["action"], "create");
    }
    // --format json works without --output json too.
    let r2 = p.run(&["plan", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&r2.stdout).unwrap(), v);
}

#[test]
fn markdown_has_one_collapsible_section_per_tenant() {
    let p = Project::example("markdown");
    let r = p.run(&["plan", "--format", "markdown"]);
    assert_eq!(r.code, 0);
    let md = &r.stdout;
    assert!(md.starts_with("### lifeboat plan\n"));
    assert!(md.contains("| 193 | 0 | 0 | 0 | 0 |"));
    for section in ["shared layer", "tenant cwz", "tenant mst", "tenant rst"] {
        assert!(
            md.contains(&format!("<details><summary><b>{section}</b>")),
            "{section} missing:\n{md}"
        );
    }
    assert_eq!(md.matches("<details").count(), 4);
    assert_eq!(md.matches("</details>").count(), 4);
    assert_eq!(md.matches("```diff").count(), 4);
    // Every section the human plan has, the pull request's comment has too.
    for heading in [
        "**Shared resources that change**",
        "**vCPU quota**",
        "**Policy findings**",
        "**Cost**",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    let human = p.run(&["plan"]).stdout;
    assert!(human.contains("Shared resources that change"));
    assert!(human.contains("vCPU quota"));
}

#[test]
fn applied_state_plans_empty_then_drift_shows_the_property() {
    let p = Project::example("noop");
    let r = p.run(&["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = p.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "changes pending must exit 2");
    seed_from_plan(&p, "plan.json");
    let r = p.run(&["plan", "--detailed-exitcode"]);
    // Nothing to change, but the 62 front-ends still wait for their images:
    // pending, so 2.
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "Nothing to apply now, but not done: 62 resource(s) wait (see ⧗ above); 193 up to date."
        ),
        "{}",
        r.stdout
    );

    // Someone opens SQL to a wider port range in the portal.
    let store = Store::for_project(&p.dir);
    // (A rule PUT inline in its NSG is stored as the child resource it is.)
    let rule = store
        .list()
        .unwrap()
        .into_iter()
        .find(|r| {
            r.id.as_str()
                .ends_with("lb-cwz-sql-nsg/securityRules/allow-sql-from-frontends")
        })
        .unwrap();
    let mut changed = rule.clone();
    changed.body["properties"]["destinationPortRange"] = "1433-1434".into();
    store.put(&changed).unwrap();
    let r = p.run(&["plan", "--detailed-exitcode", "--tenant", "cwz"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains(
            "~ properties.securityRules[allow-sql-from-frontends].properties.destinationPortRange: \"1433-1434\" -> \"1433\""
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 49 unchanged."),
        "{}",
        r.stdout
    );
    let r = p.run(&["--output", "json", "plan", "--tenant", "cwz"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let upd: Vec<&Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update")
        .collect();
    assert_eq!(upd[0]["diff"][0]["before"], "1433-1434");
    assert_eq!(upd[0]["diff"][0]["after"], "1433");
}

#[test]
fn removing_a_manifest_never_deletes_protected_data_without_the_flag() {
    let p = Project::example("protect");
    p.run(&["plan", "--out", "plan.json"]);
    seed_from_plan(&p, "plan.json");
    p.remove("tenants/rst.yaml");
    let r = p.run(&["--output", "json", "plan"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let deleted: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let kept: Vec<&str> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(!deleted.is_empty());
    assert!(
        deleted
            .iter()
            .any(|d| d.ends_with("/networkInterfaces/lb-rst-fe01-nic"))
    );
    let parent_type = |id: &str| id.rsplit('/').nth(1).unwrap_or_default().to_string();
    for (what, is) in [
        (
            "resource group",
            Box::new(|d: &str| d.ends_with("/resourceGroups/lb-rst-rg"))
                as Box<dyn Fn(&str) -> bool>,
        ),
        (
            "SQL data disk",
            Box::new(|d: &str| d.ends_with("/disks/lb-rst-sql-data01")),
        ),
        (
            "key vault",
            Box::new(move |d: &str| parent_type(d) == "vaults"),
        ),
        (
            "disk key",
            Box::new(|d: &str| d.ends_with("/keys/cmk-disks")),
        ),
        (
            "backup account",
            Box::new(|d: &str| d.contains("/storageAccounts/lbrstb") && d.split('/').count() == 9),
        ),
        (
            "backup container",
            Box::new(|d: &str| d.ends_with("/containers/logshipping")),
        ),
    ] {
        assert!(!deleted.iter().any(|d| is(d)), "{what} planned for delete");
        assert!(
            kept.iter().any(|k| is(k)),
            "{what} not listed as kept: {kept:?}"
        );
    }
    // Protection comes from the cloud's tags, so another tenant's flag does not help.
    let r = p.run(&["--output", "json", "plan", "--allow-data-loss", "cwz"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(!v["kept"].as_array().unwrap().is_empty());
    let r = p.run(&["--output", "json", "plan", "--allow-data-loss", "rst"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["kept"].as_array().unwrap().is_empty());
    assert!(v["changes"].as_array().unwrap().iter().any(|c| {
        c["action"] == "delete"
            && c["id"]
                .as_str()
                .unwrap()
                .ends_with("/disks/lb-rst-sql-data01")
    }));
}

#[test]
fn replacing_a_protected_disk_is_refused() {
    let p = Project::example("replace");
    p.run(&["plan", "--out", "plan.json"]);
    seed_from_plan(&p, "plan.json");
    let store = Store::for_project(&p.dir);
    let disk = store
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.id.name() == "lb-mst-sql-data01")
        .unwrap();
    let mut moved = disk.clone();
    moved.body["zones"] = serde_json::json!(["2"]);
    store.put(&moved).unwrap();
    let r = p.run(&["plan", "--tenant", "mst"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("lb-mst-sql-data01"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow-data-loss mst"), "{}", r.stderr);
    let r = p.run(&["plan", "--tenant", "mst", "--allow-data-loss", "mst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("-/+ Microsoft.Compute/disks  lb-mst-sql-data01"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("# forces replacement"), "{}", r.stdout);
}

#[test]
fn scoping_by_tenant_and_shared() {
    let p = Project::example("scope");
    let count = |args: &[&str]| -> (u64, Vec<String>) {
        let mut a = vec!["--output", "json", "plan"];
        a.extend_from_slice(args);
        let v: Value = serde_json::from_str(&p.run(&a).stdout).unwrap();
        let layers = v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["tenant"].as_str().unwrap_or("shared").to_string())
            .collect();
        (v["summary"]["create"].as_u64().unwrap(), layers)
    };
    // A hospital is onboarded onto an existing shared layer: before it exists,
    // a tenant's plan (or apply) is refused with the command to run, and
    // nothing is written.
    for cmd in [
        &["plan", "--tenant", "cwz"][..],
        &["apply", "--tenant", "cwz", "--auto-approve"],
    ] {
        let r = p.run(cmd);
        assert_eq!(r.code, 1, "{cmd:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("the shared layer is not provisioned yet (lb-shared-rg does not exist): tenant cwz need(s) it. Run `lifeboat apply --shared` first"),
            "{}",
            r.stderr
        );
    }
    assert!(
        Store::for_project(&p.dir).list().unwrap().is_empty(),
        "nothing written"
    );
    let r = p.run(&["apply", "--shared", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Tenant and image layers, without the 20 front-ends waiting for their image.
    let (n, owners) = count(&["--tenant", "cwz"]);
    assert_eq!(n, 50);
    assert!(owners.iter().all(|o| o == "cwz"));
    let (n, owners) = count(&["--shared"]);
    assert_eq!(n, 0, "applied");
    assert!(owners.iter().all(|o| o == "shared"));
    let (n, _) = count(&["--tenant", "cwz", "--tenant", "rst"]);
    assert_eq!(n, 50 + 42);
    let r = p.run(&["plan", "--tenant", "cwx"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("did you mean `cwz`"), "{}", r.stderr);
}

#[test]
fn saved_plan_records_its_inputs_and_contains_no_literal_secrets() {
    let p = Project::example("saved");
    let r = p.run(&["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 0);
    let plan: Value = serde_json::from_str(&p.read("plan.json")).unwrap();
    let manifests = plan["inputs"]["manifests"].as_object().unwrap();
    assert_eq!(manifests.len(), 4);
    assert!(manifests.values().all(|h| h.as_str().unwrap().len() == 64));
    assert!(
        plan["inputs"]["templates"]
            .as_object()
            .unwrap()
            .contains_key("tenant/sql.yaml.tera")
    );
    let text = p.read("plan.json");
    assert!(text.contains("\"$secret\""));
    for c in plan["changes"].as_array().unwrap() {
        if c["type"] == "Microsoft.Compute/virtualMachines" {
            assert!(
                c["body"]["properties"]["osProfile"]["adminPassword"]["$secret"]["vault"]
                    .is_string()
            );
        }
    }
}

#[test]
fn template_overrides_and_their_errors() {
    let p = Project::example("templates");
    // An override with a typo in a variable name.
    let fe = include_str!("../../templates/tenant/frontends.yaml.tera");
    p.write(
        "templates/tenant/frontends.yaml.tera",
        fe.replace("fe.size | json", "fe.sise | json"),
    );
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("tenant/frontends.yaml.tera"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("undefined"), "{}", r.stderr);

    // A cycle through dependsOn is named.
    p.write(
        "templates/tenant/frontends.yaml.tera",
        fe.replace(
            "dependsOn: [{{ ids.desRoleAssignment | json }}]",
            "dependsOn: [{{ ids.desRoleAssignment | json }}]\n# cycle",
        ),
    );
    let sql = include_str!("../../templates/tenant/sql.yaml.tera");
    p.write("templates/tenant/sql.yaml.tera", sql.replace(
        "body:\n  properties:\n    enableAcceleratedNetworking: true",
        "dependsOn: [{{ ids.sqlVm | json }}]\nbody:\n  properties:\n    enableAcceleratedNetworking: true",
    ));
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("dependency cycle"), "{}", r.stderr);
    assert!(
        r.stderr.contains("networkInterfaces/lb-cwz-sql-nic")
            && r.stderr.contains("virtualMachines/lb-cwz-sql"),
        "{}",
        r.stderr
    );

    // A literal password is refused.
    p.write(
        "templates/tenant/sql.yaml.tera",
        sql.replace(
            "adminPassword: { $secret: { vault: {{ ids.keyVault | json }}, name: sql-admin } }",
            "adminPassword: \"Welkom01!\"",
        ),
    );
    let r = p.run(&["validate"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("properties.osProfile.adminPassword: secrets must be Key Vault references"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Welkom01!"), "{}", r.stderr);
}

#[test]
fn export_terraform_writes_azapi_with_references() {
    let p = Project::example("export");
    let out = p.dir.join("tf");
    let r = p.run(&["export", "terraform", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "providers.tf.json",
            "shared.tf.json",
            "tenant-cwz.tf.json",
            "tenant-mst.tf.json",
            "tenant-rst.tf.json"
        ]
    );
    let providers: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("providers.tf.json")).unwrap())
            .unwrap();
    assert_eq!(
        providers["terraform"]["required_providers"]["azapi"]["source"],
        "Azure/azapi"
    );
    assert!(providers["terraform"]["backend"]["azurerm"].is_object());
    assert_eq!(
        providers["variable"]["secret_lb_cwz_kv7fc6_sql_admin"]["sensitive"],
        true
    );

    let cwz: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tenant-cwz.tf.json")).unwrap())
            .unwrap();
    let res = cwz["resource"]["azapi_resource"].as_object().unwrap();
    // Tenant layer (68) and image layer (definition + Image Builder template).
    assert_eq!(res.len(), 70);
    let vm = &res["cwz_virtualmachines_lb_cwz_sql"];
    assert_eq!(vm["type"], "Microsoft.Compute/virtualMachines@2024-07-01");
    assert_eq!(
        vm["parent_id"],
        "${azapi_resource.cwz_resourcegroups_lb_cwz_rg.id}"
    );
    assert_eq!(vm["location"], "westeurope");
    assert_eq!(vm["tags"]["lifeboat-tenant"], "cwz");
    assert!(vm["body"].get("tags").is_none() && vm["body"].get("location").is_none());
    assert_eq!(
        vm["body"]["properties"]["networkProfile"]["networkInterfaces"][0]["id"],
        "${azapi_resource.cwz_networkinterfaces_lb_cwz_sql_nic.id}"
    );
    assert_eq!(
        vm["body"]["properties"]["osProfile"]["adminPassword"],
        "${var.secret_lb_cwz_kv7fc6_sql_admin}"
    );
    // Explicit dependsOn that no reference covers is kept as depends_on.
    assert!(
        vm["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("roleassignments"))
    );
    // Sub-resource ids keep their tail after the reference.
    let nic = &res["cwz_networkinterfaces_lb_cwz_sql_nic"];
    assert_eq!(
        nic["body"]["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"],
        "${azapi_resource.cwz_virtualnetworks_lb_cwz_vnet.id}/subnets/sql"
    );
    // Runtime values are exported and referenced.
    let ra = res
        .iter()
        .find(|(k, _)| k.contains("roleassignments"))
        .unwrap()
        .1;
    assert_eq!(
        ra["body"]["properties"]["principalId"],
        "${azapi_resource.cwz_diskencryptionsets_lb_cwz_des.output.identity.principalId}"
    );
    assert_eq!(
        res["cwz_diskencryptionsets_lb_cwz_des"]["response_export_values"],
        serde_json::json!(["identity.principalId"])
    );
    assert_eq!(
        res["cwz_disks_lb_cwz_sql_data01"]["lifecycle"][0]["prevent_destroy"],
        true
    );
    // The hub peering lives under the shared hub VNet, referenced across files.
    let peer = res
        .iter()
        .find(|(k, _)| k.contains("hub_to_lb_cwz"))
        .unwrap()
        .1;
    assert_eq!(
        peer["parent_id"],
        "${azapi_resource.shared_virtualnetworks_lb_hub_vnet.id}"
    );
    let kv = &res["cwz_vaults_lb_cwz_kv7fc6"];
    assert_eq!(
        kv["body"]["properties"]["tenantId"],
        "${data.azapi_client_config.current.tenant_id}"
    );
}

/// Every disruptive change is named, in the human plan and in the Markdown
/// one a reviewer reads in the pull request.
#[test]
fn disruptive_changes_are_named_in_every_format() {
    let p = Project::example("disruptions-named");
    let r = p.run(&["plan", "--out", "plan.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    seed_from_plan(&p, "plan.json");
    p.edit(
        "tenants/rst.yaml",
        "size: Standard_E8ds_v5",
        "size: Standard_E16ds_v5",
    );
    let r = p.run(&["plan", "--tenant", "rst"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("! rst: 1 disruptive change(s)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("      lb-rst-sql resized (the VM restarts)"),
        "{}",
        r.stdout
    );
    let r = p.run(&["plan", "--tenant", "rst", "--format", "markdown"]);
    assert!(r.stdout.contains("**Disruptive changes**"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("- rst: `lb-rst-sql` resized \\(the VM restarts\\)"),
        "{}",
        r.stdout
    );
}

/// Resource Graph does not index Key Vault keys, blob services, containers or
/// diagnostic settings: a plan lists them under each parent. Desired parents are
/// listed while the Resource Graph pages still come in, the others (a removed
/// manifest's) after the last page; either way each collection is read once.
#[test]
fn each_non_indexed_collection_is_listed_once_desired_or_removed() {
    let p = Project::example("listed-once");
    assert_eq!(p.run(&["plan", "--out", "plan.json"]).code, 0);
    seed_from_plan(&p, "plan.json");
    let plan: Value = serde_json::from_str(&p.read("plan.json")).unwrap();
    let changes = plan["changes"].as_array().unwrap();
    let lower = |c: &Value| c["type"].as_str().unwrap().to_ascii_lowercase();
    let diagnosed: std::collections::HashSet<String> = changes
        .iter()
        .filter(|c| lower(c) == "microsoft.insights/diagnosticsettings")
        .map(|c| {
            let id = c["id"].as_str().unwrap();
            let target = &id[..id
                .to_ascii_lowercase()
                .find("/providers/microsoft.insights/")
                .unwrap()];
            lifeboat_core::id::ResourceId::parse(target)
                .unwrap()
                .resource_type()
                .to_ascii_lowercase()
        })
        .collect();
    assert!(!diagnosed.is_empty());
    let per_parent = |t: &str| match t {
        "microsoft.keyvault/vaults" => 1,         // keys
        "microsoft.storage/storageaccounts" => 2, // blob services, containers
        _ => 0,
    };
    let expected = |tenant: Option<&str>| -> u64 {
        changes
            .iter()
            .filter(|c| tenant.is_none_or(|t| c["tenant"] == t))
            .map(|c| per_parent(&lower(c)) + u64::from(diagnosed.contains(&lower(c))))
            .sum::<u64>()
            + 1 // the region's Resource SKUs
    };
    let lists = |p: &Project, args: &[&str]| {
        let r = p.run(&[&["--output", "json", "plan"], args].concat());
        assert_eq!(r.code, 0, "{}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["requests"]["lists"].as_u64().unwrap()
    };
    assert_eq!(lists(&p, &[]), expected(None), "every manifest present");
    // A tenant's plan lists that tenant's collections, not the fleet's.
    let cwz = expected(Some("cwz"));
    assert!(cwz > 1 && cwz < expected(None));
    assert_eq!(lists(&p, &["--tenant", "cwz"]), cwz, "cwz alone");
    p.remove("tenants/rst.yaml");
    assert_eq!(lists(&p, &[]), expected(None), "rst's manifest removed");
}
