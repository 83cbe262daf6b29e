//! The embedded cloud through the ARM client: VM power actions, runCommand (SQL
//! restore mode), Resource Graph paging with `$skipToken`, and throttling.

use lifeboat_core::id::ResourceId;
use lifeboat_engine::cloud::auth::Credential;
use lifeboat_engine::cloud::client::{ArmClient, ClientConfig};
use serde_json::json;

async fn local(name: &str, scale: f64) -> (ArmClient, std::path::PathBuf) {
    let (base, dir) = crate::common::emulator(name, "emulator-test-token", scale, |_| {}).await;
    let mut cfg = ClientConfig::azure(&base);
    cfg.time_scale = scale;
    (
        ArmClient::new(cfg, Credential::emulator("emulator-test-token", name)),
        dir,
    )
}

/// A PowerShell runCommand on the VM.
async fn run_command(
    c: &ArmClient,
    vm: &ResourceId,
    script: &str,
) -> Result<serde_json::Value, lifeboat_engine::cloud::client::ArmError> {
    let body = json!({"commandId": "RunPowerShellScript", "script": [script]});
    c.action(vm, "runCommand", "2024-07-01", Some(&body), false)
        .await
}

const SUB: &str = "/subscriptions/11111111-2222-3333-4444-555555555555";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_power_actions_and_run_command() {
    let (c, dir) = local("vm", 0.001).await;
    let rg = ResourceId::parse(&format!("{SUB}/resourceGroups/rg")).unwrap();
    c.put(&rg, "2021-04-01", &json!({"location": "westeurope"}))
        .await
        .unwrap();
    let vm = rg.child("providers/Microsoft.Compute/virtualMachines", "sql");
    let vm = ResourceId::parse(vm.as_str()).unwrap();
    let created = c
        .put(&vm, "2024-07-01", &json!({"location": "westeurope", "properties": {"osProfile": {"adminPassword": "S3cret!pass"}}}))
        .await
        .unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    let got = c.get(&vm, "2024-07-01").await.unwrap().unwrap();
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    assert!(
        got.pointer("/properties/osProfile/adminPassword").is_none(),
        "write-only"
    );
    let power = |v: &serde_json::Value| {
        v.pointer("/properties/extended/instanceView/powerState/code")
            .cloned()
    };
    assert_eq!(power(&got), Some(json!("PowerState/running")));

    let out = run_command(&c, &vm, "Set-LifeboatSqlMode -Mode standby")
        .await
        .unwrap();
    assert!(
        out["value"][0]["message"]
            .as_str()
            .unwrap()
            .contains("standby"),
        "{out}"
    );
    let out = run_command(&c, &vm, "Get-LifeboatSqlState").await.unwrap();
    assert_eq!(
        out["value"][0]["message"],
        json!({"mode": "standby"}).to_string()
    );

    c.action(&vm, "deallocate", "2024-07-01", None, true)
        .await
        .unwrap();
    let got = c.get(&vm, "2024-07-01").await.unwrap().unwrap();
    assert_eq!(power(&got), Some(json!("PowerState/deallocated")));
    let e = run_command(&c, &vm, "Get-LifeboatSqlState")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("OperationNotAllowed"), "{e}");
    c.action(&vm, "start", "2024-07-01", None, true)
        .await
        .unwrap();
    let got = c.get(&vm, "2024-07-01").await.unwrap().unwrap();
    assert_eq!(power(&got), Some(json!("PowerState/running")));
    let _ = std::fs::remove_dir_all(dir);
}

/// As Azure: a VM made from an image gets its OS disk as a resource of its
/// own (named by `osDisk.name`, held by the VM, untagged), which the VM's
/// body then names; a disk a VM holds cannot be deleted on its own; deleting
/// the VM takes the OS disk whose `deleteOption` is `Delete` and detaches a
/// data disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_from_an_image_gets_its_os_disk_which_goes_with_it() {
    let (c, dir) = local("osdisk", 0.001).await;
    let rg = ResourceId::parse(&format!("{SUB}/resourceGroups/rg")).unwrap();
    c.put(&rg, "2021-04-01", &json!({"location": "westeurope"}))
        .await
        .unwrap();
    let disk = |name: &str| {
        ResourceId::parse(&format!(
            "{}/providers/Microsoft.Compute/disks/{name}",
            rg.as_str()
        ))
        .unwrap()
    };
    let data = disk("vm1-data");
    c.put(&data, "2024-03-02", &json!({"location": "westeurope", "sku": {"name": "Premium_LRS"}, "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 64}}))
        .await
        .unwrap();
    let vm = ResourceId::parse(&format!(
        "{}/providers/Microsoft.Compute/virtualMachines/vm1",
        rg.as_str()
    ))
    .unwrap();
    c.put(&vm, "2024-07-01", &json!({"location": "westeurope", "tags": {"lifeboat-managed": "true"}, "properties": {
        "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
        "storageProfile": {
            "osDisk": {"name": "vm1-osdisk", "createOption": "FromImage", "deleteOption": "Delete",
                       "managedDisk": {"storageAccountType": "StandardSSD_LRS"}},
            "dataDisks": [{"lun": 0, "createOption": "Attach", "managedDisk": {"id": data.as_str()}}]
        }}}))
        .await
        .unwrap();
    let os = disk("vm1-osdisk");
    let got = c.get(&vm, "2024-07-01").await.unwrap().unwrap();
    let os_disk = &got["properties"]["storageProfile"]["osDisk"];
    assert_eq!(os_disk["managedDisk"]["id"], os.as_str(), "{got}");
    assert_eq!(os_disk["osType"], "Windows");
    assert_eq!(os_disk["diskSizeGB"], 127);
    let d = c
        .get(&os, "2024-03-02")
        .await
        .unwrap()
        .expect("the OS disk exists");
    assert_eq!(d["managedBy"], vm.as_str());
    assert_eq!(d["properties"]["diskState"], "Attached");
    assert_eq!(d["properties"]["creationData"]["createOption"], "FromImage");
    assert_eq!(d["sku"]["name"], "StandardSSD_LRS");
    assert!(d.get("tags").is_none(), "a VM's tags are not copied: {d}");
    // A second VM may not take that disk's name: refused, nothing created.
    let vm2 = ResourceId::parse(&format!(
        "{}/providers/Microsoft.Compute/virtualMachines/vm2",
        rg.as_str()
    ))
    .unwrap();
    let e = c
        .put(
            &vm2,
            "2024-07-01",
            &json!({"location": "westeurope", "properties": {
            "storageProfile": {"osDisk": {"name": "vm1-osdisk", "createOption": "FromImage"}}}}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ConflictingUserInput"), "{e}");
    assert!(c.get(&vm2, "2024-07-01").await.unwrap().is_none());
    let d = c.get(&os, "2024-03-02").await.unwrap().unwrap();
    assert_eq!(d["managedBy"], vm.as_str());
    // Held disks stay.
    for held in [&os, &data] {
        let e = c.delete(held, "2024-03-02").await.unwrap_err();
        assert!(
            e.to_string().contains("OperationNotAllowed")
                && e.to_string().contains("is attached to VM"),
            "{e}"
        );
    }
    assert!(c.delete(&vm, "2024-07-01").await.unwrap());
    assert!(
        c.get(&os, "2024-03-02").await.unwrap().is_none(),
        "deleteOption Delete"
    );
    let d = c
        .get(&data, "2024-03-02")
        .await
        .unwrap()
        .expect("detached, not deleted");
    assert_eq!(d["properties"]["diskState"], "Unattached");
    assert!(d.get("managedBy").is_none());
    assert!(c.delete(&data, "2024-03-02").await.unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_graph_pages_by_1000_with_skip_token() {
    let (c, dir) = local("graph", 0.0005).await;
    let n = 2150;
    let body = json!({"location": "westeurope", "tags": {"lifeboat-managed": "true"}});
    futures::future::join_all((0..n).map(|i| {
        let c = &c;
        let body = &body;
        async move {
            let rg = ResourceId::parse(&format!("{SUB}/resourceGroups/lb-t{i:04}-rg")).unwrap();
            c.put(&rg, "2021-04-01", body).await.unwrap();
        }
    }))
    .await;
    let before = c.stats.snapshot().query;
    let rows = c
        .query(
            &[SUB.trim_start_matches("/subscriptions/").to_string()],
            &lifeboat_engine::cloud::inventory::managed_query("lb"),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), n);
    assert_eq!(
        c.stats.snapshot().query - before,
        3,
        "ceil(2150 / 1000) pages"
    );
    // Resource Graph's own type for a group (never `microsoft.resources/resourcegroups`).
    assert_eq!(
        rows[0]["type"],
        "microsoft.resources/subscriptions/resourcegroups"
    );
    let e = c
        .query(&[], "resources | summarize count()")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("BadRequest"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The engine's managed-resources query is one the emulator's Resource Graph
/// understands (the two crates never import each other; this binary links both).
#[test]
fn managed_query_is_understood_by_the_emulator() {
    let q = lifeboat_engine::cloud::inventory::managed_query("lb");
    lifeboat_emulator::query::Query::parse(&q).expect("the emulator understands it");
}

/// The emulator keeps settled Resource Graph rows and serves them again (as
/// Resource Graph serves its index): a write to the resource, or to a child its
/// row carries inline (a subnet in its VNet's row), must show in the next query
/// once indexed, never the kept row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_resource_graph_rows_follow_writes_to_the_resource_and_its_children() {
    let (c, dir) = local("graph-index", 0.001).await;
    let subs = [SUB.trim_start_matches("/subscriptions/").to_string()];
    let rg = ResourceId::parse(&format!("{SUB}/resourceGroups/lb-x-rg")).unwrap();
    c.put(&rg, "2021-04-01", &json!({"location": "westeurope"}))
        .await
        .unwrap();
    let vnet = ResourceId::parse(&format!(
        "{}/providers/Microsoft.Network/virtualNetworks/lb-x-vnet",
        rg.as_str()
    ))
    .unwrap();
    let subnet = ResourceId::parse(&format!("{}/subnets/frontend", vnet.as_str())).unwrap();
    let vnet_body = |tag: &str| {
        json!({"location": "westeurope", "tags": {"lifeboat-managed": "true", "v": tag},
            "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}})
    };
    let put_subnet = |prefix: &'static str| {
        let (c, subnet) = (&c, &subnet);
        async move {
            c.put(
                subnet,
                "2024-05-01",
                &json!({"properties": {"addressPrefix": prefix}}),
            )
            .await
            .unwrap();
        }
    };
    c.put(&vnet, "2024-05-01", &vnet_body("1")).await.unwrap();
    put_subnet("10.1.0.0/24").await;
    // The row as served, once the writes are done and indexed (10 Azure-s).
    let row = || async {
        let mut last = json!(null);
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let rows = c
                .query(
                    &subs,
                    &lifeboat_engine::cloud::inventory::managed_query("lb"),
                )
                .await
                .unwrap();
            last = rows
                .into_iter()
                .find(|r| r["type"] == "microsoft.network/virtualnetworks")
                .unwrap_or(json!(null));
            let settled = last["properties"]["provisioningState"] == "Succeeded"
                && last["properties"]["subnets"][0]["properties"]["provisioningState"]
                    == "Succeeded";
            if settled {
                break;
            }
        }
        last
    };
    let prefix = |r: &serde_json::Value| {
        r["properties"]["subnets"][0]["properties"]["addressPrefix"].clone()
    };
    let first = row().await;
    assert_eq!(prefix(&first), "10.1.0.0/24");
    assert_eq!(row().await, first, "served again unchanged");
    // A write to the child its row carries inline.
    put_subnet("10.1.1.0/24").await;
    let mut seen = row().await;
    for _ in 0..100 {
        if prefix(&seen) == "10.1.1.0/24" {
            break;
        }
        seen = row().await;
    }
    assert_eq!(
        prefix(&seen),
        "10.1.1.0/24",
        "the subnet's write shows in its VNet's row"
    );
    // A write to the resource itself.
    c.put(&vnet, "2024-05-01", &vnet_body("2")).await.unwrap();
    let mut seen = row().await;
    for _ in 0..100 {
        if seen["tags"]["v"] == "2" {
            break;
        }
        seen = row().await;
    }
    assert_eq!(seen["tags"]["v"], "2");
    let _ = std::fs::remove_dir_all(dir);
}
