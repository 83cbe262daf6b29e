//! The prior state `plan` compares against, read in bulk: one Resource Graph query
//! (paged by 1000) over the subscription, filtered on the lifeboat tags and the
//! managed resource groups; resources the latest apply wrote are then re-read
//! directly, because Resource Graph lags ARM writes. `--refresh direct` does a GET
//! per desired resource instead (it cannot find orphans whose manifest is gone).
//!
//! Reads only; never decides what should change.

use futures::StreamExt;
use serde_json::Value;

use super::client::{ArmClient, ArmError};
use lifeboat_core::id::ResourceId;
use lifeboat_core::observed::{ObservedResource, PriorState, Requests};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Graph,
    Direct,
}

/// A resource to read directly, with the api-version to read it with.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub id: ResourceId,
    pub api_version: String,
}

/// The Resource Graph query for everything lifeboat manages in a subscription:
/// tagged resources, plus every resource in a resource group named with the
/// platform prefix (child types such as peerings and containers cannot be tagged).
pub fn managed_query(prefix: &str) -> String {
    format!(
        "resources | union resourcecontainers | where tags['lifeboat-managed'] =~ 'true' or resourceGroup startswith '{prefix}-' | project id, name, type, location, resourceGroup, tags, properties, sku, kind, zones, identity"
    )
}

fn observed(id: ResourceId, mut body: Value) -> ObservedResource {
    if let Some(o) = body.as_object_mut() {
        for k in [
            "id",
            "name",
            "type",
            "subscriptionId",
            "resourceGroup",
            "tenantId",
        ] {
            o.remove(k);
        }
    }
    ObservedResource {
        resource_type: id.resource_type(),
        id,
        body,
    }
}

/// Read the prior state. `desired` is what the manifests declare (read one by one
/// with `--refresh direct`); `recent` is what the latest apply wrote.
pub async fn read(
    client: &ArmClient,
    subscription: &str,
    refresh: Refresh,
    prefix: &str,
    desired: &[Wanted],
    recent: &[Wanted],
) -> Result<PriorState, ArmError> {
    let before = client.stats.snapshot();
    let mut found: Vec<ObservedResource> = Vec::new();
    let direct: Vec<&Wanted> = match refresh {
        Refresh::Graph => {
            let rows = client
                .query(&[subscription.to_string()], &managed_query(prefix))
                .await?;
            for row in rows {
                let Some(id) = row
                    .get("id")
                    .and_then(Value::as_str)
                    .and_then(|s| ResourceId::parse(s).ok())
                else {
                    continue;
                };
                found.push(observed(id, row));
            }
            recent.iter().collect()
        }
        Refresh::Direct => desired.iter().chain(recent).collect(),
    };
    let reads = futures::stream::iter(direct)
        .map(|w| async move { (w.id.clone(), client.get(&w.id, &w.api_version).await) })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let mut by_key: std::collections::HashMap<String, usize> = found
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.key().to_string(), i))
        .collect();
    let mut gone = std::collections::HashSet::new();
    for (id, result) in reads {
        match result? {
            Some(body) => {
                let r = observed(id, body);
                match by_key.get(r.id.key()) {
                    Some(&i) => found[i] = r,
                    None => {
                        by_key.insert(r.id.key().to_string(), found.len());
                        found.push(r);
                    }
                }
            }
            None => {
                gone.insert(id.key().to_string());
            }
        }
    }
    found.retain(|r| !gone.contains(r.id.key()));
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.dedup_by(|a, b| a.id == b.id);
    let after = client.stats.snapshot();
    let requests = Requests {
        read: after.reads() - before.reads(),
        write: after.writes() - before.writes(),
    };
    // Untagged child types (peerings, containers) count when an ancestor is managed.
    let all = PriorState::new(found, requests);
    let keep: Vec<bool> = all
        .resources
        .iter()
        .map(|r| all.ownership(r).is_some())
        .collect();
    // Moved, not cloned: a fleet's state is tens of megabytes.
    let managed: Vec<ObservedResource> = all
        .resources
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect();
    Ok(PriorState::new(managed, requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_the_tag_and_groups() {
        let q = managed_query("lb");
        assert!(q.contains("tags['lifeboat-managed'] =~ 'true'"));
        assert!(q.contains("resourceGroup startswith 'lb-'"));
    }
}
