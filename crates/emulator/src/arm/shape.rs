//! How ARM shapes what it stores and returns, beyond the request body: children
//! declared inline in their parent (subnets, security rules, peerings) stored as
//! the child resources they are and shown inside the parent's GET; the fields the
//! server fills (etag, resourceGuid, the six default NSG rules, private IPs, vmId,
//! disk timeCreated/uniqueId/diskState, storage endpoints, vault and key URIs, OS
//! disk names); and ARM's casing of ids. What the recordings and spec examples in
//! `shared/azure` show is the reference.
//!
//! Never decides whether a request is allowed (see `rules`) or how long it takes.

use std::collections::BTreeMap;

use super::*;
use crate::store::StoredResource;

pub(super) use lifeboat_core::api::{InlineChildren as Inline, inline_children as inline_kinds};

/// ARM's casing of the fixed segments (`resourceGroups`, `providers`), whatever
/// casing the request used.
pub(super) fn canonical_id(id: &str) -> String {
    let mut segs: Vec<&str> = id.split('/').collect();
    for s in segs.iter_mut() {
        if s.eq_ignore_ascii_case("resourcegroups") {
            *s = "resourceGroups";
        } else if s.eq_ignore_ascii_case("subscriptions") {
            *s = "subscriptions";
        } else if s.eq_ignore_ascii_case("providers") {
            *s = "providers";
        }
    }
    segs.join("/")
}

/// The children a parent's PUT declares inline, taken out of its body.
pub(super) struct Declared {
    pub children: Vec<(ResourceId, Value)>,
    /// Kinds whose set the PUT replaces.
    pub replaced: Vec<&'static Inline>,
}

pub(super) fn take_inline(id: &ResourceId, body: &mut Value) -> Declared {
    let mut out = Declared {
        children: Vec::new(),
        replaced: Vec::new(),
    };
    let rtype = id.resource_type();
    for kind in inline_kinds(&rtype) {
        let items = body
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .and_then(|p| p.remove(kind.key));
        let items = match items {
            Some(Value::Array(a)) => a,
            _ if kind.replaced_by_parent => Vec::new(),
            _ => continue,
        };
        if kind.replaced_by_parent {
            out.replaced.push(kind);
        }
        for mut item in items {
            let Some(name) = item.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            if let Some(o) = item.as_object_mut() {
                for k in ["id", "name", "type", "etag"] {
                    o.remove(k);
                }
            }
            if let Some(p) = item.get_mut("properties").and_then(Value::as_object_mut) {
                p.remove("provisioningState");
            }
            out.children.push((id.child(kind.key, &name), item));
        }
    }
    out
}

/// Store `r` as if a PUT had created it (children declared inline become the
/// child resources they are), for tests and benchmarks that seed a cloud.
pub fn put_as_applied(
    store: &crate::store::Store,
    mut r: StoredResource,
) -> Result<(), crate::store::StoreError> {
    let declared = take_inline(&r.id, &mut r.body);
    store.put(&r)?;
    for (id, body) in declared.children {
        store.put(&StoredResource::new(
            id.clone(),
            id.resource_type(),
            r.api_version.clone(),
            body,
        ))?;
    }
    Ok(())
}

/// An NSG's six default rules, as every NSG GET returns them.
fn default_rules(nsg: &str) -> Value {
    let rule =
        |name: &str, dir: &str, prio: u32, access: &str, src: &str, dst: &str, desc: &str| {
            json!({
                "name": name,
                "id": format!("{nsg}/defaultSecurityRules/{name}"),
                "etag": format!("W/\"{}\"", stable_guid(&format!("etag:{nsg}"))),
                "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
                "properties": {
                    "provisioningState": "Succeeded",
                    "description": desc,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": src,
                    "destinationAddressPrefix": dst,
                    "access": access,
                    "priority": prio,
                    "direction": dir,
                    "sourcePortRanges": [], "destinationPortRanges": [],
                    "sourceAddressPrefixes": [], "destinationAddressPrefixes": [],
                }
            })
        };
    json!([
        rule(
            "AllowVnetInBound",
            "Inbound",
            65000,
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow inbound traffic from all VMs in VNET"
        ),
        rule(
            "AllowAzureLoadBalancerInBound",
            "Inbound",
            65001,
            "Allow",
            "AzureLoadBalancer",
            "*",
            "Allow inbound traffic from azure load balancer"
        ),
        rule(
            "DenyAllInBound",
            "Inbound",
            65500,
            "Deny",
            "*",
            "*",
            "Deny all inbound traffic"
        ),
        rule(
            "AllowVnetOutBound",
            "Outbound",
            65000,
            "Allow",
            "VirtualNetwork",
            "VirtualNetwork",
            "Allow outbound traffic from all VMs to all VMs in VNET"
        ),
        rule(
            "AllowInternetOutBound",
            "Outbound",
            65001,
            "Allow",
            "*",
            "Internet",
            "Allow outbound traffic from all VMs to Internet"
        ),
        rule(
            "DenyAllOutBound",
            "Outbound",
            65500,
            "Deny",
            "*",
            "*",
            "Deny all outbound traffic"
        ),
    ])
}

/// Network types that carry a `resourceGuid`.
const GUIDED: &[&str] = &[
    "microsoft.network/virtualnetworks",
    "microsoft.network/networksecuritygroups",
    "microsoft.network/networkinterfaces",
    "microsoft.network/publicipaddresses",
    "microsoft.network/loadbalancers",
    "microsoft.network/virtualnetworks/virtualnetworkpeerings",
];

pub(super) fn set(body: &mut Value, pointer: &str, v: Value) {
    let mut cur = body;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let o = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            o.insert((*p).to_string(), v);
            return;
        }
        cur = o.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
}

pub(super) fn missing(body: &Value, pointer: &str) -> bool {
    body.pointer(pointer).is_none_or(Value::is_null)
}

impl Emulator {
    /// Fields the server fills when a resource is created, kept on every update
    /// (ARM never lets a client set them).
    pub(super) fn server_fields(
        &self,
        id: &ResourceId,
        body: &mut Value,
        existing: Option<&StoredResource>,
        now: u64,
    ) {
        let t = id.resource_type().to_ascii_lowercase();
        let key = id.key();
        let name = id.name().to_ascii_lowercase();
        let mut fields: Vec<(&str, Value)> = Vec::new();
        if GUIDED.contains(&t.as_str()) {
            fields.push((
                "/properties/resourceGuid",
                json!(stable_guid(&format!("guid:{key}"))),
            ));
        }
        match t.as_str() {
            "microsoft.compute/virtualmachines" => {
                fields.push(("/properties/vmId", json!(stable_guid(&format!("vm:{key}")))));
                fields.push(("/properties/timeCreated", json!(rfc3339(now))));
                fields.push((
                    "/properties/storageProfile/osDisk/name",
                    json!(format!(
                        "{}_OsDisk_1_{}",
                        id.name(),
                        stable_guid(&format!("osdisk:{key}")).replace('-', "")
                    )),
                ));
            }
            "microsoft.compute/disks" => {
                fields.push(("/properties/timeCreated", json!(rfc3339(now))));
                fields.push((
                    "/properties/uniqueId",
                    json!(stable_guid(&format!("disk:{key}"))),
                ));
            }
            "microsoft.storage/storageaccounts" => {
                let ep = |svc: &str| json!(format!("https://{name}.{svc}.core.windows.net/"));
                fields.push((
                    "/properties/primaryEndpoints",
                    json!({"blob": ep("blob"), "dfs": ep("dfs"), "file": ep("file"),
                        "queue": ep("queue"), "table": ep("table"), "web": ep("web")}),
                ));
                fields.push(("/properties/creationTime", json!(rfc3339(now))));
                fields.push((
                    "/properties/primaryLocation",
                    json!(Self::location_of(body)),
                ));
                fields.push(("/properties/statusOfPrimary", json!("available")));
            }
            "microsoft.keyvault/vaults" => {
                fields.push((
                    "/properties/vaultUri",
                    json!(format!("https://{name}.vault.azure.net/")),
                ));
            }
            "microsoft.keyvault/vaults/keys" => {
                let vault = id
                    .parent()
                    .map(|p| p.name().to_ascii_lowercase())
                    .unwrap_or_default();
                let uri = format!("https://{vault}.vault.azure.net/keys/{}", id.name());
                let version = stable_guid(&format!("keyversion:{key}:{now}")).replace('-', "");
                fields.push(("/properties/keyUri", json!(uri)));
                fields.push((
                    "/properties/keyUriWithVersion",
                    json!(format!("{uri}/{version}")),
                ));
            }
            _ => {}
        }
        for (pointer, v) in fields {
            let kept = existing.and_then(|e| e.body.pointer(pointer)).cloned();
            if kept.is_some() || missing(body, pointer) {
                set(body, pointer, kept.unwrap_or(v));
            }
        }
        if t == "microsoft.network/networkinterfaces" {
            self.private_ips(id, body, existing);
        }
    }

    /// Dynamic private IPs from the subnet's range, first free host after the
    /// five Azure reserves; a NIC keeps its addresses across updates.
    fn private_ips(&self, id: &ResourceId, body: &mut Value, existing: Option<&StoredResource>) {
        let Some(configs) = body
            .pointer_mut("/properties/ipConfigurations")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        for (i, c) in configs.iter_mut().enumerate() {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("ipconfig1")
                .to_string();
            let kept = existing.and_then(|e| {
                e.body
                    .pointer("/properties/ipConfigurations")?
                    .as_array()?
                    .iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some(&cname))?
                    .pointer("/properties/privateIPAddress")
                    .cloned()
            });
            set(c, "/properties/primary", json!(i == 0));
            set(c, "/properties/privateIPAddressVersion", json!("IPv4"));
            if missing(c, "/properties/privateIPAllocationMethod") {
                set(c, "/properties/privateIPAllocationMethod", json!("Dynamic"));
            }
            if !missing(c, "/properties/privateIPAddress") {
                continue;
            }
            let ip = kept.or_else(|| {
                let subnet = c
                    .pointer("/properties/subnet/id")
                    .and_then(Value::as_str)
                    .and_then(|s| ResourceId::parse(s).ok())?;
                self.allocate_ip(&subnet, &format!("{}/ipConfigurations/{cname}", id.key()))
                    .map(Value::String)
            });
            if let Some(ip) = ip {
                set(c, "/properties/privateIPAddress", ip);
            }
        }
    }

    /// Take the next free address of `subnet` for `owner` (kept in the subnet's
    /// record, as ARM keeps its `ipConfigurations`).
    fn allocate_ip(&self, subnet: &ResourceId, owner: &str) -> Option<String> {
        let lock = self.lock(subnet);
        let _g = lock.lock().expect("subnet lock");
        let mut s = self.store.get(subnet).ok()??;
        let prefix = s
            .body
            .pointer("/properties/addressPrefix")?
            .as_str()?
            .to_string();
        let block = super::rules::block(&prefix)?;
        let mut taken: BTreeMap<String, String> = s
            .body
            .pointer("/properties/ipConfigurations")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((
                            x.get("id")?.as_str()?.to_ascii_lowercase(),
                            x.get("privateIPAddress")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ip) = taken.get(owner) {
            return Some(ip.clone());
        }
        let used: std::collections::HashSet<&String> = taken.values().collect();
        // Azure keeps the first four addresses and the last one.
        let ip = (4..block.size().saturating_sub(1))
            .filter_map(|h| block.host(h as u32))
            .map(|ip| ip.to_string())
            .find(|ip| !used.contains(ip))?;
        taken.insert(owner.to_string(), ip.clone());
        s.body["properties"]["ipConfigurations"] = json!(
            taken
                .iter()
                .map(|(k, v)| json!({"id": k, "privateIPAddress": v}))
                .collect::<Vec<_>>()
        );
        self.store.put(&s).ok()?;
        Some(ip)
    }

    /// Write the children a parent's PUT declared inline; for the kinds it
    /// replaces, remove the ones it no longer declares.
    pub(super) fn write_inline(
        &self,
        parent: &ResourceId,
        declared: Declared,
        api: &str,
    ) -> Result<(), Reply> {
        let existing = self.store.children(parent).map_err(|e| {
            Reply::error(500, "InternalServerError", &format!("emulator store: {e}"))
        })?;
        for kind in &declared.replaced {
            for old in existing
                .iter()
                .filter(|c| c.resource_type.eq_ignore_ascii_case(kind.child))
            {
                if !declared.children.iter().any(|(id, _)| id == &old.id) {
                    let _ = self.store.delete(&old.id);
                }
            }
        }
        for (id, mut body) in declared.children {
            let before = existing.iter().find(|c| c.id == id);
            // What the server kept for the child (a subnet's address allocations).
            if let Some(b) = before
                && let Some(ipc) = b.body.pointer("/properties/ipConfigurations")
            {
                set(&mut body, "/properties/ipConfigurations", ipc.clone());
            }
            let mut r = StoredResource::new(id.clone(), id.resource_type(), api.to_string(), body);
            r.indexing = before.and_then(|b| b.indexing.clone());
            self.save(&r)?;
        }
        Ok(())
    }

    /// The fields ARM computes on every read.
    pub(super) fn read_fields(
        &self,
        r: &StoredResource,
        body: &mut Value,
        kids: &[StoredResource],
        now: u64,
    ) {
        let t = r.resource_type.to_ascii_lowercase();
        let key = r.id.key();
        let id = canonical_id(r.id.as_str());
        if t.starts_with("microsoft.network/") {
            let version = r.operation.as_ref().map_or("0", |o| o.id.as_str());
            body["etag"] = json!(format!(
                "W/\"{}\"",
                stable_guid(&format!("etag:{key}:{version}"))
            ));
        }
        for kind in inline_kinds(&r.resource_type) {
            let items: Vec<Value> = kids
                .iter()
                .filter(|c| c.resource_type.eq_ignore_ascii_case(kind.child))
                .filter_map(|c| self.view_with(c, now, &[]))
                .collect();
            set(body, &format!("/properties/{}", kind.key), json!(items));
        }
        match t.as_str() {
            "microsoft.network/networksecuritygroups" => {
                set(body, "/properties/defaultSecurityRules", default_rules(&id));
            }
            "microsoft.network/virtualnetworks/subnets" => {
                // The allocations are the server's bookkeeping; ARM shows the ids.
                if let Some(a) = body
                    .pointer_mut("/properties/ipConfigurations")
                    .and_then(Value::as_array_mut)
                {
                    for x in a.iter_mut() {
                        if let Some(o) = x.as_object_mut() {
                            o.remove("privateIPAddress");
                        }
                    }
                }
            }
            "microsoft.compute/disks" => {
                let state = if body.get("managedBy").is_some_and(Value::is_string) {
                    "Attached"
                } else {
                    "Unattached"
                };
                set(body, "/properties/diskState", json!(state));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_arms_casing() {
        assert_eq!(
            canonical_id(
                "/SUBSCRIPTIONS/s/resourcegroups/rg/PROVIDERS/Microsoft.Network/virtualNetworks/v"
            ),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
        );
    }

    #[test]
    fn inline_children_leave_the_parent_body() {
        let id = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        )
        .unwrap();
        let mut body = json!({"properties": {"addressSpace": {}, "subnets": [
            {"name": "a", "id": "x", "properties": {"addressPrefix": "10.0.0.0/24", "provisioningState": "Succeeded"}}]}});
        let d = take_inline(&id, &mut body);
        assert!(body["properties"].get("subnets").is_none());
        assert_eq!(d.children.len(), 1);
        assert_eq!(
            d.children[0].0.as_str(),
            format!("{}/subnets/a", id.as_str())
        );
        assert_eq!(
            d.children[0].1,
            json!({"properties": {"addressPrefix": "10.0.0.0/24"}})
        );
        // Subnets are replaced as a set; peerings only when the body has them.
        assert_eq!(d.replaced.len(), 1);
        assert_eq!(d.replaced[0].key, "subnets");
    }
}
