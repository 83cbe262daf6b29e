//! The vCPUs a plan needs per region and VM family: what its VM creates and
//! resizes add (Azure counts deallocated VMs against the quota, so a front-end
//! that waits deallocated needs its vCPUs as much as a running one). The engine
//! fills in what Azure's `usages` say is used and allowed; `apply` refuses a plan
//! that does not fit, before it writes anything.
//!
//! Pure arithmetic on the plan; never reads the cloud.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Action, Change};
use crate::body::Json;
use crate::model::sizes;
use crate::observed::PriorState;

/// What a plan needs of one family's quota in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaNeed {
    pub region: String,
    pub family: String,
    /// vCPUs the plan adds.
    pub need: u64,
    /// vCPUs in use now, and the limit (from `usages`; absent until read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The sizes of this family the plan creates or resizes to.
    #[serde(default)]
    pub sizes: Vec<String>,
    /// Of those, the ones Azure's Resource SKUs say this subscription cannot
    /// have in the region (absent, or restricted), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

impl QuotaNeed {
    pub fn free(&self) -> Option<u64> {
        Some(self.limit?.saturating_sub(self.used?))
    }

    /// False when the usages say it does not fit, or a size is not offered.
    pub fn fits(&self) -> bool {
        self.unavailable.is_empty() && self.free().is_none_or(|f| self.need <= f)
    }

    pub fn describe(&self) -> String {
        let mut text = self.describe_vcpus();
        if !self.unavailable.is_empty() {
            text.push_str(&format!("; not offered: {}", self.unavailable.join(", ")));
        }
        text
    }

    fn describe_vcpus(&self) -> String {
        match (self.free(), self.limit) {
            (Some(free), Some(limit)) => format!(
                "{} in {}: needs {} vCPUs, {free} free of {limit}",
                self.family, self.region, self.need
            ),
            _ => format!(
                "{} in {}: needs {} vCPUs",
                self.family, self.region, self.need
            ),
        }
    }
}

fn vm_size<J: Json>(body: &J) -> Option<&str> {
    crate::observed::at(body, "/properties/hardwareProfile/vmSize")?.as_str()
}

fn region<J: Json>(body: &J) -> String {
    Json::get(body, "location")
        .and_then(J::as_str)
        .unwrap_or("")
        .replace(' ', "")
        .to_ascii_lowercase()
}

/// The vCPUs `changes` add per (region, family); families that only shrink or
/// stay are left out.
pub fn needs(changes: &[Change], prior: &PriorState) -> Vec<QuotaNeed> {
    let mut by: BTreeMap<(String, String), (u64, Vec<String>)> = BTreeMap::new();
    for c in changes {
        // Only what a plan creates or changes can need vCPUs: a fleet's
        // unchanged VMs (~9,500) are not looked up.
        if !matches!(c.action, Action::Create | Action::Update | Action::Replace)
            || !c
                .resource_type
                .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
        {
            continue;
        }
        let Some(body) = c.body.as_ref() else {
            continue;
        };
        let Some(size) = vm_size(body) else { continue };
        let before = prior.get(&c.id).and_then(|o| vm_size(&o.body));
        let add = match (c.action, before) {
            (Action::Create, _) => sizes::vcpus(size),
            (Action::Update | Action::Replace, Some(old)) => {
                let same_family = sizes::quota_family(old) == sizes::quota_family(size);
                if same_family {
                    sizes::vcpus(size).saturating_sub(sizes::vcpus(old))
                } else {
                    sizes::vcpus(size)
                }
            }
            _ => 0,
        };
        if add == 0 {
            continue;
        }
        let family = sizes::quota_family(size).unwrap_or_else(|| "standardFamily".into());
        let e = by.entry((region(body), family)).or_default();
        e.0 += add;
        if !e.1.iter().any(|s| s == size) {
            e.1.push(size.to_string());
        }
    }
    by.into_iter()
        .map(|((region, family), (need, mut sizes))| {
            sizes.sort();
            QuotaNeed {
                region,
                family,
                need,
                used: None,
                limit: None,
                sizes,
                unavailable: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_and_fit() {
        let mut n = QuotaNeed {
            region: "westeurope".into(),
            family: "standardDSv5Family".into(),
            need: 8,
            used: None,
            limit: None,
            sizes: vec!["Standard_D4s_v5".into()],
            unavailable: Vec::new(),
        };
        assert!(n.fits(), "unknown usage never refuses");
        n.used = Some(95);
        n.limit = Some(100);
        assert_eq!(n.free(), Some(5));
        assert!(!n.fits());
        assert_eq!(
            n.describe(),
            "standardDSv5Family in westeurope: needs 8 vCPUs, 5 free of 100"
        );
        n.limit = Some(1000);
        assert!(n.fits());
        n.unavailable = vec!["Standard_D4s_v5 (NotAvailableForSubscription)".into()];
        assert!(!n.fits(), "a size the subscription cannot have never fits");
    }
}
