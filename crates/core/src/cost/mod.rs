//! Cost per tenant: what an emergency environment costs idle (per month, front-ends
//! deallocated, the SQL back-end running its restores) and activated (per hour,
//! everything running), for the declared graph and for what runs now, so a plan
//! shows the delta of a change. Also reads the Azure Retail Prices API format into
//! the price table (`pricing refresh`). Pure: the command layer reads and writes
//! the table file and fetches the API pages.
//!
//! Left out on purpose: usage-based charges (log-backup storage, Log Analytics
//! ingestion, egress) depend on the hospital's traffic, not on the manifest; the
//! SQL Server licence of the standby copy is covered by the Software Assurance
//! disaster-recovery benefit (a passive replica needs no licence).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::Json;

use crate::graph::{Graph, PowerState};
use crate::model::sizes;
use crate::observed::PriorState;

/// Azure's convention for monthly figures.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// The embedded West Europe table (`pricing/westeurope.json` in the repository).
pub const EMBEDDED_WESTEUROPE: &str = include_str!("../../../../pricing/westeurope.json");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    pub region: String,
    pub currency: String,
    /// When the prices were taken (`YYYY-MM-DD`).
    pub date: String,
    /// Where they came from.
    pub source: String,
    /// Windows pay-as-you-go price per hour, by ARM size name.
    pub vm_hourly: BTreeMap<String, f64>,
    /// Managed disk price per month, by SKU and tier (`Premium_LRS` -> `P30`).
    pub disk_monthly: BTreeMap<String, BTreeMap<String, f64>>,
    pub public_ip_hourly: f64,
    pub load_balancer_hourly: f64,
    /// An HSM-protected RSA 3072 key in a Premium Key Vault.
    pub hsm_key_monthly: f64,
}

/// Money in JSON as people write it: monthly figures to the cent, hourly to a
/// hundredth of a cent (sums of binary fractions otherwise print as
/// `1735.5999999999997`).
fn cents<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 100.0).round() / 100.0)
}

fn hundredths_of_cents<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 10_000.0).round() / 10_000.0)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    #[serde(serialize_with = "cents")]
    pub idle_monthly: f64,
    #[serde(serialize_with = "hundredths_of_cents")]
    pub active_hourly: f64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.idle_monthly += o.idle_monthly;
        self.active_hourly += o.active_hourly;
    }
}

/// One row of the plan's cost table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantCost {
    /// `None`: the shared layer.
    pub tenant: Option<String>,
    /// As declared (after this plan).
    pub declared: Cost,
    /// As deployed now.
    pub current: Cost,
    #[serde(serialize_with = "cents")]
    pub delta_idle_monthly: f64,
    #[serde(serialize_with = "hundredths_of_cents")]
    pub delta_active_hourly: f64,
    /// Priced items the table has no price for (counted as 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<String>,
}

/// The cost block of a plan: the table it used and one row per layer in scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub currency: String,
    pub prices_date: String,
    pub prices_source: String,
    pub tenants: Vec<TenantCost>,
}

/// The one type whose cost depends on whether it is deallocated.
const VIRTUAL_MACHINE: &str = "microsoft.compute/virtualmachines";

fn hourly(cost: f64, deallocated_when_idle: bool) -> Cost {
    Cost {
        idle_monthly: if deallocated_when_idle {
            0.0
        } else {
            cost * HOURS_PER_MONTH
        },
        active_hourly: cost,
    }
}

fn monthly(cost: f64) -> Cost {
    Cost {
        idle_monthly: cost,
        active_hourly: cost / HOURS_PER_MONTH,
    }
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<PriceTable, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The project's table for its region: `pricing/<region>.json` (written by
    /// `pricing refresh`), else the embedded West Europe one; `None` for a region
    /// without a table (the plan then shows no cost).
    pub fn for_project(
        project: &crate::model::Project,
    ) -> Result<Option<PriceTable>, PricingError> {
        let path = PriceTable::path(project);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if project.platform.region.value != "westeurope" {
                    return Ok(None);
                }
                EMBEDDED_WESTEUROPE.to_string()
            }
            Err(source) => return Err(PricingError::Read { path, source }),
        };
        PriceTable::parse(&text)
            .map(Some)
            .map_err(|source| PricingError::Table { path, source })
    }

    /// Where the project keeps its table: `pricing/<region>.json`.
    pub fn path(project: &crate::model::Project) -> std::path::PathBuf {
        project
            .root
            .join("pricing")
            .join(format!("{}.json", project.platform.region.value))
    }

    fn disk(&self, sku: &str, gib: u32, unpriced: &mut Vec<String>) -> Cost {
        let price = sizes::disk_perf(sku, gib)
            .and_then(|p| self.disk_monthly.get(sku)?.get(p.tier).copied());
        match price {
            Some(p) => monthly(p),
            None => {
                unpriced.push(format!("disk {sku} {gib} GiB"));
                Cost::default()
            }
        }
    }

    /// The cost of one resource body. `deallocated` VMs cost nothing for compute
    /// while idle, but their disks still do.
    pub fn resource<J: Json>(
        &self,
        resource_type: &str,
        body: &J,
        deallocated: bool,
        unpriced: &mut Vec<String>,
    ) -> Cost {
        let s = |p: &str| crate::observed::at(body, p).and_then(J::as_str);
        let mut c = Cost::default();
        // Asked of every resource a plan reads: compared in place, no
        // lower-cased copy of each type.
        let is = |t: &str| resource_type.eq_ignore_ascii_case(t);
        if is(VIRTUAL_MACHINE) {
            if let Some(size) = s("/properties/hardwareProfile/vmSize") {
                match self.vm_hourly.get(size) {
                    Some(&p) => c += hourly(p, deallocated),
                    None => unpriced.push(format!("VM size {size}")),
                }
            }
            // Windows images' OS disks are 128 GiB unless sized.
            let os = "/properties/storageProfile/osDisk";
            if let Some(sku) = s(&format!("{os}/managedDisk/storageAccountType")) {
                let gib = crate::observed::at(body, &format!("{os}/diskSizeGB"))
                    .and_then(J::as_u64)
                    .unwrap_or(128) as u32;
                c += self.disk(sku, gib, unpriced);
            }
        } else if is("microsoft.compute/disks") {
            if let (Some(sku), Some(gib)) = (
                s("/sku/name"),
                crate::observed::at(body, "/properties/diskSizeGB").and_then(J::as_u64),
            ) {
                c += self.disk(sku, gib as u32, unpriced);
            }
        } else if is("microsoft.network/publicipaddresses") {
            c += hourly(self.public_ip_hourly, false)
        } else if is("microsoft.network/loadbalancers") {
            c += hourly(self.load_balancer_hourly, false)
        } else if is("microsoft.keyvault/vaults/keys") && s("/properties/kty") == Some("RSA-HSM") {
            c += monthly(self.hsm_key_monthly)
        }
        c
    }
}

/// Declared and current cost per layer of `graph` (shared first, then tenants).
pub fn estimate(graph: &Graph, prior: &PriorState, prices: &PriceTable) -> CostEstimate {
    Declared::of(graph, prices).with_current(prior, prices)
}

/// The declared half of an estimate: what the graph alone decides. A plan works
/// it out while the cloud is still being read, and the current half (from the
/// prior state) beside the plan itself.
#[derive(Debug, Clone)]
pub struct Declared {
    rows: BTreeMap<Option<String>, TenantCost>,
    /// Lower-cased id -> whether the manifests keep it deallocated, for every
    /// declared resource (owned: the graph moves into the plan meanwhile).
    deallocated: hashbrown::HashMap<String, bool>,
}

impl Declared {
    pub fn of(graph: &Graph, prices: &PriceTable) -> Declared {
        let mut rows: BTreeMap<Option<String>, TenantCost> = BTreeMap::new();
        let mut deallocated = hashbrown::HashMap::with_capacity(graph.resources.len());
        for r in &graph.resources {
            let d = r.lifecycle.power_state == Some(PowerState::Deallocated);
            deallocated.insert(r.id.key().to_string(), d);
            // Looked up before inserting: a fleet's graph would clone its tenant's
            // name for each of its ~15,000 resources.
            if !rows.contains_key(&r.tenant) {
                rows.insert(
                    r.tenant.clone(),
                    TenantCost {
                        tenant: r.tenant.clone(),
                        declared: Cost::default(),
                        current: Cost::default(),
                        delta_idle_monthly: 0.0,
                        delta_active_hourly: 0.0,
                        unpriced: Vec::new(),
                    },
                );
            }
            let e = rows.get_mut(&r.tenant).expect("just inserted");
            let c = prices.resource(&r.resource_type, &r.body, d, &mut e.unpriced);
            e.declared += c;
        }
        Declared { rows, deallocated }
    }

    /// Add what the cloud runs now, and the difference.
    pub fn with_current(self, prior: &PriorState, prices: &PriceTable) -> CostEstimate {
        let Declared {
            mut rows,
            deallocated,
        } = self;
        let mut ignored = Vec::new();
        for o in &prior.resources {
            if o.is_held_os_disk() {
                continue;
            }
            // A VM the manifests no longer declare idles as it is now: a deallocated
            // front-end costs its disk, not its compute (removing one saves ~10 USD
            // a month, not ~160). Only a VM's compute depends on it: nothing
            // else of a fleet's ~17,000 resources is looked up.
            let observed_deallocated = || {
                crate::observed::at(&o.body, "/properties/extended/instanceView/powerState/code")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|c| c.eq_ignore_ascii_case("PowerState/deallocated"))
            };
            let d = o.resource_type.eq_ignore_ascii_case(VIRTUAL_MACHINE)
                && deallocated
                    .get(o.id.key())
                    .copied()
                    .unwrap_or_else(observed_deallocated);
            let cost = prices.resource(&o.resource_type, &o.body, d, &mut ignored);
            // Most of a fleet (subnets, rules, keys, settings) costs nothing:
            // whose it is need not be asked.
            if cost == Cost::default() {
                continue;
            }
            let Some(owner) = prior.ownership(o) else {
                continue;
            };
            // Only the layers the graph covers.
            let Some(e) = rows.get_mut(&owner.tenant) else {
                continue;
            };
            e.current += cost;
        }
        let tenants = rows
            .into_values()
            .map(|mut e| {
                e.delta_idle_monthly = e.declared.idle_monthly - e.current.idle_monthly;
                e.delta_active_hourly = e.declared.active_hourly - e.current.active_hourly;
                e.unpriced.sort();
                e.unpriced.dedup();
                e
            })
            .collect();
        CostEstimate {
            currency: prices.currency.clone(),
            prices_date: prices.date.clone(),
            prices_source: prices.source.clone(),
            tenants,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("{page}: not an Azure Retail Prices API page: {source}")]
    Page {
        page: String,
        source: serde_json::Error,
    },
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a lifeboat price table: {source}", .path.display())]
    Table {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
}

/// What a refresh changed.
#[derive(Debug, Default, Serialize)]
pub struct Refresh {
    pub items_read: usize,
    pub prices_updated: usize,
    /// Sizes and tiers of the table the pages did not price (kept as they were).
    pub not_found: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetailPage {
    items: Vec<Value>,
    next_page_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetailItem {
    #[serde(default)]
    arm_region_name: String,
    #[serde(default)]
    arm_sku_name: String,
    retail_price: f64,
    #[serde(default)]
    service_name: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    sku_name: String,
    #[serde(default)]
    meter_name: String,
    #[serde(default, rename = "type")]
    price_type: String,
}

/// One page of the Retail Prices API: its items, and the next page's URL.
pub fn parse_page(page: &str, text: &str) -> Result<(Vec<Value>, Option<String>), PricingError> {
    let p: RetailPage = serde_json::from_str(text).map_err(|source| PricingError::Page {
        page: page.into(),
        source,
    })?;
    Ok((p.items, p.next_page_link.filter(|l| !l.is_empty())))
}

/// The OData filter for the meters the table holds.
pub fn api_filter(region: &str) -> String {
    format!(
        "armRegionName eq '{region}' and priceType eq 'Consumption' and (serviceName eq 'Virtual Machines' or serviceName eq 'Storage' or serviceName eq 'Virtual Network' or serviceName eq 'Load Balancer' or serviceName eq 'Key Vault')"
    )
}

impl PriceTable {
    /// Update the prices the items carry (Windows pay-as-you-go VMs, LRS managed
    /// disks, the Standard static public IP, the Standard load balancer, Premium
    /// HSM keys); everything else in the table stays.
    pub fn refresh(&mut self, items: &[Value], date: &str, source: &str) -> Refresh {
        let mut r = Refresh {
            items_read: items.len(),
            ..Refresh::default()
        };
        let mut seen = std::collections::HashSet::new();
        for v in items {
            let Ok(i) = serde_json::from_value::<RetailItem>(v.clone()) else {
                continue;
            };
            if (!i.arm_region_name.is_empty() && i.arm_region_name != self.region)
                || (!i.price_type.is_empty() && i.price_type != "Consumption")
            {
                continue;
            }
            let slot: Option<&mut f64> = match i.service_name.as_str() {
                "Virtual Machines"
                    if i.product_name.ends_with(" Windows")
                        && !i.sku_name.contains("Spot")
                        && !i.sku_name.contains("Low Priority") =>
                {
                    self.vm_hourly.get_mut(&i.arm_sku_name)
                }
                "Storage" => {
                    let family = if i.product_name.starts_with("Premium SSD Managed Disks") {
                        Some("Premium")
                    } else if i.product_name.starts_with("Standard SSD Managed Disks") {
                        Some("StandardSSD")
                    } else if i.product_name.starts_with("Standard HDD Managed Disks") {
                        Some("Standard")
                    } else {
                        None
                    };
                    // meterName `P30 LRS Disk`
                    let mut m = i.meter_name.split_whitespace();
                    match (family, m.next(), m.next(), m.next()) {
                        (Some(f), Some(tier), Some(red), Some("Disk")) => self
                            .disk_monthly
                            .get_mut(&format!("{f}_{red}"))
                            .and_then(|t| t.get_mut(tier)),
                        _ => None,
                    }
                }
                "Virtual Network" if i.meter_name == "Standard IPv4 Static Public IP" => {
                    Some(&mut self.public_ip_hourly)
                }
                "Load Balancer" if i.meter_name.starts_with("Standard Included LB Rules") => {
                    Some(&mut self.load_balancer_hourly)
                }
                "Key Vault" if i.meter_name == "Premium Advanced Key" => {
                    Some(&mut self.hsm_key_monthly)
                }
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = i.retail_price;
                r.prices_updated += 1;
                seen.insert(format!(
                    "{}|{}|{}",
                    i.service_name, i.arm_sku_name, i.meter_name
                ));
                if i.service_name == "Virtual Machines" {
                    seen.insert(format!("vm:{}", i.arm_sku_name));
                }
            }
        }
        r.not_found = self
            .vm_hourly
            .keys()
            .filter(|k| !seen.contains(&format!("vm:{k}")))
            .cloned()
            .collect();
        self.date = date.into();
        self.source = source.into();
        r
    }
}

impl CostEstimate {
    pub fn row(&self, tenant: Option<&str>) -> Option<&TenantCost> {
        self.tenants.iter().find(|t| t.tenant.as_deref() == tenant)
    }
}

#[cfg(test)]
mod current_cost_tests {
    use super::*;
    use crate::observed::ObservedResource;

    /// A deallocated front-end that is no longer declared is priced idle as
    /// deallocated: its compute is not part of today's idle cost.
    #[test]
    fn an_undeclared_deallocated_vm_idles_at_zero_compute() {
        let prices = PriceTable::parse(EMBEDDED_WESTEUROPE).unwrap();
        let vm = |power: &str| {
            ObservedResource {
            id: crate::id::ResourceId::parse(
                "/subscriptions/s/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/virtualMachines/fe1",
            )
            .unwrap(),
            resource_type: "Microsoft.Compute/virtualMachines".into(),
            body: serde_json::json!({"location": "westeurope",
                "tags": {"lifeboat-managed": "true", "lifeboat-layer": "tenant", "lifeboat-tenant": "cwz"},
                "properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                    "extended": {"instanceView": {"powerState": {"code": power}}}}}),
            read_digest: None,
            settled: false,
        }
        };
        let mut graph = Graph::default();
        graph.resources.push(crate::graph::Resource {
            id: crate::id::ResourceId::parse("/subscriptions/s/resourceGroups/lb-cwz-rg").unwrap(),
            resource_type: "Microsoft.Resources/resourceGroups".into(),
            api_version: "2021-04-01".into(),
            layer: crate::id::Layer::Tenant,
            tenant: Some("cwz".into()),
            body: serde_json::json!({"location": "westeurope"}).into(),
            depends_on: vec![],
            lifecycle: Default::default(),
            template: String::new(),
            template_line: 0,
            secrets: vec![],
        });
        let current = |power: &str| {
            let prior = PriorState::new(vec![vm(power)], Default::default());
            estimate(&graph, &prior, &prices).tenants[0].current
        };
        assert_eq!(current("PowerState/deallocated").idle_monthly, 0.0);
        assert!(current("PowerState/running").idle_monthly > 100.0);
        // The OS disk Azure made for the VM is priced with the VM, not again
        // as a disk; a data disk it holds, or a disk nobody holds, is a disk.
        let with = |extra: Vec<ObservedResource>| {
            let mut all = vec![vm("PowerState/running")];
            all.extend(extra);
            let prior = PriorState::new(all, Default::default());
            estimate(&graph, &prior, &prices).tenants[0]
                .current
                .idle_monthly
        };
        let disk = |name: &str, body: serde_json::Value| ObservedResource {
            id: crate::id::ResourceId::parse(&format!(
                "/subscriptions/s/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/disks/{name}"
            ))
            .unwrap(),
            resource_type: "Microsoft.Compute/disks".into(),
            body,
            read_digest: None,
            settled: false,
        };
        let held = "/subscriptions/s/resourceGroups/lb-cwz-rg/providers/Microsoft.Compute/virtualMachines/fe1";
        let tags = serde_json::json!({"lifeboat-managed": "true", "lifeboat-layer": "tenant", "lifeboat-tenant": "cwz"});
        let os = disk(
            "fe1-osdisk",
            // Tagged here so that only its being the VM's keeps it out.
            serde_json::json!({"managedBy": held, "sku": {"name": "StandardSSD_LRS"}, "tags": tags,
                "properties": {"osType": "Windows", "diskSizeGB": 127}}),
        );
        assert!(os.is_held_os_disk());
        assert_eq!(with(vec![os]), with(vec![]));
        let data = disk(
            "fe1-data",
            serde_json::json!({"managedBy": held, "sku": {"name": "Premium_LRS"}, "tags": tags,
                "properties": {"diskSizeGB": 1024}}),
        );
        assert!(!data.is_held_os_disk());
        assert!(with(vec![data]) > with(vec![]));
    }
}

#[cfg(test)]
mod money_tests {
    #[test]
    fn money_serializes_rounded() {
        let c = super::Cost {
            idle_monthly: 1735.5999999999997,
            active_hourly: 2.3775342465753417,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"idle_monthly":1735.6,"active_hourly":2.3775}"#
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> PriceTable {
        PriceTable::parse(EMBEDDED_WESTEUROPE).unwrap()
    }

    #[test]
    fn deallocated_vms_cost_only_their_disks_when_idle() {
        let t = table();
        let vm = json!({"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {"osDisk": {"managedDisk": {"storageAccountType": "StandardSSD_LRS"}}}}});
        let mut u = Vec::new();
        let idle = t.resource("Microsoft.Compute/virtualMachines", &vm, true, &mut u);
        let running = t.resource("Microsoft.Compute/virtualMachines", &vm, false, &mut u);
        let e10 = t.disk_monthly["StandardSSD_LRS"]["E10"];
        assert!((idle.idle_monthly - e10).abs() < 1e-9);
        let d4 = t.vm_hourly["Standard_D4s_v5"];
        assert!((running.idle_monthly - (d4 * HOURS_PER_MONTH + e10)).abs() < 1e-6);
        assert!((idle.active_hourly - (d4 + e10 / HOURS_PER_MONTH)).abs() < 1e-9);
        assert!(u.is_empty());
        let odd = json!({"properties": {"hardwareProfile": {"vmSize": "Standard_M416ms_v2"}}});
        t.resource("Microsoft.Compute/virtualMachines", &odd, false, &mut u);
        assert_eq!(u, ["VM size Standard_M416ms_v2"]);
    }

    #[test]
    fn refresh_reads_retail_items() {
        let mut t = table();
        let vm = |price: f64, product: &str, sku: &str| {
            json!({"armRegionName": "westeurope", "armSkuName": "Standard_D4s_v5", "retailPrice": price,
                "serviceName": "Virtual Machines", "productName": product,
                "skuName": sku, "meterName": sku, "type": "Consumption"})
        };
        let items = vec![
            vm(0.5, "Virtual Machines Dsv5 Series Windows", "D4s v5"),
            vm(0.1, "Virtual Machines Dsv5 Series Windows", "D4s v5 Spot"),
            vm(0.2, "Virtual Machines Dsv5 Series", "D4s v5"),
            json!({"armRegionName": "westeurope", "armSkuName": "", "retailPrice": 160.0,
                "serviceName": "Storage", "productName": "Premium SSD Managed Disks",
                "skuName": "P30 LRS", "meterName": "P30 LRS Disk", "type": "Consumption"}),
        ];
        let r = t.refresh(&items, "2026-12-01", "test");
        assert_eq!(r.prices_updated, 2);
        assert_eq!(t.vm_hourly["Standard_D4s_v5"], 0.5);
        assert_eq!(t.disk_monthly["Premium_LRS"]["P30"], 160.0);
        assert_eq!(t.date, "2026-12-01");
        assert!(r.not_found.contains(&"Standard_E8ds_v5".to_string()));
    }
}
