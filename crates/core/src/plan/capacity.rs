//! Capacity safety: a change that lowers a guarded resource's vCPUs, memory, IOPS or
//! throughput (VM size, disk SKU or size) is a capacity reduction, with before and
//! after figures from the size tables. Pure; `apply` refuses a plan that has any
//! without `--allow-capacity-reduction`. (A database moved to a smaller class once
//! took a national referral platform down for two days.)

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{Body, Json};
use crate::id::ResourceId;
use crate::model::sizes;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    pub what: String,
    pub before: u32,
    pub after: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityReduction {
    pub id: ResourceId,
    pub tenant: Option<String>,
    /// `Standard_E8ds_v5 -> Standard_E4ds_v5`, `Premium_LRS 1024 GiB (P30) -> ...`.
    pub change: String,
    pub lower: Vec<Figure>,
}

impl CapacityReduction {
    pub fn describe(&self) -> String {
        let figures: Vec<String> = self
            .lower
            .iter()
            .map(|f| format!("{} {} -> {}", f.what, f.before, f.after))
            .collect();
        format!(
            "{} ({}): {}",
            self.id.display_name(),
            self.change,
            figures.join(", ")
        )
    }
}

fn str_at<'a, J: Json>(v: &'a J, ptr: &str) -> Option<&'a str> {
    v.at(ptr)?.as_str()
}

/// Figures of a VM or managed-disk body: (description, [(what, value)]).
fn figures<J: Json>(body: &J) -> Option<(String, Vec<(&'static str, u32)>)> {
    if let Some(size) = str_at(body, "/properties/hardwareProfile/vmSize") {
        let s = sizes::lookup(size)?;
        return Some((
            size.to_string(),
            vec![("vCPUs", s.vcpus), ("memory GiB", s.memory_gib)],
        ));
    }
    let sku = str_at(body, "/sku/name")?;
    let gib = body.at("/properties/diskSizeGB")?.as_u64()? as u32;
    let p = sizes::disk_perf(sku, gib)?;
    Some((
        format!("{sku} {gib} GiB ({})", p.tier),
        vec![("IOPS", p.iops), ("MB/s", p.mbps)],
    ))
}

/// The reduction a change from `observed` to `desired` makes, if any.
pub fn reduction(
    id: &ResourceId,
    tenant: Option<&str>,
    observed: &Value,
    desired: &Body,
) -> Option<CapacityReduction> {
    let (before_name, before) = figures(observed)?;
    let (after_name, after) = figures(desired)?;
    let lower: Vec<Figure> = before
        .iter()
        .zip(&after)
        .filter(|((_, b), (_, a))| a < b)
        .map(|((what, b), (_, a))| Figure {
            what: what.to_string(),
            before: *b,
            after: *a,
        })
        .collect();
    (!lower.is_empty()).then(|| CapacityReduction {
        id: id.clone(),
        tenant: tenant.map(str::to_string),
        change: format!("{before_name} -> {after_name}"),
        lower,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> ResourceId {
        ResourceId::parse(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/sql",
        )
        .unwrap()
    }

    #[test]
    fn smaller_vm_is_a_reduction_bigger_is_not() {
        let vm = |s: &str| json!({"properties": {"hardwareProfile": {"vmSize": s}}});
        let r = reduction(
            &id(),
            Some("cwz"),
            &vm("Standard_E8ds_v5"),
            &vm("Standard_D8ds_v5").into(),
        )
        .unwrap();
        assert_eq!(
            r.lower,
            vec![Figure {
                what: "memory GiB".into(),
                before: 64,
                after: 32
            }]
        );
        assert!(
            r.describe()
                .contains("Standard_E8ds_v5 -> Standard_D8ds_v5")
        );
        assert!(
            reduction(
                &id(),
                None,
                &vm("Standard_E4ds_v5"),
                &vm("Standard_E8ds_v5").into()
            )
            .is_none()
        );
    }

    #[test]
    fn cheaper_disk_sku_is_a_reduction() {
        let disk =
            |sku: &str, gb: u32| json!({"sku": {"name": sku}, "properties": {"diskSizeGB": gb}});
        let r = reduction(
            &id(),
            None,
            &disk("Premium_LRS", 1024),
            &disk("StandardSSD_LRS", 1024).into(),
        )
        .unwrap();
        assert_eq!(r.lower.len(), 2, "{r:?}");
        assert_eq!(
            r.lower[0],
            Figure {
                what: "IOPS".into(),
                before: 5000,
                after: 500
            }
        );
        assert!(
            reduction(
                &id(),
                None,
                &disk("Premium_LRS", 1024),
                &disk("Premium_LRS", 2048).into()
            )
            .is_none()
        );
    }
}
