//! Azure names and the address plan derived from the manifests, and Azure's naming
//! rules for them. Every name lifeboat creates is decided here, once, so templates,
//! plans and exports agree. Never renders templates or reads files.

use std::net::Ipv4Addr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cidr::Ipv4Cidr;
use super::{Platform, Tenant};
use crate::diag::Origin;

/// One VM's names (and static address where it has one).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmNames {
    pub index: u32,
    pub vm: String,
    pub computer: String,
    pub nic: String,
    pub os_disk: String,
    pub zone: String,
    pub size: String,
    pub ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformNames {
    pub rg: String,
    pub hub_vnet: String,
    pub nsg_identity: String,
    pub nsg_citrix: String,
    pub nsg_gateway: String,
    pub log_analytics: String,
    /// The action group every alert rule notifies.
    pub action_group: String,
    pub key_vault: String,
    pub artifacts: String,
    pub gallery: String,
    pub load_balancer: String,
    pub public_ip: String,
    pub domain_controllers: Vec<VmNames>,
    pub cloud_connectors: Vec<VmNames>,
    pub storefront: Vec<VmNames>,
    pub gateway: Vec<VmNames>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformNet {
    pub identity: Ipv4Cidr,
    pub citrix: Ipv4Cidr,
    pub gateway: Ipv4Cidr,
    pub management: Ipv4Cidr,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantNames {
    pub rg: String,
    pub vnet: String,
    pub nsg_frontend: String,
    pub nsg_sql: String,
    pub peer_to_hub: String,
    pub peer_from_hub: String,
    pub sql: VmNames,
    pub sql_data_disk: String,
    pub backup_storage: String,
    pub backup_replica: Option<String>,
    pub key_vault: String,
    pub cmk_key: String,
    pub disk_encryption_set: String,
    pub image_definition: String,
    pub image_version: String,
    pub frontends: Vec<VmNames>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantNet {
    pub frontend: Ipv4Cidr,
    pub sql: Ipv4Cidr,
}

/// A deterministic suffix (hex of SHA-256) for globally unique names, like ARM's
/// `uniqueString()`: the same subscription and seed always give the same name.
pub fn unique_suffix(subscription: &str, seed: &str, len: usize) -> String {
    let digest = Sha256::digest(format!("{}/{seed}", subscription.to_ascii_lowercase()));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..len].to_string()
}

/// A name-based GUID (for role assignments, whose names must be GUIDs).
pub fn stable_guid(seed: &str) -> String {
    let d = Sha256::digest(seed.as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    // A name-based GUID: version 5.
    crate::id::guid_of_hex(&format!("{}5{}", &h[..12], &h[13..32]))
}

fn tier(
    prefix: &str,
    role: &str,
    t: (u32, &str),
    subnet: Option<Ipv4Cidr>,
    first_host: u32,
) -> Vec<VmNames> {
    let (count, size) = t;
    (1..=count)
        .map(|i| {
            let vm = format!("{prefix}-{role}{i:02}");
            VmNames {
                index: i,
                computer: format!("{prefix}{role}{i:02}"),
                nic: format!("{vm}-nic"),
                os_disk: format!("{vm}-osdisk"),
                zone: (((i - 1) % 3) + 1).to_string(),
                size: size.to_string(),
                ip: subnet.and_then(|s| s.host(first_host + i - 1)),
                vm,
            }
        })
        .collect()
}

impl PlatformNet {
    pub fn derive(p: &Platform) -> PlatformNet {
        let hub = p.hub.address_space.value;
        let q = hub.prefix() + 2;
        let part = |i| hub.subnet(q, i).expect("hub prefix validated to /16../24");
        PlatformNet {
            identity: part(0),
            citrix: part(1),
            gateway: part(2),
            management: part(3),
        }
    }
}

impl PlatformNames {
    pub fn derive(p: &Platform) -> PlatformNames {
        let x = p.prefix.value.as_str();
        let net = PlatformNet::derive(p);
        let sub = p.subscription_id.as_str();
        PlatformNames {
            rg: format!("{x}-shared-rg"),
            hub_vnet: format!("{x}-hub-vnet"),
            nsg_identity: format!("{x}-identity-nsg"),
            nsg_citrix: format!("{x}-citrix-nsg"),
            nsg_gateway: format!("{x}-gateway-nsg"),
            log_analytics: format!("{x}-shared-law"),
            action_group: format!("{x}-shared-alerts"),
            key_vault: format!("{x}-shared-kv{}", unique_suffix(sub, "shared-kv", 6)),
            artifacts: format!("{x}art{}", unique_suffix(sub, "artifacts", 10)),
            gallery: p.gallery.name.value.clone(),
            load_balancer: format!("{x}-gateway-lb"),
            public_ip: format!("{x}-gateway-pip"),
            domain_controllers: tier(
                x,
                "dc",
                (
                    p.domain_controllers.count.value,
                    &p.domain_controllers.size.value,
                ),
                Some(net.identity),
                4,
            ),
            cloud_connectors: tier(
                x,
                "cc",
                (
                    p.citrix.cloud_connectors.count.value,
                    &p.citrix.cloud_connectors.size.value,
                ),
                None,
                0,
            ),
            storefront: tier(
                x,
                "sf",
                (
                    p.citrix.storefront.count.value,
                    &p.citrix.storefront.size.value,
                ),
                None,
                0,
            ),
            gateway: tier(
                x,
                "gw",
                (p.citrix.gateway.count.value, &p.citrix.gateway.size.value),
                None,
                0,
            ),
        }
    }
}

impl TenantNet {
    pub fn derive(t: &Tenant) -> TenantNet {
        let space = t.address_space.value;
        let half = |i| {
            space
                .subnet(space.prefix() + 1, i)
                .expect("tenant prefix validated to /20../26")
        };
        TenantNet {
            frontend: half(0),
            sql: half(1),
        }
    }
}

/// Digits used to number front-ends: at least two, more for 100+.
fn frontend_width(count: u32) -> usize {
    count.to_string().len().max(2)
}

impl TenantNames {
    pub fn derive(p: &Platform, t: &Tenant) -> TenantNames {
        let x = p.prefix.value.as_str();
        let id = t.id.value.as_str();
        let sub = p.subscription_id.as_str();
        let net = TenantNet::derive(t);
        let base = format!("{x}-{id}");
        let width = frontend_width(t.frontends.count.value);
        let frontends = (1..=t.frontends.count.value)
            .map(|i| {
                let vm = format!("{base}-fe{i:0width$}");
                VmNames {
                    index: i,
                    computer: format!("{x}{id}fe{i:0width$}"),
                    nic: format!("{vm}-nic"),
                    os_disk: format!("{vm}-osdisk"),
                    zone: (((i - 1) % 3) + 1).to_string(),
                    size: t.frontends.size.value.clone(),
                    ip: None,
                    vm,
                }
            })
            .collect();
        let sql_vm = format!("{base}-sql");
        TenantNames {
            rg: format!("{base}-rg"),
            vnet: format!("{base}-vnet"),
            nsg_frontend: format!("{base}-frontend-nsg"),
            nsg_sql: format!("{base}-sql-nsg"),
            peer_to_hub: format!("{base}-to-hub"),
            peer_from_hub: format!("hub-to-{base}"),
            sql: VmNames {
                index: 1,
                computer: format!("{x}{id}sql"),
                nic: format!("{sql_vm}-nic"),
                os_disk: format!("{sql_vm}-osdisk"),
                zone: "1".into(),
                size: t.sql.size.value.clone(),
                ip: net.sql.host(4),
                vm: sql_vm.clone(),
            },
            sql_data_disk: format!("{sql_vm}-data01"),
            backup_storage: format!("{x}{id}bk{}", unique_suffix(sub, id, 6)),
            backup_replica: p
                .secondary_region
                .as_ref()
                .map(|_| format!("{x}{id}br{}", unique_suffix(sub, id, 6))),
            key_vault: format!("{base}-kv{}", unique_suffix(sub, &format!("{id}-kv"), 4)),
            cmk_key: "cmk-disks".into(),
            disk_encryption_set: format!("{base}-des"),
            image_definition: format!("hix-{id}"),
            image_version: t.hix.image_version(),
            frontends,
        }
    }
}

/// Which Azure naming rule a derived name must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// NetBIOS computer name: 1-15 letters, digits, hyphens, not all digits.
    WindowsComputer,
    /// 3-24 lowercase letters and digits, globally unique.
    StorageAccount,
    /// 3-24 letters, digits, hyphens; starts with a letter; no `--`; globally unique.
    KeyVault,
    /// 1-90 characters.
    ResourceGroup,
    /// 1-64 (Windows VM resource names).
    VirtualMachine,
    /// 1-80 letters, digits, `_ . -` (most network resources).
    Network,
    /// `Major.Minor.Patch`, each a 32-bit signed integer.
    ImageVersion,
}

impl NameRule {
    /// `Err(reason)` when `name` breaks the rule.
    pub fn check(self, name: &str) -> Result<(), String> {
        let len = name.chars().count();
        let alnum_hyphen = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let fail = |what: &str| Err(format!("derived name `{name}` {what}"));
        match self {
            NameRule::WindowsComputer => {
                if len > 15 {
                    return fail(&format!(
                        "is {len} characters; Windows computer names allow at most 15"
                    ));
                }
                if !alnum_hyphen || name.chars().all(|c| c.is_ascii_digit()) {
                    return fail(
                        "is not a valid Windows computer name (letters, digits, hyphens, not only digits)",
                    );
                }
            }
            NameRule::StorageAccount => {
                if !(3..=24).contains(&len) {
                    return fail(&format!(
                        "is {len} characters; storage account names must be 3-24"
                    ));
                }
                if !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                {
                    return fail(
                        "must contain only lowercase letters and digits (storage account)",
                    );
                }
            }
            NameRule::KeyVault => {
                if !(3..=24).contains(&len) {
                    return fail(&format!(
                        "is {len} characters; key vault names must be 3-24"
                    ));
                }
                if !alnum_hyphen
                    || !name.starts_with(|c: char| c.is_ascii_alphabetic())
                    || name.ends_with('-')
                    || name.contains("--")
                {
                    return fail("is not a valid key vault name");
                }
            }
            NameRule::ResourceGroup if len > 90 => {
                return fail(&format!(
                    "is {len} characters; resource group names allow at most 90"
                ));
            }
            NameRule::VirtualMachine if len > 64 => {
                return fail(&format!(
                    "is {len} characters; Windows VM names allow at most 64"
                ));
            }
            NameRule::Network if len > 80 => {
                return fail(&format!("is {len} characters; at most 80 are allowed"));
            }
            NameRule::ImageVersion => {
                let parts: Vec<&str> = name.split('.').collect();
                let ok = parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.parse::<i32>().is_ok_and(|v| v >= 0));
                if !ok {
                    return fail("is not Major.Minor.Patch with 32-bit integers (image version)");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A derived name, the rule it must follow, and the manifest field responsible.
pub struct DerivedName {
    pub name: String,
    pub rule: NameRule,
    pub origin: Origin,
    /// Names in the same scope must not collide (e.g. `computer`, `storage`).
    pub scope: &'static str,
}

pub fn platform_names_to_check(p: &Platform, n: &PlatformNames) -> Vec<DerivedName> {
    let by_prefix = |name: &str, rule, scope| DerivedName {
        name: name.to_string(),
        rule,
        origin: p.prefix.origin.clone(),
        scope,
    };
    let mut out = vec![
        by_prefix(&n.rg, NameRule::ResourceGroup, "resource-group"),
        by_prefix(&n.key_vault, NameRule::KeyVault, "key-vault"),
        by_prefix(&n.artifacts, NameRule::StorageAccount, "storage"),
    ];
    let tiers = [
        (&n.domain_controllers, &p.domain_controllers.count),
        (&n.cloud_connectors, &p.citrix.cloud_connectors.count),
        (&n.storefront, &p.citrix.storefront.count),
        (&n.gateway, &p.citrix.gateway.count),
    ];
    for (vms, _) in tiers {
        for vm in vms {
            out.push(by_prefix(
                &vm.computer,
                NameRule::WindowsComputer,
                "computer",
            ));
            out.push(by_prefix(&vm.vm, NameRule::VirtualMachine, "vm"));
        }
    }
    out
}

pub fn tenant_names_to_check(t: &Tenant, n: &TenantNames) -> Vec<DerivedName> {
    let by = |name: &str, rule, origin: &Origin, scope| DerivedName {
        name: name.to_string(),
        rule,
        origin: origin.clone(),
        scope,
    };
    let id = &t.id.origin;
    let mut out = vec![
        by(&n.rg, NameRule::ResourceGroup, id, "resource-group"),
        by(&n.backup_storage, NameRule::StorageAccount, id, "storage"),
        by(&n.key_vault, NameRule::KeyVault, id, "key-vault"),
        by(&n.vnet, NameRule::Network, id, "network"),
        by(&n.sql.computer, NameRule::WindowsComputer, id, "computer"),
        by(&n.sql.vm, NameRule::VirtualMachine, id, "vm"),
        by(
            &n.image_version,
            NameRule::ImageVersion,
            &t.hix.hotfix.origin,
            "image-version",
        ),
    ];
    if let Some(r) = &n.backup_replica {
        out.push(by(r, NameRule::StorageAccount, id, "storage"));
    }
    // Only the longest front-end name can break a length rule: check first and last.
    if let (Some(first), Some(last)) = (n.frontends.first(), n.frontends.last()) {
        for fe in [first, last] {
            out.push(by(
                &fe.computer,
                NameRule::WindowsComputer,
                &t.frontends.count.origin,
                "computer",
            ));
            out.push(by(
                &fe.vm,
                NameRule::VirtualMachine,
                &t.frontends.count.origin,
                "vm",
            ));
        }
    }
    out
}

/// The gallery image version a tenant's manifest declares (what its front-ends
/// are built from, and what `image build` produces).
pub fn declared_image(p: &Platform, t: &Tenant) -> crate::id::ResourceId {
    let shared = PlatformNames::derive(p);
    let names = TenantNames::derive(p, t);
    crate::id::ResourceId::parse(&format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/galleries/{}/images/{}/versions/{}",
        p.subscription_id, shared.rg, shared.gallery, names.image_definition, names.image_version
    ))
    .expect("derived names form an ARM id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(NameRule::WindowsComputer.check("lbcwzfe01").is_ok());
        let e = NameRule::WindowsComputer
            .check("lbweumcgronife250")
            .unwrap_err();
        assert!(e.contains("17 characters"), "{e}");
        assert!(NameRule::StorageAccount.check("lbcwzbk1a2b3c").is_ok());
        assert!(NameRule::StorageAccount.check("lb-cwz").is_err());
        assert!(NameRule::StorageAccount.check("ab").is_err());
        assert!(NameRule::KeyVault.check("lb-cwz-kv1a2b").is_ok());
        assert!(NameRule::KeyVault.check("lb--x").is_err());
        assert!(NameRule::KeyVault.check("1lb").is_err());
        assert!(NameRule::ImageVersion.check("6.3.52").is_ok());
        assert!(NameRule::ImageVersion.check("6.3.3000000000").is_err());
    }

    #[test]
    fn stable_names() {
        assert_eq!(
            unique_suffix("SUB", "cwz", 6),
            unique_suffix("sub", "cwz", 6)
        );
        assert_ne!(
            unique_suffix("sub", "cwz", 6),
            unique_suffix("sub", "mst", 6)
        );
        let g = stable_guid("x");
        assert_eq!(g.len(), 36);
        assert_eq!(g, stable_guid("x"));
    }
}
