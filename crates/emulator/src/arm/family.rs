//! What differs between resource families: which long-running-operation shape
//! a type answers with, how long its PUT and DELETE take (in Azure seconds,
//! before the time scale), image build and replication times.

use serde_json::{Value, json};

/// How a resource type answers, after the recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// 200/201 with the final body, no operation (resource groups, role
    /// assignments, Key Vault keys and secrets, blob services and containers).
    Sync,
    /// Microsoft.Network: 201 + Azure-AsyncOperation + Retry-After, "Updating".
    Network,
    /// Microsoft.Compute VMs and the rest of Compute: 201 + Azure-AsyncOperation
    /// (`?p=`), "Creating".
    Compute,
    /// Managed disks: 202 with Azure-AsyncOperation and Location (`DiskOperations`).
    Disk,
    /// Storage accounts: 202, empty body, Location only (`asyncoperations`).
    Storage,
    /// Everything else: 201 + Azure-AsyncOperation (`operationStatuses`).
    Generic,
}

pub(super) fn family(resource_type: &str) -> Family {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.resources/resourcegroups"
        | "microsoft.authorization/roleassignments"
        | "microsoft.keyvault/vaults/keys"
        | "microsoft.keyvault/vaults/secrets"
        | "microsoft.storage/storageaccounts/blobservices"
        | "microsoft.storage/storageaccounts/blobservices/containers"
        | "microsoft.storage/storageaccounts/blobservices/containers/immutabilitypolicies" => {
            Family::Sync
        }
        // The disk resource provider: 202 with both headers (DiskEncryptionSets
        // answer 200 or 202 like disks, never 201).
        "microsoft.compute/disks" | "microsoft.compute/diskencryptionsets" => Family::Disk,
        "microsoft.storage/storageaccounts" => Family::Storage,
        _ if t.starts_with("microsoft.network/") => Family::Network,
        _ if t.starts_with("microsoft.compute/") => Family::Compute,
        _ => Family::Generic,
    }
}

/// How a PUT answers, where the REST spec makes it synchronous although the
/// type's family is long-running (identities, diagnostic settings).
pub(super) fn put_family(resource_type: &str) -> Family {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.managedidentity/userassignedidentities"
        | "microsoft.insights/diagnosticsettings" => Family::Sync,
        _ => family(&t),
    }
}

/// The one status a synchronous PUT answers with whether it created or updated,
/// where the spec lists only one (Key Vault keys and diagnostic settings: 200).
pub(super) fn sync_put_status(resource_type: &str) -> Option<u16> {
    let t = resource_type.to_ascii_lowercase();
    matches!(
        t.as_str(),
        "microsoft.keyvault/vaults/keys"
            | "microsoft.insights/diagnosticsettings"
            | "microsoft.storage/storageaccounts/blobservices"
    )
    .then_some(200)
}

/// DELETEs the REST spec makes synchronous (200, or 204 when absent): storage
/// accounts, vaults, identities, diagnostic settings and the synchronous family.
pub(super) fn delete_is_sync(resource_type: &str) -> bool {
    let t = resource_type.to_ascii_lowercase();
    matches!(
        t.as_str(),
        "microsoft.storage/storageaccounts"
            | "microsoft.keyvault/vaults"
            | "microsoft.managedidentity/userassignedidentities"
            | "microsoft.insights/diagnosticsettings"
    ) || family(&t) == Family::Sync
}

/// Realistic durations, in Azure seconds (DESIGN.md: VM create ~120 s, start and
/// deallocate ~60 s; the rest from experience).
pub(super) fn put_seconds(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.compute/virtualmachines" => 120.0,
        "microsoft.compute/galleries/images/versions" => 900.0,
        "microsoft.storage/storageaccounts" => 25.0,
        "microsoft.keyvault/vaults" => 15.0,
        "microsoft.network/loadbalancers"
        | "microsoft.network/virtualnetworks/virtualnetworkpeerings" => 10.0,
        "microsoft.network/virtualnetworks" => 8.0,
        "microsoft.compute/diskencryptionsets" | "microsoft.compute/galleries" => 10.0,
        "microsoft.operationalinsights/workspaces" => 12.0,
        "microsoft.network/networkinterfaces" => 3.0,
        _ if put_family(&t) == Family::Sync => 0.0,
        _ => 5.0,
    }
}

pub(super) fn delete_seconds(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.resources/resourcegroups" => 30.0,
        "microsoft.compute/virtualmachines" => 60.0,
        _ if delete_is_sync(&t) => 0.0,
        _ => 10.0,
    }
}

/// Azure Image Builder: one build, and the replication that follows it (DESIGN.md).
pub(super) const IMAGE_BUILD_SECS: f64 = 2400.0;
pub(super) const REPLICATION_SECS: f64 = 900.0;

pub(super) fn rfc3339(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Per target region: the primary (first) region is complete when the version
/// appears; the others replicate until `done`.
pub(super) fn replication_status(body: &Value, now: u64, visible: u64, done: u64) -> Value {
    let regions: Vec<&str> = body
        .pointer("/properties/publishingProfile/targetRegions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("name")?.as_str()).collect())
        .unwrap_or_default();
    let progress = if now >= done {
        100
    } else {
        (now.saturating_sub(visible) * 100 / (done - visible).max(1)).min(99)
    };
    let summary: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = if i == 0 { 100 } else { progress };
            let state = if p == 100 { "Completed" } else { "Replicating" };
            json!({"region": r, "state": state, "progress": p})
        })
        .collect();
    let all = summary.iter().all(|s| s["state"] == "Completed");
    json!({"aggregatedState": if all { "Completed" } else { "InProgress" }, "summary": summary})
}
