//! What ARM refuses before it creates anything: an api-version Microsoft does not
//! publish for the type (from `published-api-versions.tsv`, derived from
//! Microsoft's schemas), and the cross-resource rules resource providers enforce
//! at PUT (a disk's encryption type equals its disk encryption set's; a Windows
//! computer name is at most 15 characters; NSG rule priorities are unique per
//! direction; subnets lie inside their virtual network's address space).
//!
//! Never changes the store: a refused request leaves the cloud as it was.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::*;
use lifeboat_core::model::cidr::{CidrError, Ipv4Cidr};

const PUBLISHED: &str = include_str!("../published-api-versions.tsv");

fn published() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static TABLE: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        PUBLISHED
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .map(|(t, v)| (t, v.split(',').collect()))
            .collect()
    })
}

fn namespaces() -> &'static Vec<&'static str> {
    static NS: OnceLock<Vec<&'static str>> = OnceLock::new();
    NS.get_or_init(|| {
        let mut v: Vec<&str> = published()
            .keys()
            .filter_map(|t| t.split('/').next())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// `YYYY-MM-DD` with an optional `-preview` (or other) suffix.
fn well_formed(api: &str) -> bool {
    let date = api.get(..10).unwrap_or("");
    let b = date.as_bytes();
    date.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (api.len() == 10 || api.as_bytes()[10] == b'-')
}

/// Refuse an api-version ARM would not route for the type of `id`.
pub(super) fn check_api_version(id: &ResourceId, api: &str) -> Result<(), Reply> {
    let rtype = id.resource_type();
    let lower = rtype.to_ascii_lowercase();
    let short = rtype.rsplit('/').next().unwrap_or("");
    if !well_formed(api) {
        return Err(Reply::error(
            400,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{api}' is invalid. The supported versions are listed in the provider's metadata."
            ),
        ));
    }
    let namespace = lower.split('/').next().unwrap_or("");
    let Some(versions) = published().get(lower.as_str()) else {
        if namespaces().contains(&namespace) {
            return Err(Reply::error(
                400,
                "InvalidResourceType",
                &format!(
                    "The resource type '{short}' could not be found in the namespace '{}' for api version '{api}'.",
                    rtype.split('/').next().unwrap_or("")
                ),
            ));
        }
        return Err(Reply::error(
            400,
            "InvalidResourceNamespace",
            &format!(
                "The resource namespace '{}' is invalid.",
                rtype.split('/').next().unwrap_or("")
            ),
        ));
    };
    if versions.contains(&api) {
        return Ok(());
    }
    let supported = versions.join(", ");
    if id.is_resource_group() {
        return Err(Reply::error(
            400,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{api}' is invalid. The supported versions are '{supported}'."
            ),
        ));
    }
    Err(Reply::error(
        400,
        "NoRegisteredProviderFound",
        &format!(
            "No registered resource provider found for location '{}' and API version '{api}' for type '{short}'. The supported api-versions are '{supported}'.",
            "westeurope"
        ),
    ))
}

fn invalid(code: &str, message: String) -> Reply {
    Reply::error(400, code, &message)
}

/// An address prefix as the emulator reads it: the project's CIDR type, with a
/// prefix that has host bits set taken as its network (as before).
pub(super) fn block(s: &str) -> Option<Ipv4Cidr> {
    match s.parse::<Ipv4Cidr>() {
        Ok(c) => Some(c),
        Err(CidrError::HostBits { network, .. }) => Some(network),
        Err(_) => None,
    }
}

fn within(inner: &str, outer: &str) -> bool {
    match (block(inner), block(outer)) {
        (Some(i), Some(o)) => i.first() >= o.first() && i.last() <= o.last(),
        _ => false,
    }
}

fn prefixes(v: &Value, one: &str, many: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .get(many)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = v.get(one).and_then(Value::as_str) {
        out.push(p.to_string());
    }
    out
}

impl Emulator {
    /// The rules a resource provider checks against other resources at PUT.
    pub(super) fn refuse(&self, id: &ResourceId, body: &Value, now: u64) -> Result<(), Reply> {
        let t = id.resource_type().to_ascii_lowercase();
        match t.as_str() {
            "microsoft.compute/disks" => self.disk_encryption(id, body, now),
            "microsoft.compute/virtualmachines" => computer_name(id, body),
            "microsoft.network/networksecuritygroups" => unique_priorities(
                body.pointer("/properties/securityRules")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            ),
            "microsoft.network/networksecuritygroups/securityrules" => {
                let Some(nsg) = id.parent() else {
                    return Ok(());
                };
                let mut rules: Vec<Value> = self
                    .store
                    .children(&nsg)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.id != *id && self.view(r, now).is_some())
                    .map(|r| {
                        let mut b = r.body;
                        b["name"] = json!(r.id.name());
                        b
                    })
                    .collect();
                let mut me = body.clone();
                me["name"] = json!(id.name());
                rules.push(me);
                unique_priorities(&rules)
            }
            "microsoft.network/virtualnetworks" => {
                let space = prefixes(
                    body.pointer("/properties/addressSpace")
                        .unwrap_or(&Value::Null),
                    "addressPrefix",
                    "addressPrefixes",
                );
                for s in body
                    .pointer("/properties/subnets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
                    subnet_inside(
                        id,
                        name,
                        s.get("properties").unwrap_or(&Value::Null),
                        &space,
                    )?;
                }
                Ok(())
            }
            "microsoft.network/virtualnetworks/subnets" => {
                let Some(vnet) = id.parent() else {
                    return Ok(());
                };
                let Ok(Some(v)) = self.store.get(&vnet) else {
                    return Ok(());
                };
                let space = prefixes(
                    v.body
                        .pointer("/properties/addressSpace")
                        .unwrap_or(&Value::Null),
                    "addressPrefix",
                    "addressPrefixes",
                );
                subnet_inside(
                    &vnet,
                    id.name(),
                    body.get("properties").unwrap_or(&Value::Null),
                    &space,
                )
            }
            _ => Ok(()),
        }
    }

    fn disk_encryption(&self, id: &ResourceId, body: &Value, now: u64) -> Result<(), Reply> {
        let Some(set_id) = body
            .pointer("/properties/encryption/diskEncryptionSetId")
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let set = ResourceId::parse(set_id)
            .ok()
            .and_then(|s| self.load(&s, now).ok().flatten())
            .filter(|s| self.view(s, now).is_some());
        let Some(set) = set else {
            return Err(invalid(
                "InvalidParameter",
                format!(
                    "Disk encryption set '{set_id}' referenced by disk '{}' was not found.",
                    id.name()
                ),
            ));
        };
        let want = set
            .body
            .pointer("/properties/encryptionType")
            .and_then(Value::as_str)
            .unwrap_or("EncryptionAtRestWithCustomerKey");
        let have = body
            .pointer("/properties/encryption/type")
            .and_then(Value::as_str)
            .unwrap_or("EncryptionAtRestWithPlatformKey");
        if have != want {
            return Err(invalid(
                "InvalidParameter",
                format!(
                    "The encryption type '{have}' of disk '{}' does not match the encryption type '{want}' of disk encryption set '{}'.",
                    id.name(),
                    set.id.name()
                ),
            ));
        }
        Ok(())
    }
}

fn computer_name(id: &ResourceId, body: &Value) -> Result<(), Reply> {
    let windows = body
        .pointer("/properties/osProfile/windowsConfiguration")
        .is_some()
        || body
            .pointer("/properties/storageProfile/osDisk/osType")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("Windows"));
    let Some(os) = body.pointer("/properties/osProfile") else {
        return Ok(());
    };
    let name = os
        .get("computerName")
        .and_then(Value::as_str)
        .unwrap_or(id.name());
    if windows && name.chars().count() > 15 {
        return Err(invalid(
            "InvalidParameter",
            format!(
                "Windows computer name cannot be more than 15 characters long, be entirely numeric, or contain the following characters: ` ~ ! @ # $ % ^ & * ( ) = + _ [ ] {{ }} \\ | ; : . ' \" , < > / ?. (computerName '{name}')"
            ),
        ));
    }
    Ok(())
}

fn unique_priorities(rules: &[Value]) -> Result<(), Reply> {
    let mut seen: HashMap<(String, u64), &str> = HashMap::new();
    for r in rules {
        let name = r.get("name").and_then(Value::as_str).unwrap_or("?");
        let dir = r
            .pointer("/properties/direction")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let Some(prio) = r.pointer("/properties/priority").and_then(Value::as_u64) else {
            continue;
        };
        if let Some(other) = seen.insert((dir.clone(), prio), name) {
            return Err(invalid(
                "SecurityRuleConflict",
                format!(
                    "Security rule {name} conflicts with rule {other}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules."
                ),
            ));
        }
    }
    Ok(())
}

fn subnet_inside(
    vnet: &ResourceId,
    name: &str,
    props: &Value,
    space: &[String],
) -> Result<(), Reply> {
    for p in prefixes(props, "addressPrefix", "addressPrefixes") {
        if !space.iter().any(|s| within(&p, s)) {
            return Err(invalid(
                "NetcfgSubnetRangeOutsideVnet",
                format!(
                    "Subnet '{name}' is not valid because its IP address range is outside the IP address range of virtual network '{}'.",
                    vnet.name()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_judged_by_microsofts_published_list() {
        let vnet = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        )
        .unwrap();
        assert!(check_api_version(&vnet, "2024-05-01").is_ok());
        let r = check_api_version(&vnet, "2099-01-01").unwrap_err();
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("NoRegisteredProviderFound"));
        let r = check_api_version(&vnet, "latest").unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("InvalidApiVersionParameter"));
        let rg = ResourceId::parse("/subscriptions/s/resourceGroups/rg").unwrap();
        assert!(check_api_version(&rg, "2021-04-01").is_ok());
        let r = check_api_version(&rg, "2099-01-01").unwrap_err();
        assert!(String::from_utf8_lossy(&r.body).contains("InvalidApiVersionParameter"));
    }

    /// Every type lifeboat manages is read, listed and deleted with an
    /// api-version Azure publishes for it (orphans are deleted with
    /// `api::for_type`, not a template's version).
    #[test]
    fn lifeboats_default_api_versions_are_published() {
        for t in [
            "Microsoft.Authorization/roleAssignments",
            "Microsoft.Compute/diskEncryptionSets",
            "Microsoft.Compute/disks",
            "Microsoft.Compute/galleries",
            "Microsoft.Compute/galleries/images",
            "Microsoft.Compute/galleries/images/versions",
            "Microsoft.Compute/virtualMachines",
            "Microsoft.Insights/diagnosticSettings",
            "Microsoft.KeyVault/vaults",
            "Microsoft.KeyVault/vaults/keys",
            "Microsoft.KeyVault/vaults/secrets",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.Network/loadBalancers",
            "Microsoft.Network/networkInterfaces",
            "Microsoft.Network/networkSecurityGroups",
            "Microsoft.Network/networkSecurityGroups/securityRules",
            "Microsoft.Network/publicIPAddresses",
            "Microsoft.Network/virtualNetworks",
            "Microsoft.Network/virtualNetworks/subnets",
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
            "Microsoft.OperationalInsights/workspaces",
            "Microsoft.Resources/resourceGroups",
            "Microsoft.Storage/storageAccounts",
            "Microsoft.Storage/storageAccounts/blobServices",
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            "Microsoft.VirtualMachineImages/imageTemplates",
        ] {
            let api = lifeboat_core::api::for_type(t);
            let versions = published().get(t.to_ascii_lowercase().as_str()).unwrap();
            assert!(versions.contains(&api), "{t}: {api} is not published");
        }
    }

    #[test]
    fn address_ranges_and_priorities() {
        assert!(within("10.1.2.0/24", "10.1.0.0/16"));
        assert!(!within("10.2.0.0/24", "10.1.0.0/16"));
        assert!(!within("10.1.0.0/15", "10.1.0.0/16"));
        let rule = |n: &str, p: u64, d: &str| json!({"name": n, "properties": {"priority": p, "direction": d}});
        assert!(
            unique_priorities(&[rule("a", 100, "Inbound"), rule("b", 100, "Outbound")]).is_ok()
        );
        assert!(
            unique_priorities(&[rule("a", 100, "Inbound"), rule("b", 100, "inbound")]).is_err()
        );
    }
}
