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
    /// Set when the resource was compared with its desired one as it was read
    /// and already matched it ([`crate::plan::settle`]): `body` then keeps only
    /// what readers other than the diff use, and this is the SHA-256 of the
    /// body as read (what [`PriorState::fingerprint`] covers).
    #[serde(skip)]
    pub matched: Option<[u8; 32]>,
}

impl ObservedResource {
    pub fn new(id: ResourceId, resource_type: String, body: Value) -> ObservedResource {
        ObservedResource {
            id,
            resource_type,
            body,
            matched: None,
        }
    }

    /// SHA-256 of the body as read.
    pub fn digest(&self) -> [u8; 32] {
        self.matched.unwrap_or_else(|| body_digest(&self.body))
    }

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

    /// A fingerprint of the whole state, recorded in saved plans: each
    /// resource's id and the digest of its body as read.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for r in &self.resources {
            h.update(r.id.key().as_bytes());
            h.update(r.digest());
        }
        hex(&h.finalize())
    }
}

/// The value at a JSON pointer whose tokens need no unescaping (`/a/b/0`), read
/// without allocating: `serde_json::Value::pointer` unescapes each token into a
/// new string, which showed in a fleet plan's profile (15,000 bodies, a dozen
/// reads each).
pub fn at<'v>(v: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(v);
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .try_fold(v, |cur, token| match cur {
            Value::Object(m) => m.get(token),
            Value::Array(a) => a.get(token.parse::<usize>().ok()?),
            _ => None,
        })
}

/// SHA-256 of a body's compact JSON, hashed as it is written.
pub fn body_digest(body: &Value) -> [u8; 32] {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    serde_json::to_writer(&mut h, body).expect("a JSON value serializes");
    h.0.finalize().into()
}

/// What lifeboat has recorded as its own (lower-cased ids): resources it wrote
/// or found declared and present after an apply, and those ever protected. The
/// engine's state store keeps it; `plan` only deletes what it records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub recorded: std::collections::HashSet<String>,
    pub protected: std::collections::HashSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn at_reads_what_pointer_reads() {
        let v = json!({"a": {"b": [1, {"c": "x"}]}, "": 0});
        for p in [
            "", "/a", "/a/b", "/a/b/0", "/a/b/1/c", "/a/b/2", "/a/x", "/a/b/c", "x", "/",
        ] {
            assert_eq!(at(&v, p), v.pointer(p), "{p}");
        }
    }
}
