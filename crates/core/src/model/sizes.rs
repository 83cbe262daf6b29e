//! The VM sizes lifeboat knows, with their vCPUs, memory and quota family, from
//! a snapshot in the shape of Azure's Resource SKUs API
//! (`resource-skus.json`, written by `ci/gen-resource-skus.py`; the embedded
//! cloud serves the same document at `…/providers/Microsoft.Compute/skus`). Used
//! to reject typos in manifests (with a suggestion), for capacity figures before
//! and after a resize, and for vCPU quota needs.

use std::sync::OnceLock;

use crate::diag::did_you_mean;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmSize {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// The quota family (`standardDSv5Family`).
    pub family: &'static str,
}

/// The Resource SKUs snapshot (`{"value":[…]}`, virtual machine sizes).
pub const RESOURCE_SKUS: &str = include_str!("resource-skus.json");

/// The sizes of a Resource SKUs list (`value` items), sorted by name.
fn parse(items: &[serde_json::Value]) -> Vec<VmSize> {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let mut out: Vec<VmSize> = items
        .iter()
        .filter(|s| s["resourceType"] == "virtualMachines")
        .filter_map(|s| {
            let cap = |n: &str| -> Option<f64> {
                s["capabilities"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == n)?["value"]
                    .as_str()?
                    .parse()
                    .ok()
            };
            Some(VmSize {
                name: leak(s["name"].as_str()?),
                vcpus: cap("vCPUs")? as u32,
                memory_gib: cap("MemoryGB")? as u32,
                family: leak(s["family"].as_str()?),
            })
        })
        .collect();
    out.sort_by_key(|s| s.name);
    out.dedup_by_key(|s| s.name);
    out
}

/// Every size in the snapshot, sorted by name.
pub fn all() -> &'static [VmSize] {
    static SIZES: OnceLock<Vec<VmSize>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(RESOURCE_SKUS)
            .expect("the embedded Resource SKUs snapshot is JSON");
        parse(doc["value"].as_array().map(Vec::as_slice).unwrap_or(&[]))
    })
}

/// The sizes a cloud's Resource SKUs API listed in this process (see [`adopt`]).
static LIVE: std::sync::RwLock<Option<&'static [VmSize]>> = std::sync::RwLock::new(None);

/// Use the figures of a live Resource SKUs list (`value` items) from now on;
/// the snapshot stays the fallback for sizes the list lacks. A command that
/// reaches a cloud calls this once, before it plans.
pub fn adopt(items: &[serde_json::Value]) {
    let live: &'static [VmSize] = Box::leak(parse(items).into_boxed_slice());
    *LIVE.write().expect("sizes lock") = Some(live);
}

/// Where the figures come from: `Resource SKUs` once a live list was adopted.
pub fn source() -> &'static str {
    if LIVE.read().expect("sizes lock").is_some() {
        "Resource SKUs"
    } else {
        "the shipped snapshot"
    }
}

pub fn lookup(name: &str) -> Option<&'static VmSize> {
    let find = |all: &'static [VmSize]| {
        all.binary_search_by_key(&name, |s| s.name)
            .ok()
            .map(|i| &all[i])
    };
    let live = *LIVE.read().expect("sizes lock");
    live.and_then(find).or_else(|| find(all()))
}

/// `Ok` for a known size, else the reason with a suggestion.
pub fn check(name: &str) -> Result<(), String> {
    if lookup(name).is_some() {
        return Ok(());
    }
    match did_you_mean(name, all().iter().map(|s| s.name)) {
        Some(hint) => Err(format!("unknown VM size `{name}`, did you mean `{hint}`?")),
        None => Err(format!(
            "unknown VM size `{name}` (lifeboat knows the sizes of its Resource SKUs snapshot: the Bs, Dv5/v6, Ev5/v6 and Fsv2 series; see ci/gen-resource-skus.py)"
        )),
    }
}

/// The vCPUs of a size: the table's figure, else the number in its name (Azure
/// names sizes after their vCPUs, e.g. `Standard_E8ds_v6`).
pub fn vcpus(size: &str) -> u64 {
    if let Some(s) = lookup(size) {
        return u64::from(s.vcpus);
    }
    let digits: String = size
        .trim_start_matches("Standard_")
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(1)
}

/// The quota family Azure counts a size's vCPUs in, as
/// `Microsoft.Compute/locations/{region}/usages` names it: `Standard_D4s_v5` ->
/// `standardDSv5Family`, `Standard_E8ds_v5` -> `standardEDSv5Family`,
/// `Standard_B2ms` -> `standardBSFamily` (series letters, then the `a`, `d`, `s`
/// feature letters upper-cased, then the version).
pub fn quota_family(size: &str) -> Option<String> {
    if let Some(s) = lookup(size) {
        return Some(s.family.to_string());
    }
    let rest = size.strip_prefix("Standard_")?;
    let (base, version) = match rest.split_once('_') {
        Some((b, v)) => (b, v),
        None => (rest, ""),
    };
    let series: String = base
        .chars()
        .take_while(|c| c.is_ascii_uppercase())
        .collect();
    if series.is_empty() {
        return None;
    }
    let after_digits = base[series.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    let features: String = after_digits
        .chars()
        .filter(|c| matches!(c, 'a' | 'd' | 's'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Some(format!("standard{series}{features}{version}Family"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quota_families_as_azure_names_them() {
        use super::quota_family as f;
        assert_eq!(f("Standard_D4s_v5").as_deref(), Some("standardDSv5Family"));
        assert_eq!(
            f("Standard_E8ds_v5").as_deref(),
            Some("standardEDSv5Family")
        );
        assert_eq!(
            f("Standard_D4as_v5").as_deref(),
            Some("standardDASv5Family")
        );
        assert_eq!(f("Standard_B2ms").as_deref(), Some("standardBSFamily"));
        assert_eq!(f("Basic_A1"), None);
        assert_eq!(super::vcpus("Standard_D4s_v5"), 4);
        assert_eq!(super::vcpus("Standard_E8ds_v6"), 8);
    }

    #[test]
    fn live_figures_win_over_the_snapshot() {
        let before = super::lookup("Standard_D4s_v5").unwrap().memory_gib;
        assert_eq!(before, 16);
        super::adopt(&[
            serde_json::json!({"resourceType": "virtualMachines", "name": "Standard_Z4_v9",
            "family": "standardZv9Family",
            "capabilities": [{"name": "vCPUs", "value": "4"}, {"name": "MemoryGB", "value": "48"}]}),
        ]);
        let z = super::lookup("Standard_Z4_v9").unwrap();
        assert_eq!(
            (z.vcpus, z.memory_gib, z.family),
            (4, 48, "standardZv9Family")
        );
        // What the live list lacks still comes from the snapshot.
        assert_eq!(super::lookup("Standard_D4s_v5").unwrap().memory_gib, 16);
        assert_eq!(super::source(), "Resource SKUs");
    }

    #[test]
    fn suggests_sizes() {
        assert!(super::check("Standard_D4s_v5").is_ok());
        // Current series, not only the ones the templates ship with.
        assert!(super::check("Standard_E8ds_v6").is_ok());
        let e8 = super::lookup("Standard_E8ds_v6").unwrap();
        assert_eq!(
            (e8.vcpus, e8.memory_gib, e8.family),
            (8, 64, "standardEDSv6Family")
        );
        let e = super::check("Standard_D4s_v4").unwrap_err();
        assert!(e.contains("did you mean `Standard_D4s_v5`"), "{e}");
    }
}

/// A managed disk's provisioned performance: IOPS and MB/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskPerf {
    pub tier: &'static str,
    pub iops: u32,
    pub mbps: u32,
}

/// Performance of a managed disk of `sku` and `size_gib`: the smallest tier that
/// holds it (Azure's published Premium SSD, Standard SSD and Standard HDD tiers).
pub fn disk_perf(sku: &str, size_gib: u32) -> Option<DiskPerf> {
    const PREMIUM: &[(u32, &str, u32, u32)] = &[
        (32, "P4", 120, 25),
        (64, "P6", 240, 50),
        (128, "P10", 500, 100),
        (256, "P15", 1100, 125),
        (512, "P20", 2300, 150),
        (1024, "P30", 5000, 200),
        (2048, "P40", 7500, 250),
        (4096, "P50", 7500, 250),
        (8192, "P60", 16000, 500),
        (16384, "P70", 18000, 750),
        (32767, "P80", 20000, 900),
    ];
    const STANDARD_SSD: &[(u32, &str, u32, u32)] = &[
        (32, "E4", 500, 100),
        (64, "E6", 500, 100),
        (128, "E10", 500, 100),
        (256, "E15", 500, 100),
        (512, "E20", 500, 100),
        (1024, "E30", 500, 100),
        (2048, "E40", 500, 100),
        (4096, "E50", 500, 100),
        (8192, "E60", 2000, 400),
        (16384, "E70", 4000, 600),
        (32767, "E80", 6000, 750),
    ];
    const STANDARD_HDD: &[(u32, &str, u32, u32)] = &[
        (32, "S4", 500, 60),
        (64, "S6", 500, 60),
        (128, "S10", 500, 60),
        (256, "S15", 500, 60),
        (512, "S20", 500, 60),
        (1024, "S30", 500, 60),
        (2048, "S40", 500, 60),
        (4096, "S50", 500, 60),
        (8192, "S60", 1300, 300),
        (16384, "S70", 2000, 500),
        (32767, "S80", 2000, 500),
    ];
    let table = match sku {
        "Premium_LRS" | "Premium_ZRS" => PREMIUM,
        "StandardSSD_LRS" | "StandardSSD_ZRS" => STANDARD_SSD,
        "Standard_LRS" => STANDARD_HDD,
        _ => return None,
    };
    table
        .iter()
        .find(|(max, ..)| size_gib <= *max)
        .map(|&(_, tier, iops, mbps)| DiskPerf { tier, iops, mbps })
}

#[cfg(test)]
mod disk_tests {
    use super::*;

    #[test]
    fn tiers_by_size_and_sku() {
        assert_eq!(disk_perf("Premium_LRS", 1024).unwrap().tier, "P30");
        assert_eq!(disk_perf("Premium_LRS", 1025).unwrap().iops, 7500);
        assert_eq!(disk_perf("StandardSSD_LRS", 1024).unwrap().iops, 500);
        assert!(disk_perf("UltraSSD_LRS", 1024).is_none());
    }
}
