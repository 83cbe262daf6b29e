//! Capacity as Azure has it: per-region vCPU quota by VM family (deallocated VMs
//! count), `QuotaExceeded` on a VM PUT that does not fit, a plan that shows what
//! it needs against what is free and an apply that refuses it before writing;
//! `AllocationFailed` on start, retried by `activate`, which names the front-ends
//! it could not start and keeps the others serving, as `status` shows.

use crate::common::Project;
use lifeboat_core::id::ResourceId;
use lifeboat_emulator::arm::VcpuQuota;
use serde_json::{Value, json};

const SUB: &str = "/subscriptions/00000000-0000-0000-0000-0000000000c4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_counts_vcpus_by_family_and_refuses_what_does_not_fit() {
    let (base, dir) = crate::common::emulator("quota", "quota", 0.001, |c| {
        c.vcpu_quota = VcpuQuota::parse("standardDSv5Family=8").unwrap();
    })
    .await;
    let mut cfg = lifeboat_engine::cloud::client::ClientConfig::azure(&base);
    cfg.time_scale = 0.001;
    let c = lifeboat_engine::cloud::client::ArmClient::new(
        cfg,
        lifeboat_engine::cloud::auth::Credential::emulator("quota", "quota"),
    );
    let rg = ResourceId::parse(&format!("{SUB}/resourceGroups/q")).unwrap();
    c.put(&rg, "2021-04-01", &json!({"location": "westeurope"}))
        .await
        .unwrap();
    let vm = |n: &str| {
        ResourceId::parse(&format!(
            "{}/providers/Microsoft.Compute/virtualMachines/{n}",
            rg.as_str()
        ))
        .unwrap()
    };
    let body = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}});
    c.put(&vm("a"), "2024-07-01", &body).await.unwrap();
    c.put(&vm("b"), "2024-07-01", &body).await.unwrap();
    // Deallocated VMs count, as Azure counts them.
    c.action(&vm("a"), "deallocate", "2024-07-01", None, true)
        .await
        .unwrap();
    let e = c.put(&vm("c"), "2024-07-01", &body).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("QuotaExceeded"), "{text}");
    assert!(text.contains("standardDSv5Family Cores"), "{text}");
    assert!(
        text.contains("Current Limit: 8, Current Usage: 8, Additional Required: 4"),
        "{text}"
    );
    assert!(
        c.get(&vm("c"), "2024-07-01").await.unwrap().is_none(),
        "nothing created"
    );
    // Another family has its own quota.
    let e8 = json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_E8ds_v5"}}});
    c.put(&vm("d"), "2024-07-01", &e8).await.unwrap();
    let usages = c
        .list(
            &format!("{SUB}/providers/Microsoft.Compute/locations/westeurope/usages"),
            "2024-07-01",
        )
        .await
        .unwrap();
    let row = |name: &str| -> Value {
        usages
            .iter()
            .find(|r| r["name"]["value"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {usages:?}"))
    };
    assert_eq!(row("standardDSv5Family")["currentValue"], 8);
    assert_eq!(row("standardDSv5Family")["limit"], 8);
    assert_eq!(row("standardEDSv5Family")["currentValue"], 8);
    assert_eq!(row("cores")["currentValue"], 16);
    // A deleted VM gives its vCPUs back.
    c.delete(&vm("b"), "2024-07-01").await.unwrap();
    c.put(&vm("c"), "2024-07-01", &body).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_shows_the_vcpus_it_needs_and_apply_refuses_what_cannot_fit() {
    let p = Project::example("quota-plan");
    let quota = [("LIFEBOAT_EMULATOR_VCPU_QUOTA", "standardDSv5Family=16")];
    let r = p.run_env(&["--output", "json", "plan"], &quota);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let ds = v["quota"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["family"] == "standardDSv5Family")
        .cloned()
        .unwrap();
    assert_eq!(
        ds,
        json!({"region": "westeurope", "family": "standardDSv5Family", "need": 20, "used": 0, "limit": 16,
            "sizes": ["Standard_D2s_v5", "Standard_D4s_v5"]})
    );
    let r = p.run_env(&["--no-progress", "plan"], &quota);
    assert!(
        r.stdout.contains("! vCPU quota standardDSv5Family in westeurope: needs 20 vCPUs, 16 free of 16; does not fit: apply refuses it"),
        "{}",
        r.stdout
    );
    let r = p.run_env(&["--no-progress", "apply", "--auto-approve"], &quota);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "not enough vCPU quota: standardDSv5Family in westeurope: needs 20 vCPUs, 16 free of 16"
        ),
        "{}",
        r.stderr
    );
    let store = lifeboat_emulator::store::Store::for_project(&p.dir);
    assert!(store.list().unwrap().is_empty(), "nothing written");
    // With room, the same apply goes through.
    let r = p.run_env(
        &["--no-progress", "apply", "--auto-approve"],
        &[("LIFEBOAT_EMULATOR_VCPU_QUOTA", "standardDSv5Family=20")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn activation_retries_allocation_failures_and_serves_with_the_front_ends_it_started() {
    let p = crate::dap::provisioned("alloc-fail", None);
    let store = lifeboat_emulator::store::Store::for_project(&p.dir);
    let frontends: Vec<ResourceId> = store
        .list()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.resource_type
                .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
                && r.id.as_str().contains("/lb-cwz-rg/")
                && r.id.name().contains("-fe")
        })
        .map(|r| r.id)
        .collect();
    assert_eq!(frontends.len(), 20);
    // A seed under which some front-ends find no capacity and most do: the
    // emulator decides per VM, so the test can name them in advance.
    let p_fail = 0.2;
    let (seed, short) = (1u64..200)
        .map(|s| {
            let short: Vec<String> = frontends
                .iter()
                .filter(|vm| lifeboat_emulator::arm::allocation_fails(s, vm, p_fail))
                .map(|vm| vm.name().to_string())
                .collect();
            (s, short)
        })
        .find(|(_, short)| (1..=5).contains(&short.len()))
        .unwrap();
    let seed = seed.to_string();
    let faults = format!("alloc-fail={p_fail}");
    let env = [
        ("LIFEBOAT_EMULATOR_TIME_SCALE", "0.001"),
        ("LIFEBOAT_EMULATOR_SEED", seed.as_str()),
        ("LIFEBOAT_EMULATOR_FAULTS", faults.as_str()),
    ];
    let r = p.run_env(
        &[
            "--output", "json", "activate", "cwz", "--reason", "fire", "--force",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let run = crate::dap::last_json(&r);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let named: Vec<String> = run["shortfall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(named.len(), short.len(), "{named:?} vs {short:?}");
    for n in &short {
        assert!(
            named.iter().any(|s| s.starts_with(&format!("{n} "))
                && s.contains("AllocationFailed after 3 attempts")),
            "{n} not named in {named:?}"
        );
    }
    let start = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "start-frontends")
        .unwrap();
    assert!(
        start["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} of 20 front-end(s) started", 20 - short.len())),
        "{start}"
    );
    let r = p.run_env(&["--output", "json", "status"], &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let cwz = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "cwz")
        .unwrap()
        .clone();
    assert_eq!(cwz["state"], "ACTIVE");
    assert_eq!(cwz["power"]["running"], 20 - short.len());
    assert_eq!(
        cwz["shortfall"].as_array().unwrap().len(),
        short.len(),
        "{cwz}"
    );
}

/// Azure's Resource SKUs say which sizes a subscription may have in a region:
/// a plan that needs a size the subscription cannot have says so, and apply
/// refuses it before writing.
#[test]
fn a_size_the_subscription_cannot_have_is_refused_before_writing() {
    let p = Project::example("quota-skus");
    let restricted = [("LIFEBOAT_EMULATOR_RESTRICTED_SIZES", "Standard_E8ds_v5")];
    let r = p.run_env(&["--output", "json", "plan"], &restricted);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let eds = v["quota"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["family"] == "standardEDSv5Family")
        .cloned()
        .unwrap();
    assert_eq!(
        eds["sizes"],
        json!(["Standard_E16ds_v5", "Standard_E8ds_v5"])
    );
    assert_eq!(
        eds["unavailable"],
        json!(["Standard_E8ds_v5 (NotAvailableForSubscription)"])
    );
    let r = p.run_env(&["--no-progress", "apply", "--auto-approve"], &restricted);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("not offered: Standard_E8ds_v5 (NotAvailableForSubscription)"),
        "{}",
        r.stderr
    );
    assert!(
        lifeboat_emulator::store::Store::for_project(&p.dir)
            .list()
            .unwrap()
            .is_empty()
    );
    // Without the restriction the same sizes are offered.
    let r = p.run(&["--output", "json", "plan"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["quota"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q.get("unavailable").is_none())
    );
}
