//! Observed state: the resources lifeboat manages as the cloud reports them, who
//! owns each (from tags, or the nearest tagged ancestor) and the request counts it
//! took to read them. Plain values: the engine's clients fill them, `plan` and
//! `cost` compare against them; this module never reads the cloud.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::id::{Layer, ResourceId, hex};

/// A managed resource as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedResource {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub body: Value,
}

impl ObservedResource {
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.body.get("tags")?.get(name)?.as_str()
    }
    pub fn is_managed(&self) -> bool {
        self.tag("lifeboat-managed") == Some("true")
    }
    /// Protection is read from the resource itself, so deleting a manifest (or the
    /// template flag) cannot remove it.
    pub fn is_protected(&self) -> bool {
        self.tag("lifeboat-protected") == Some("true")
    }
}

/// Request counts, as reported in plan output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    pub read: u64,
    pub write: u64,
    /// Of the reads: Resource Graph pages, collection pages (non-indexed
    /// children, quota usages) and single-resource GETs.
    #[serde(default)]
    pub graph_pages: u64,
    #[serde(default)]
    pub lists: u64,
    #[serde(default)]
    pub gets: u64,
}

/// Everything lifeboat manages in the cloud right now, indexed by id.
#[derive(Debug, Clone, Default)]
pub struct PriorState {
    pub resources: Vec<ObservedResource>,
    index: HashMap<String, usize>,
    /// Requests it took to read this state.
    pub requests: Requests,
}

/// Who owns an observed resource (from its tags, or its nearest tagged ancestor for
/// types ARM cannot tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub layer: Layer,
    pub tenant: Option<String>,
    pub protected: bool,
}

impl PriorState {
    pub fn new(resources: Vec<ObservedResource>, requests: Requests) -> PriorState {
        let index = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.key().to_string(), i))
            .collect();
        PriorState {
            resources,
            index,
            requests,
        }
    }

    pub fn get(&self, id: &ResourceId) -> Option<&ObservedResource> {
        self.index.get(id.key()).map(|&i| &self.resources[i])
    }

    pub fn ownership(&self, r: &ObservedResource) -> Option<Ownership> {
        let mut cur = Some(r);
        let mut protected = r.is_protected();
        while let Some(x) = cur {
            if let Some(layer) = x.tag("lifeboat-layer").and_then(Layer::parse) {
                return Some(Ownership {
                    layer,
                    tenant: x.tag("lifeboat-tenant").map(str::to_string),
                    protected,
                });
            }
            cur = x.id.parent().and_then(|p| self.get(&p));
            protected |= cur.is_some_and(|c| c.is_protected());
        }
        None
    }

    /// A fingerprint of the whole state, recorded in saved plans.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.resources {
            h.update(r.id.key().as_bytes());
            h.update(serde_json::to_vec(&r.body).unwrap_or_default());
        }
        hex(&h.finalize())
    }
}

/// What lifeboat has recorded as its own (lower-cased ids): resources it wrote
/// or found declared and present after an apply, and those ever protected. The
/// engine's state store keeps it; `plan` only deletes what it records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub recorded: std::collections::HashSet<String>,
    pub protected: std::collections::HashSet<String>,
}
