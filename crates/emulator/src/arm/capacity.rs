//! Capacity as Azure has it: a per-region vCPU quota by VM family (and a total
//! per region), reported by `Microsoft.Compute/locations/{region}/usages` and
//! enforced at VM PUT (`QuotaExceeded`). Deallocated VMs count, as Azure counts
//! them. The counts live in memory, from one scan of the store when first needed,
//! then kept by this process's PUTs and DELETEs (a second emulator process on
//! the same store recounts at its own start).
//!
//! Allocation failures on start (`--faults alloc-fail=P`) are decided in
//! `compute`; this module only counts.

use std::collections::{BTreeMap, HashMap};

use super::*;
use lifeboat_core::model::sizes;

/// The vCPU limits of one region (the same in every region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuQuota {
    /// The limit of a family without its own entry.
    pub per_family: u64,
    /// "Total Regional vCPUs".
    pub total: u64,
    pub families: BTreeMap<String, u64>,
}

impl Default for VcpuQuota {
    /// Generous enough for the 200-hospital benchmark fleet; Azure's defaults
    /// are far lower and raised on request, which `--vcpu-quota` models.
    fn default() -> Self {
        VcpuQuota {
            per_family: 20_000,
            total: 40_000,
            families: BTreeMap::new(),
        }
    }
}

impl VcpuQuota {
    /// `standardDSv5Family=100,total=350,family=50` (`family` sets the default
    /// per-family limit).
    pub fn parse(spec: &str) -> Result<VcpuQuota, String> {
        let mut q = VcpuQuota::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("vCPU quota `{part}`: expected FAMILY=N"))?;
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("vCPU quota `{part}`: `{v}` is not a whole number"))?;
            match k.trim() {
                "total" => q.total = n,
                "family" => q.per_family = n,
                f => {
                    q.families.insert(f.to_string(), n);
                }
            }
        }
        Ok(q)
    }

    fn limit(&self, family: &str) -> u64 {
        self.families
            .get(family)
            .copied()
            .unwrap_or(self.per_family)
    }
}

/// What one VM holds of the quota.
#[derive(Debug, Clone)]
pub(super) struct Held {
    region: String,
    family: String,
    vcpus: u64,
}

fn held(body: &Value) -> Option<Held> {
    let size = body
        .pointer("/properties/hardwareProfile/vmSize")?
        .as_str()?;
    Some(Held {
        region: Emulator::location_of(body),
        family: sizes::quota_family(size).unwrap_or_else(|| "standardFamily".into()),
        vcpus: sizes::vcpus(size),
    })
}

/// Whether a start of `vm` finds no capacity under `alloc-fail=p` with `seed`.
/// Decided per VM, not per request, so that a shortage persists across retries
/// (as it does for minutes on Azure) and a seeded run is the same whatever
/// order concurrent starts arrive in.
pub fn allocation_fails(seed: u64, vm: &ResourceId, p: f64) -> bool {
    use sha2::{Digest, Sha256};
    if p <= 0.0 {
        return false;
    }
    let d = Sha256::digest(format!("{seed}:{}", vm.key()).as_bytes());
    let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < p
}

/// Counted VMs by key, once counted.
pub(super) type Cores = Mutex<Option<HashMap<String, Held>>>;

impl Emulator {
    fn with_cores<T>(&self, f: impl FnOnce(&mut HashMap<String, Held>) -> T) -> T {
        let mut g = self.cores.lock().expect("cores");
        let map = g.get_or_insert_with(|| {
            let now = now_ms();
            self.store
                .scan()
                .map(|all| {
                    all.iter()
                        .filter(|r| {
                            r.resource_type
                                .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
                                && self.view(r, now).is_some()
                        })
                        .filter_map(|r| Some((r.id.key().to_string(), held(&r.body)?)))
                        .collect()
                })
                .unwrap_or_default()
        });
        f(map)
    }

    fn usage(map: &HashMap<String, Held>, sub: &str, region: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let prefix = format!("/subscriptions/{}/", sub.to_ascii_lowercase());
        for (k, h) in map {
            if k.starts_with(&prefix) && h.region == region {
                *out.entry(h.family.clone()).or_insert(0) += h.vcpus;
            }
        }
        out
    }

    /// Take the vCPUs a VM PUT needs, or refuse it as Azure does.
    pub(super) fn admit_vm(&self, id: &ResourceId, body: &Value) -> Result<(), Reply> {
        let Some(want) = held(body) else {
            return Ok(());
        };
        let quota = &self.cfg.vcpu_quota;
        self.with_cores(|map| {
            let mut others = map.clone();
            others.remove(id.key());
            let used = Self::usage(&others, id.subscription(), &want.region);
            let family_used = used.get(&want.family).copied().unwrap_or(0);
            let total_used: u64 = used.values().sum();
            let (limit, usage, what) = if family_used + want.vcpus > quota.limit(&want.family) {
                (quota.limit(&want.family), family_used, format!("{} Cores", want.family))
            } else if total_used + want.vcpus > quota.total {
                (quota.total, total_used, "Total Regional Cores".to_string())
            } else {
                map.insert(id.key().to_string(), want);
                return Ok(());
            };
            Err(Reply::error(
                409,
                "QuotaExceeded",
                &format!(
                    "Operation could not be completed as it results in exceeding approved {what} quota. Additional details - Deployment Model: Resource Manager, Location: {}, Current Limit: {limit}, Current Usage: {usage}, Additional Required: {}, (Minimum) New Limit Required: {}.",
                    want.region,
                    want.vcpus,
                    usage + want.vcpus
                ),
            ))
        })
    }

    /// A deleted VM gives its vCPUs back.
    pub(super) fn release_vm(&self, id: &ResourceId) {
        self.with_cores(|map| map.remove(id.key()));
    }

    /// `GET /subscriptions/{s}/providers/Microsoft.Compute/skus`: the Resource
    /// SKUs lifeboat ships (`model/resource-skus.json`), filtered by
    /// `$filter=location eq 'REGION'`. Sizes named in
    /// `LIFEBOAT_EMULATOR_RESTRICTED_SIZES` (comma-separated) carry Azure's
    /// `NotAvailableForSubscription` restriction, as a subscription without
    /// access to a series sees them.
    pub(super) fn skus(&self, query: &str) -> Reply {
        let filter = query_param(query, "$filter")
            .map(|f| f.replace("%20", " ").replace("%27", "'").replace('+', " "))
            .unwrap_or_default();
        let location = filter
            .split_once("location eq '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(l, _)| l.to_ascii_lowercase());
        let restricted: Vec<String> = std::env::var("LIFEBOAT_EMULATOR_RESTRICTED_SIZES")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mut doc: Value =
            serde_json::from_str(sizes::RESOURCE_SKUS).expect("the embedded snapshot is JSON");
        let items = doc["value"].as_array_mut().expect("a value array");
        if let Some(l) = &location {
            items.retain(|s| {
                s["locations"].as_array().is_some_and(|ls| {
                    ls.iter()
                        .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(l)))
                })
            });
        }
        for s in items.iter_mut() {
            if s["name"]
                .as_str()
                .is_some_and(|n| restricted.iter().any(|r| r == n))
            {
                let locs = s["locations"].clone();
                s["restrictions"] = json!([{"type": "Location", "values": locs,
                    "restrictionInfo": {"locations": locs}, "reasonCode": "NotAvailableForSubscription"}]);
            }
        }
        Reply::json(200, &doc)
    }

    /// `GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{region}/usages`.
    pub(super) fn usages(&self, sub: &str, region: &str) -> Reply {
        let region = region.to_ascii_lowercase();
        let used = self.with_cores(|map| Self::usage(map, sub, &region));
        let quota = &self.cfg.vcpu_quota;
        // Every family Azure knows is listed, in use or not.
        let known: Vec<String> = sizes::all().iter().map(|s| s.family.to_string()).collect();
        let mut families: Vec<&String> = used
            .keys()
            .chain(quota.families.keys())
            .chain(known.iter())
            .collect();
        families.sort();
        families.dedup();
        let row = |name: &str, local: String, current: u64, limit: u64| {
            json!({"unit": "Count", "currentValue": current, "limit": limit,
                "name": {"value": name, "localizedValue": local}})
        };
        let mut value = vec![row(
            "cores",
            "Total Regional vCPUs".into(),
            used.values().sum(),
            quota.total,
        )];
        for f in families {
            value.push(row(
                f,
                format!("{f} vCPUs"),
                used.get(f).copied().unwrap_or(0),
                quota.limit(f),
            ));
        }
        Reply::json(200, &json!({ "value": value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_spec_and_sizes() {
        let q = VcpuQuota::parse("standardDSv5Family=8,total=20").unwrap();
        assert_eq!(q.limit("standardDSv5Family"), 8);
        assert_eq!(q.limit("standardEDSv5Family"), q.per_family);
        assert_eq!(q.total, 20);
        assert!(VcpuQuota::parse("x=many").is_err());
    }
}
