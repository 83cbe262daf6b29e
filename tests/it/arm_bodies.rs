//! Protocol tests: the bodies the embedded templates render are checked against the
//! official ARM material in tests/fixtures/azure (copied from shared/azure) (swagger specs for network types, x-ms
//! examples for compute, storage and key vault types).

use std::path::{Path, PathBuf};

use lifeboat_core::graph::templates::TemplateSet;
use lifeboat_core::graph::{Graph, Scope, build};
use serde_json::Value;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/azure")
}

fn load(rel: &str) -> Value {
    let p = shared().join(rel);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = lifeboat_core::manifest::load(root).expect("examples are valid");
    build(
        &project,
        &TemplateSet::embedded().unwrap(),
        &Scope::everything(),
    )
    .unwrap()
}

/// The bodies of type `t`, as the `Value`s a schema validator reads.
fn of_type(g: &Graph, t: &str) -> Vec<Value> {
    let v: Vec<Value> = g
        .resources
        .iter()
        .filter(|r| r.resource_type == t)
        .map(|r| r.body.to_value())
        .collect();
    assert!(!v.is_empty(), "no {t} rendered");
    v
}

fn api_versions(g: &Graph, t: &str) -> Vec<String> {
    g.resources
        .iter()
        .filter(|r| r.resource_type == t)
        .map(|r| r.api_version.clone())
        .collect()
}

/// Every key of `props` is a property of the swagger definition.
fn keys_in_definition(props: &Value, spec: &Value, def: &str, what: &str) {
    let allowed = spec["definitions"][def]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{def} not in spec"));
    for k in props.as_object().unwrap().keys() {
        assert!(
            allowed.contains_key(k),
            "{what}: `{k}` is not a property of {def}"
        );
    }
    for r in spec["definitions"][def]["required"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(
            props.get(r.as_str().unwrap()).is_some(),
            "{what}: required `{r}` missing"
        );
    }
}

#[test]
fn network_bodies_follow_the_2024_05_01_specs() {
    let g = graph();
    let vnet_spec = load("specs/Microsoft.Network/2024-05-01/virtualNetwork.json");
    let nsg_spec = load("specs/Microsoft.Network/2024-05-01/networkSecurityGroup.json");
    for t in [
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
    ] {
        assert!(api_versions(&g, t).iter().all(|v| v == "2024-05-01"), "{t}");
    }
    for vnet in of_type(&g, "Microsoft.Network/virtualNetworks") {
        keys_in_definition(
            &vnet["properties"],
            &vnet_spec,
            "VirtualNetworkPropertiesFormat",
            "vnet",
        );
        for s in vnet["properties"]["subnets"].as_array().unwrap() {
            keys_in_definition(
                &s["properties"],
                &vnet_spec,
                "SubnetPropertiesFormat",
                "subnet",
            );
        }
    }
    for p in of_type(
        &g,
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
    ) {
        keys_in_definition(
            &p["properties"],
            &vnet_spec,
            "VirtualNetworkPeeringPropertiesFormat",
            "peering",
        );
    }
    for nsg in of_type(&g, "Microsoft.Network/networkSecurityGroups") {
        keys_in_definition(
            &nsg["properties"],
            &nsg_spec,
            "NetworkSecurityGroupPropertiesFormat",
            "nsg",
        );
        let rules = nsg["properties"]["securityRules"].as_array().unwrap();
        let mut priorities = std::collections::HashSet::new();
        for r in rules {
            keys_in_definition(
                &r["properties"],
                &nsg_spec,
                "SecurityRulePropertiesFormat",
                "rule",
            );
            let prio = r["properties"]["priority"].as_i64().unwrap();
            assert!((100..=4096).contains(&prio));
            assert!(
                priorities.insert((prio, r["properties"]["direction"].clone())),
                "duplicate priority {prio}"
            );
        }
    }
}

/// Where both documents have a key, the JSON kinds agree (object/array/string/...),
/// recursively: our body has the shape of the official example.
fn same_shape(ours: &Value, example: &Value, path: &str) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // `$secret` stands for a string that apply fills in.
    if ours.get("$secret").is_some() || ours.get("$ref").is_some() {
        assert_eq!(
            kind(example),
            "string",
            "{path}: a reference must stand for a string"
        );
        return;
    }
    assert_eq!(
        kind(ours),
        kind(example),
        "{path}: {ours} vs example {example}"
    );
    match (ours, example) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if let Some(e) = b.get(k) {
                    same_shape(v, e, &format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if !b.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                same_shape(v, &b[0], &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn compute_storage_and_key_vault_bodies_have_the_shape_of_the_official_examples() {
    let g = graph();
    let vm_example = load(
        "examples/Microsoft.Compute/ComputeRP-2024-07-01/VirtualMachine_Create_WithSshAuthentication.json",
    );
    let vm_req = &vm_example["parameters"]["parameters"];
    for vm in of_type(&g, "Microsoft.Compute/virtualMachines") {
        same_shape(&vm, vm_req, "vm");
        assert!(vm["properties"]["hardwareProfile"]["vmSize"].is_string());
        assert_eq!(
            vm["properties"]["storageProfile"]["osDisk"]["createOption"],
            "FromImage"
        );
        assert_eq!(
            vm["properties"]["networkProfile"]["networkInterfaces"][0]["properties"]["primary"],
            true
        );
    }
    assert!(
        api_versions(&g, "Microsoft.Compute/virtualMachines")
            .iter()
            .all(|v| v == "2024-07-01")
    );

    let disk = load("examples/Microsoft.Compute/DiskRP-2024-03-02/Disk_Create_Empty.json");
    for d in of_type(&g, "Microsoft.Compute/disks") {
        same_shape(&d, &disk["parameters"]["disk"], "disk");
        assert_eq!(d["properties"]["creationData"]["createOption"], "Empty");
    }
    assert!(
        api_versions(&g, "Microsoft.Compute/disks")
            .iter()
            .all(|v| v == "2024-03-02")
    );

    let gallery = load("examples/Microsoft.Compute/GalleryRP-2023-07-03/Gallery_Create.json");
    for d in of_type(&g, "Microsoft.Compute/galleries") {
        same_shape(&d, &gallery["parameters"]["gallery"], "gallery");
    }

    let sa = load("examples/Microsoft.Storage/2023-05-01/StorageAccountCreate.json");
    for d in of_type(&g, "Microsoft.Storage/storageAccounts") {
        same_shape(&d, &sa["parameters"]["parameters"], "storage account");
        assert_eq!(d["properties"]["minimumTlsVersion"], "TLS1_2");
        assert_eq!(d["properties"]["allowBlobPublicAccess"], false);
    }
    assert!(
        api_versions(&g, "Microsoft.Storage/storageAccounts")
            .iter()
            .all(|v| v == "2023-05-01")
    );

    // The vault GET example shows the properties a created vault reports.
    let vault = load("examples/Microsoft.KeyVault/2023-07-01/getVault.json");
    let returned = &vault["responses"]["200"]["body"];
    for d in of_type(&g, "Microsoft.KeyVault/vaults") {
        same_shape(
            &d["properties"]["sku"],
            &returned["properties"]["sku"],
            "vault sku",
        );
        assert_eq!(d["properties"]["enablePurgeProtection"], true);
        assert!(d["properties"]["tenantId"]["$ref"].is_object());
    }

    let rg = load("examples/Microsoft.Resources/2021-04-01/CreateResourceGroup.json");
    for d in of_type(&g, "Microsoft.Resources/resourceGroups") {
        same_shape(&d, &rg["parameters"]["parameters"], "resource group");
    }
}

#[test]
fn every_taggable_resource_carries_the_lifeboat_tags() {
    let g = graph();
    for r in &g.resources {
        let Some(tags) = r.body.get("tags") else {
            assert!(
                lifeboat_core::graph::is_untagged_type(&r.resource_type),
                "{} has no tags",
                r.id
            );
            continue;
        };
        assert_eq!(tags["lifeboat-managed"], "true", "{}", r.id);
        assert_eq!(tags["lifeboat-layer"], r.layer.as_str());
        assert_eq!(
            tags.get("lifeboat-tenant").and_then(|t| t.as_str()),
            r.tenant.as_deref()
        );
        assert!(tags["cost-center"].is_string());
        assert_eq!(
            tags.get("lifeboat-protected").is_some(),
            r.lifecycle.prevent_destroy,
            "{}",
            r.id
        );
    }
}
