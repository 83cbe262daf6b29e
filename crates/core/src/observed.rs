//! Observed state: the resources lifeboat manages as the cloud reports them, who
//! owns each (from tags, or the nearest tagged ancestor) and the request counts it
//! took to read them. Plain values: the engine's clients fill them, `plan` and
//! `cost` compare against them; this module never reads the cloud.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::id::{Layer, ResourceId, hex};

/// A managed resource as the cloud reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservedResource {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub body: Value,
    /// The SHA-256 of the body as read (what [`PriorState::fingerprint`]
    /// covers), when it was worked out as the body was read: off the plan's
    /// critical path ([`ObservedResource::with_digest`]), and always for a
    /// settled resource, whose body no longer is the one read.
    #[serde(skip)]
    pub read_digest: Option<[u8; 32]>,
    /// The resource was compared with its desired one as it was read and
    /// already matched it ([`crate::plan::settle`]): `body` then keeps only
    /// what readers other than the diff use.
    #[serde(skip)]
    pub settled: bool,
}

/// Equal as read: whether the digest was worked out yet does not matter.
impl PartialEq for ObservedResource {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.resource_type == o.resource_type
            && self.body == o.body
            && self.settled == o.settled
    }
}

impl ObservedResource {
    pub fn new(id: ResourceId, resource_type: String, body: Value) -> ObservedResource {
        ObservedResource {
            id,
            resource_type,
            body,
            read_digest: None,
            settled: false,
        }
    }

    /// SHA-256 of the body as read.
    pub fn digest(&self) -> [u8; 32] {
        self.read_digest.unwrap_or_else(|| body_digest(&self.body))
    }

    /// This resource with [`ObservedResource::digest`] worked out now (while
    /// the cloud is still being read) rather than when the state is
    /// fingerprinted, at the end.
    pub fn with_digest(mut self) -> ObservedResource {
        self.read_digest = Some(self.digest());
        self
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        use crate::body::field;
        field(field(self.body.as_object()?, "tags")?.as_object()?, name)?.as_str()
    }
    pub fn is_managed(&self) -> bool {
        self.tag("lifeboat-managed") == Some("true")
    }
    /// Protection is read from the resource itself, so deleting a manifest (or the
    /// template flag) cannot remove it.
    pub fn is_protected(&self) -> bool {
        self.tag("lifeboat-protected") == Some("true")
    }
    /// The resource that holds this one (ARM's `managedBy`): a VM's OS disk,
    /// which Azure creates with the VM and deletes or detaches with it. Such a
    /// resource is the platform's, not lifeboat's: never planned on its own.
    pub fn held_by(&self) -> Option<&str> {
        use crate::body::field;
        field(self.body.as_object()?, "managedBy")?
            .as_str()
            .filter(|h| !h.is_empty())
    }
    /// An OS disk a VM holds: its price is the VM's (`cost` prices a VM with
    /// its OS disk, as the manifests declare it), not a disk's of its own.
    pub fn is_held_os_disk(&self) -> bool {
        self.resource_type
            .eq_ignore_ascii_case("Microsoft.Compute/disks")
            && self.held_by().is_some()
            && at(&self.body, "/properties/osType").is_some()
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
    /// Positions in `resources`, found by their ids' keys. A table of indices
    /// rather than a map keyed by copies of the ids: a fleet's state is indexed
    /// several times per plan, ~15,000 ids of ~150 bytes each time.
    index: hashbrown::HashTable<usize>,
    hasher: hashbrown::DefaultHashBuilder,
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
        use std::hash::BuildHasher;
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut index = hashbrown::HashTable::with_capacity(resources.len());
        for (i, r) in resources.iter().enumerate() {
            let key = r.id.key();
            let h = hasher.hash_one(key);
            // A repeated id is found at its last place.
            match index.find_mut(h, |&j: &usize| resources[j].id.key() == key) {
                Some(slot) => *slot = i,
                None => {
                    index.insert_unique(h, i, |&j: &usize| hasher.hash_one(resources[j].id.key()));
                }
            }
        }
        PriorState {
            resources,
            index,
            hasher,
            requests,
        }
    }

    pub fn get(&self, id: &ResourceId) -> Option<&ObservedResource> {
        self.get_key(id.key())
    }

    /// [`PriorState::get`] by an id's lower-cased key.
    pub fn get_key(&self, key: &str) -> Option<&ObservedResource> {
        use std::hash::BuildHasher;
        self.index
            .find(self.hasher.hash_one(key), |&j| {
                self.resources[j].id.key() == key
            })
            .map(|&j| &self.resources[j])
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
            cur = x.id.parent_key().and_then(|k| self.get_key(k));
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
pub fn at<'v, J: crate::body::Json>(v: &'v J, pointer: &str) -> Option<&'v J> {
    v.at(pointer)
}

/// A JSON value as the cloud sent it, with every object and array sized to what
/// it holds. `serde_json::Value`'s own deserializer grows each object entry by
/// entry (rehashing as it goes) and keeps up to twice the room it needs; a
/// fleet's read parses ~13,000 rows of ~20 objects each, and the rows that do
/// not settle are kept whole. Same values otherwise: a repeated key keeps its
/// first place and its last value, as `Value` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Exact(pub Value);

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Exact, D::Error> {
        d.deserialize_any(ExactVisitor).map(Exact)
    }
}

struct ExactVisitor;

impl<'de> serde::de::Visitor<'de> for ExactVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Exact::deserialize(d).map(|e| e.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Exact(v)) = seq.next_element()? {
            items.push(v);
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some((k, Exact(v))) = map.next_entry()? {
            entries.push((k, v));
        }
        let mut m = serde_json::Map::with_capacity(entries.len());
        m.extend(entries);
        Ok(Value::Object(m))
    }
}

/// Parse what the cloud sent (see [`Exact`]).
pub fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Exact>(bytes).map(|e| e.0)
}

/// SHA-256 of a body's compact JSON. The JSON is written to a per-thread
/// buffer and hashed in one pass: fed to the hash piece by piece as the
/// serializer writes, most of the time went to the many tiny updates.
pub fn body_digest(body: &Value) -> [u8; 32] {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.clear();
        serde_json::to_writer(&mut *buf, body).expect("a JSON value serializes");
        Sha256::digest(&*buf).into()
    })
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

    /// Saved plans carry fingerprints made of these digests: the definition
    /// (SHA-256 of the compact JSON) must not drift, and a reused buffer must
    /// not leak one body into the next.
    #[test]
    fn a_body_digest_is_the_sha256_of_its_compact_json() {
        let long = json!({"properties": {"x": "y".repeat(5000)}, "tags": {"a": "b"}});
        let short = json!({"a": 1});
        for v in [&long, &short, &long] {
            let expected: [u8; 32] = Sha256::digest(serde_json::to_vec(v).unwrap()).into();
            assert_eq!(body_digest(v), expected);
        }
        assert_ne!(body_digest(&long), body_digest(&short));
    }

    /// A digest worked out while reading is the one the fingerprint would
    /// work out at the end, and it does not make two equal reads differ.
    #[test]
    fn a_digest_worked_out_early_is_the_same_digest() {
        let id = ResourceId::parse("/subscriptions/s/resourceGroups/rg").unwrap();
        let body = json!({"properties": {"x": 1}, "tags": {"a": "b"}});
        let late = ObservedResource::new(id.clone(), id.resource_type(), body.clone());
        let early = late.clone().with_digest();
        assert_eq!(early.read_digest, Some(body_digest(&body)));
        assert_eq!(early.digest(), late.digest());
        assert_eq!(early, late);
        let fingerprint =
            |r: ObservedResource| PriorState::new(vec![r], Requests::default()).fingerprint();
        assert_eq!(fingerprint(early), fingerprint(late));
    }

    #[test]
    fn exact_parses_what_value_parses() {
        let text = r#"{"a": {"b": [1, -2, 2.5, 1e300, true, null, "x\u00e9"]}, "dup": 1, "c": {}, "dup": 2, "e": []}"#;
        let exact = parse(text.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(exact, value);
        assert_eq!(exact.to_string(), value.to_string());
        assert!(parse(b"{\"a\": ").is_err());
    }

    #[test]
    fn the_state_finds_each_id_and_a_repeated_one_at_its_last_place() {
        let id = |n: &str| {
            ResourceId::parse(&format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/{n}"
            ))
            .unwrap()
        };
        let r = |n: &str, v: i64| {
            ObservedResource::new(
                id(n),
                "Microsoft.Network/virtualNetworks".into(),
                json!({"v": v}),
            )
        };
        let names: Vec<String> = (0..500).map(|i| format!("vnet-{i}")).collect();
        let mut all: Vec<ObservedResource> = names.iter().map(|n| r(n, 1)).collect();
        all.push(r("vnet-7", 2));
        let state = PriorState::new(all, Requests::default());
        for n in &names {
            assert_eq!(state.get(&id(n)).unwrap().id, id(n));
        }
        assert_eq!(
            state.get(&id("VNET-7")).unwrap().body["v"],
            2,
            "ids are case-insensitive"
        );
        assert!(state.get(&id("vnet-500")).is_none());
        assert!(PriorState::default().get(&id("vnet-0")).is_none());
    }
}
