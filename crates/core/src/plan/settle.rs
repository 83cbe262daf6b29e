//! Settling an observed resource as it is read: compared with its desired
//! resource the moment its row arrives, a resource that already matches keeps
//! only what readers other than the diff use. A fleet's prior state is then the
//! size of its differences, not of its bodies (#17: a 200-hospital plan held
//! every body twice, the template's and the cloud's).
//!
//! Only a resource whose plan cannot depend on anything read later is settled:
//! its desired body names no `$ref` (resolved against other resources), its
//! last operation did not fail, and the declared-properties diff is empty. Its
//! plan is then a no-op whatever else is read. (A front-end on a HiX image
//! version qualifies: matching means it runs the declared version, and a hold
//! can only pin it to the version it runs.) Pure; no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::diff::{DiffOptions, diff};
use crate::body::Body;
use crate::graph::{Graph, Resource};
use crate::observed::{ObservedResource, PriorState};

/// What a settled resource keeps of `properties` (its top-level fields, such as
/// tags, location, sku and zones, all stay), and who reads it:
/// - `provisioningState`: the plan (a failed last operation), image holds;
/// - `extended` (the power state): status, the cost of idle front-ends;
/// - `hardwareProfile`, the OS disk's type and size: vCPU quota, cost;
/// - `storageProfile.imageReference`: status, image roll-out and `image` listing;
/// - `diskSizeGB`, `kty`: cost;
/// - `osType`: which disk is a VM's own OS disk (never planned, not priced);
/// - `publishingProfile`, `replicationStatus`: image versions (holds, `image`).
///
/// Add a path here before reading it from a prior state's body.
pub const KEPT: &[&str] = &[
    "/properties/provisioningState",
    "/properties/extended",
    "/properties/hardwareProfile",
    "/properties/storageProfile/imageReference",
    "/properties/storageProfile/osDisk/managedDisk/storageAccountType",
    "/properties/storageProfile/osDisk/diskSizeGB",
    "/properties/diskSizeGB",
    "/properties/kty",
    "/properties/osType",
    "/properties/publishingProfile",
    "/properties/replicationStatus",
];

/// A graph's resources, ready to settle what is read of them.
#[derive(Debug)]
pub struct Settler {
    graph: Arc<Graph>,
    /// Lower-cased id -> index in `graph.resources` (asked of every row read:
    /// a fast hash, not SipHash).
    index: hashbrown::HashMap<String, usize>,
    /// Whether each resource's body names a `$ref`.
    names_a_ref: Vec<bool>,
    /// The paths other resources' `$ref`s read (JSON pointers), by the
    /// referenced resource's lower-cased id: a settled resource keeps them.
    referenced: HashMap<String, Vec<String>>,
}

impl Settler {
    pub fn new(graph: Arc<Graph>) -> Settler {
        // Between the render and the first list call, so split: the index on
        // one thread, the two halves of the `$ref` scan on two more (merged in
        // order: a target's paths keep the graph's order).
        let all = &graph.resources;
        let (first, second) = all.split_at(all.len() / 2);
        let scan = |part: &[Resource]| {
            let mut referenced: HashMap<String, Vec<String>> = HashMap::new();
            let names: Vec<bool> = part
                .iter()
                .map(|r| refs(&r.body, &mut referenced))
                .collect();
            (names, referenced)
        };
        let (index, (mut names_a_ref, mut referenced), (names, more)) = std::thread::scope(|s| {
            let index = s.spawn(|| {
                all.iter()
                    .enumerate()
                    .map(|(i, r)| (r.id.key().to_string(), i))
                    .collect()
            });
            let head = s.spawn(|| scan(first));
            let tail = scan(second);
            (
                index.join().expect("indexing does not panic"),
                head.join().expect("the $ref scan does not panic"),
                tail,
            )
        });
        names_a_ref.extend(names);
        for (target, paths) in more {
            referenced.entry(target).or_default().extend(paths);
        }
        Settler {
            index,
            names_a_ref,
            referenced,
            graph,
        }
    }

    /// `observed`, settled when a desired resource has its id. A VM's own
    /// OS disk (Azure's, held by the VM: never planned) keeps no more than a
    /// settled resource does either: a fleet has one per front-end (~5,000),
    /// read in full they were ~15 MB of a plan's peak.
    pub fn settle(&self, observed: ObservedResource) -> ObservedResource {
        let Some(&i) = self.index.get(observed.id.key()) else {
            return match observed.is_held_os_disk() {
                true => trimmed(observed, &[]),
                false => observed,
            };
        };
        if self.names_a_ref[i] {
            return observed;
        }
        let referenced = self
            .referenced
            .get(observed.id.key())
            .map_or(&[][..], Vec::as_slice);
        settle_checked(&self.graph.resources[i], observed, referenced)
    }
}

/// Add the `$ref`s in `v` to `out` (see [`Settler`]); whether there were any.
fn refs(v: &Body, out: &mut HashMap<String, Vec<String>>) -> bool {
    match v {
        Body::Object(m) => {
            let mut found = false;
            if let Some(r) = v.get("$ref") {
                found = true;
                if let (Some(id), Some(path)) = (
                    r.get("id").and_then(Body::as_str),
                    r.get("path").and_then(Body::as_str),
                ) {
                    out.entry(id.to_ascii_lowercase())
                        .or_default()
                        .push(format!("/{}", path.replace('.', "/")));
                }
            }
            // Every value is walked (no short cut): all references are collected.
            for (_, x) in m.iter() {
                found |= refs(x, out);
            }
            found
        }
        Body::Array(a) => {
            let mut found = false;
            for x in a.iter() {
                found |= refs(x, out);
            }
            found
        }
        _ => false,
    }
}

/// `observed`, settled against `desired` when it already matches it (see the
/// module docs); unchanged otherwise. `referenced`: the paths other resources'
/// `$ref`s read from it. (What [`Settler::settle`] does for one resource, with
/// the `$ref` check it makes once per graph; the tests' entry.)
#[cfg(test)]
fn settle(
    desired: &Resource,
    observed: ObservedResource,
    referenced: &[String],
) -> ObservedResource {
    if refs(&desired.body, &mut HashMap::new()) {
        return observed;
    }
    settle_checked(desired, observed, referenced)
}

/// Settle `observed` against `desired`, known to name no `$ref`.
fn settle_checked(
    desired: &Resource,
    observed: ObservedResource,
    referenced: &[String],
) -> ObservedResource {
    if observed.settled || super::failed(&observed) {
        return observed;
    }
    let unresolved = PriorState::default();
    let differs = !diff(
        &desired.body,
        &observed.body,
        &DiffOptions {
            ignore: &desired.lifecycle.ignore,
            replace_on: &desired.lifecycle.replace_on,
            prior: &unresolved,
        },
    )
    .is_empty();
    if differs {
        return observed;
    }
    let mut observed = trimmed(observed, referenced);
    observed.settled = true;
    observed
}

/// `observed` with only what [`kept`] keeps, its digest (what a saved plan's
/// fingerprint covers) still that of the body as read.
fn trimmed(mut observed: ObservedResource, referenced: &[String]) -> ObservedResource {
    let digest = observed.digest();
    observed.body = kept(observed.body, referenced);
    observed.read_digest = Some(digest);
    observed
}

/// The body's top-level fields (but nulls, which read as absent), and of
/// `properties` only [`KEPT`] and `referenced`; every object sized to what it
/// holds (a map grown entry by entry keeps up to twice its room, and a fleet
/// has tens of thousands of them).
fn kept(body: Value, referenced: &[String]) -> Value {
    let Value::Object(mut top) = body else {
        return body;
    };
    let props = top.remove("properties");
    let mut out = Value::Object(Map::new());
    if let Some(props) = props {
        let full = Value::Object(Map::from_iter([("properties".to_string(), props)]));
        for path in KEPT
            .iter()
            .copied()
            .chain(referenced.iter().map(String::as_str))
        {
            if let Some(v) = crate::observed::at(&full, path) {
                put(&mut out, path, v.clone());
            }
        }
    }
    let props = out.get_mut("properties").map(Value::take);
    tight(Value::Object(
        top.into_iter()
            .filter(|(_, v)| !v.is_null())
            .chain(props.map(|p| ("properties".to_string(), p)))
            .collect(),
    ))
}

/// `v` with every object and array allocated to its size.
fn tight(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, tight(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(tight).collect()),
        v => v,
    }
}

/// Set `path` (a JSON pointer) in `v`, making the objects on the way.
fn put(v: &mut Value, path: &str, value: Value) {
    let mut cur = v;
    let mut segs = path.trim_start_matches('/').split('/').peekable();
    while let Some(seg) = segs.next() {
        let Value::Object(m) = cur else { return };
        if segs.peek().is_none() {
            m.insert(seg.to_string(), value);
            return;
        }
        cur = m
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ResourceId;
    use crate::observed::body_digest;
    use serde_json::json;

    fn resource(body: Value) -> Resource {
        Resource {
            id: ResourceId::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            )
            .unwrap(),
            resource_type: "Microsoft.Compute/virtualMachines".into(),
            api_version: "2024-07-01".into(),
            layer: crate::id::Layer::Tenant,
            tenant: Some("t".into()),
            body: body.into(),
            depends_on: Vec::new(),
            lifecycle: Default::default(),
            template: "t".into(),
            template_line: 1,
            secrets: Vec::new(),
        }
    }

    fn seen(r: &Resource, body: Value) -> ObservedResource {
        ObservedResource::new(r.id.clone(), r.resource_type.clone(), body)
    }

    #[test]
    fn a_matching_resource_keeps_what_other_readers_use_and_its_digest() {
        let r = resource(json!({"location": "westeurope", "tags": {"a": "b"},
            "properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}, "osProfile": {"computerName": "x"}}}));
        let cloud = json!({"location": "westeurope", "tags": {"a": "b"}, "zones": ["1"],
            "properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}, "osProfile": {"computerName": "x"},
                "vmId": "guid", "provisioningState": "Succeeded", "principalId": "p",
                "extended": {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}}}});
        let full = seen(&r, cloud.clone());
        let s = settle(&r, full.clone(), &["/properties/principalId".to_string()]);
        assert!(s.settled);
        assert_eq!(s.read_digest, Some(body_digest(&cloud)));
        // The fingerprint does not change with settling.
        assert_eq!(s.digest(), full.digest());
        assert_eq!(
            s.body,
            json!({"location": "westeurope", "tags": {"a": "b"}, "zones": ["1"],
                "properties": {"provisioningState": "Succeeded",
                    "extended": {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}},
                    "hardwareProfile": {"vmSize": "Standard_D4s_v5"}, "principalId": "p"}})
        );
    }

    /// A VM's own OS disk, which no manifest declares, is read as small as a
    /// settled resource (it is never planned): still known for what it is,
    /// its digest that of the body as read. Another undeclared disk is kept
    /// whole (a delete orders itself by the ids in its body).
    #[test]
    fn a_vms_own_os_disk_is_kept_small() {
        let graph = Graph {
            resources: vec![resource(json!({"location": "westeurope"}))],
            ..Default::default()
        };
        let settler = Settler::new(Arc::new(graph));
        let id = |name: &str| {
            ResourceId::parse(&format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/{name}"
            ))
            .unwrap()
        };
        let body = json!({"location": "westeurope", "managedBy": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "sku": {"name": "Premium_LRS"}, "properties": {"osType": "Windows", "diskSizeGB": 127,
                "provisioningState": "Succeeded", "creationData": {"createOption": "FromImage"},
                "encryption": {"diskEncryptionSetId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des"}}});
        let os = ObservedResource::new(
            id("vm-osdisk"),
            "Microsoft.Compute/disks".into(),
            body.clone(),
        );
        let small = settler.settle(os.clone());
        assert!(small.is_held_os_disk() && !small.settled);
        assert_eq!(small.read_digest, Some(body_digest(&body)));
        assert!(small.body.pointer("/properties/creationData").is_none());
        assert_eq!(small.body["properties"]["diskSizeGB"], 127);
        let mut loose_body = body;
        loose_body.as_object_mut().unwrap().remove("managedBy");
        let loose = ObservedResource::new(id("old"), "Microsoft.Compute/disks".into(), loose_body);
        assert_eq!(settler.settle(loose.clone()).body, loose.body);
    }

    /// Every reader of a prior state's bodies reads a settled one as it would
    /// the body as read: cost, vCPU quota, status and the image roll-out.
    #[test]
    fn readers_see_the_same_in_a_settled_body() {
        let os = json!({"name": "fe1-osdisk", "createOption": "FromImage", "diskSizeGB": 256,
            "managedDisk": {"storageAccountType": "Premium_LRS", "diskEncryptionSet": {"id": "/des"}}});
        let image = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.1";
        let declared = json!({"location": "westeurope", "tags": {"a": "b"}, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {"imageReference": {"id": image}, "osDisk": os}}});
        let r = resource(declared.clone());
        let mut cloud = declared;
        cloud["sku"] = Value::Null;
        cloud["properties"]["provisioningState"] = json!("Succeeded");
        cloud["properties"]["vmId"] = json!("guid");
        cloud["properties"]["extended"] =
            json!({"instanceView": {"powerState": {"code": "PowerState/deallocated"}}});
        let full = seen(&r, cloud);
        let settled = settle(&r, full.clone(), &[]);
        assert!(settled.settled);
        assert_ne!(settled.body, full.body);
        let prices = crate::cost::PriceTable::parse(crate::cost::EMBEDDED_WESTEUROPE).unwrap();
        for deallocated in [false, true] {
            let cost =
                |b: &Value| prices.resource(&r.resource_type, b, deallocated, &mut Vec::new());
            assert_eq!(cost(&settled.body), cost(&full.body));
        }
        for path in KEPT.iter().chain(&["/tags", "/location"]) {
            assert_eq!(
                settled.body.pointer(path),
                full.body.pointer(path),
                "{path}"
            );
        }
        assert_eq!(
            super::super::gallery_image(&settled.body),
            super::super::gallery_image(&full.body)
        );
        assert_eq!(settled.digest(), full.digest());
    }

    #[test]
    fn what_could_change_the_plan_is_kept_whole() {
        let cloud = json!({"properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}, "provisioningState": "Succeeded"}});
        // A difference.
        let r = resource(json!({"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v5"}}}));
        assert!(!settle(&r, seen(&r, cloud.clone()), &[]).settled);
        // A reference resolved against other resources.
        let r = resource(
            json!({"properties": {"x": {"$ref": {"id": "/subscriptions/s", "path": "id"}}}}),
        );
        assert!(!settle(&r, seen(&r, cloud.clone()), &[]).settled);
        // A front-end on another HiX image version than declared differs; on the
        // declared one it settles, and keeps the version for the roll-out rules.
        let image = |v: &str| {
            json!({"properties": {"storageProfile": {"imageReference": {"id":
            format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/{v}")}}}})
        };
        let r = resource(image("1.0.1"));
        assert!(!settle(&r, seen(&r, image("1.0.0")), &[]).settled);
        let s = settle(&r, seen(&r, image("1.0.1")), &[]);
        assert!(s.settled);
        assert_eq!(
            super::super::gallery_image(&s.body).unwrap().name(),
            "1.0.1"
        );
        // A failed last operation (put again).
        let r = resource(json!({"properties": {}}));
        let failed = json!({"properties": {"provisioningState": "Failed"}});
        assert!(!settle(&r, seen(&r, failed), &[]).settled);
        assert!(settle(&r, seen(&r, cloud), &[]).settled);
    }

    #[test]
    fn refs_are_collected_by_target() {
        let g = Graph {
            resources: vec![resource(
                json!({"properties": {"a": [{"b": {"$ref": {"id": "/X/Y", "path": "properties.principalId"}}}]}}),
            )],
            deps: vec![Vec::new()],
        };
        let s = Settler::new(Arc::new(g));
        assert_eq!(
            s.referenced["/x/y"],
            vec!["/properties/principalId".to_string()]
        );
        assert_eq!(s.names_a_ref, [true]);
    }
}
