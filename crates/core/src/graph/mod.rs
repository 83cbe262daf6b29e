//! Stage 3: render the templates for the selected layers into resources with ARM
//! ids, and connect them with dependency edges.
//!
//! Edges come from explicit `dependsOn`, from parent/child and scope relations of
//! the ids, and from ARM ids (and `$ref`/`$secret` references) found in bodies.
//! A cycle is an error naming the resources on it. Pure: no I/O beyond what the
//! caller's `TemplateSet` already loaded.

mod fastyaml;
mod render;
pub mod templates;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use crate::body::Body;
pub use crate::id::{Layer, ResourceId};
pub use render::{RenderError, is_untagged_type};
pub use templates::TemplateSet;

use crate::model::Project;

/// `lifecycle:` of a template resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lifecycle {
    /// Never deleted or replaced without `--allow-data-loss <tenant>`.
    #[serde(default)]
    pub prevent_destroy: bool,
    /// Body paths whose differences are not drift (e.g. `properties.osProfile`).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Body paths ARM cannot change in place: a difference there means replace.
    #[serde(default)]
    pub replace_on: Vec<String>,
    /// A VM's power state after apply created it: `deallocated` for the idle
    /// front-ends (Azure starts a new VM; deallocated it costs nothing but disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// A change that lowers its vCPUs, memory, IOPS or throughput is a capacity
    /// reduction: shown with before/after figures and refused by `apply` without
    /// `--allow-capacity-reduction` (the SQL VM and its data disk).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard_capacity: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PowerState {
    Deallocated,
}

/// One desired resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub api_version: String,
    pub layer: Layer,
    pub tenant: Option<String>,
    /// The PUT body: template body plus `location` and the lifeboat tags.
    pub body: Body,
    pub depends_on: Vec<ResourceId>,
    pub lifecycle: Lifecycle,
    /// `tenant/sql.yaml.tera` and the line of the resource in the rendered output.
    pub template: String,
    pub template_line: u32,
    /// Key Vault secret ids (lower-cased) its `$secret` references name; apply
    /// generates them, so they are never orphans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// Resources and their dependency edges.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Sorted by (layer, tenant, id).
    pub resources: Vec<Resource>,
    /// `deps[i]`: indices of the resources `resources[i]` depends on.
    pub deps: Vec<Vec<usize>>,
}

/// What to render.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub shared: bool,
    /// `None`: every tenant. `Some(ids)`: only these.
    pub tenants: Option<Vec<String>>,
}

impl Scope {
    pub fn everything() -> Scope {
        Scope {
            shared: true,
            tenants: None,
        }
    }
    pub fn includes_tenant(&self, id: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == id))
    }
    /// Does a resource of this layer and tenant fall inside the scope?
    pub fn includes(&self, layer: Layer, tenant: Option<&str>) -> bool {
        match (layer, tenant) {
            (Layer::Shared, _) => self.shared,
            (_, Some(t)) => self.includes_tenant(t),
            (_, None) => self.shared,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("resource {id} is declared twice: in {first} and in {second}")]
    Duplicate {
        id: ResourceId,
        first: String,
        second: String,
    },
    #[error("{template}: resource {id} depends on {missing}, which no template declares")]
    MissingDependency {
        template: String,
        id: ResourceId,
        missing: ResourceId,
    },
    #[error("dependency cycle: {}", .cycle.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" -> "))]
    Cycle { cycle: Vec<ResourceId> },
    /// A template wrote outside what its layer owns (another tenant's resource
    /// group, another subscription, a region the platform does not use).
    #[error("{template}: resource {id} {reason}")]
    OutsideLayer {
        template: String,
        id: ResourceId,
        reason: String,
    },
}

/// Render every template of the scope and build the graph.
pub fn build(
    project: &Project,
    templates: &TemplateSet,
    scope: &Scope,
) -> Result<Graph, GraphError> {
    build_reporting(project, templates, scope, &|_| {})
}

/// [`build`], handing each part of the graph to `rendered` as soon as it has
/// rendered (the shared layer's resources, then each tenant's, from whichever
/// core rendered them), so a caller can act on what the graph will declare
/// before all of it is built. Every part handed over is in the graph when the
/// build succeeds; nothing is handed over twice.
pub fn build_reporting(
    project: &Project,
    templates: &TemplateSet,
    scope: &Scope,
    rendered: &(dyn Fn(&[Resource]) + Sync),
) -> Result<Graph, GraphError> {
    let resources = render::render_all(project, templates, scope, rendered)?;
    confine(project, &resources)?;
    connect(resources, scope)
}

/// Each layer writes only where it owns: the platform's subscription; the
/// shared and image layers in the shared resource group; a tenant in its own
/// resource group (and, in the shared one, only the hub side of its VNet
/// peering); every located resource in the platform's primary or secondary
/// region (EU residency). A template that writes elsewhere is a render error:
/// its layer lock would not cover what it changes.
pub fn confine(project: &Project, resources: &[Resource]) -> Result<(), GraphError> {
    use crate::model::naming::{PlatformNames, TenantNames};
    let p = &project.platform;
    let shared_rg = PlatformNames::derive(p).rg.to_ascii_lowercase();
    let regions: Vec<String> = std::iter::once(&p.region)
        .chain(p.secondary_region.as_ref())
        .map(|r| r.value.to_ascii_lowercase())
        .collect();
    let tenant_rgs: HashMap<&str, String> = project
        .tenants
        .iter()
        .map(|t| {
            (
                t.id.value.as_str(),
                TenantNames::derive(p, t).rg.to_ascii_lowercase(),
            )
        })
        .collect();
    for r in resources {
        let out = |reason: String| GraphError::OutsideLayer {
            template: r.template.clone(),
            id: r.id.clone(),
            reason,
        };
        if !r.id.subscription().eq_ignore_ascii_case(&p.subscription_id) {
            return Err(out(format!(
                "is in subscription {}, not the platform's {}",
                r.id.subscription(),
                p.subscription_id
            )));
        }
        // Compared without lower-casing copies: this runs for every resource.
        let rg = r.id.resource_group().unwrap_or("");
        let ok = match (r.layer, r.tenant.as_deref().and_then(|t| tenant_rgs.get(t))) {
            (Layer::Tenant, Some(own)) => {
                rg.eq_ignore_ascii_case(own)
                    || (rg.eq_ignore_ascii_case(&shared_rg)
                        && r.resource_type.eq_ignore_ascii_case(
                            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                        ))
            }
            (Layer::Tenant, None) => false,
            (Layer::Shared | Layer::Image, _) => rg.eq_ignore_ascii_case(&shared_rg),
        };
        if !ok && rg.is_empty() {
            return Err(out(format!(
                "is not inside a resource group its {} layer owns (subscription-wide scopes are not lifeboat's)",
                r.layer.as_str()
            )));
        }
        if !ok {
            return Err(out(format!(
                "is in resource group `{}`, which its {} layer{} does not own",
                rg.to_ascii_lowercase(),
                r.layer.as_str(),
                r.tenant
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            )));
        }
        if let Some(loc) = r.body.get("location").and_then(Body::as_str)
            && !regions.iter().any(|x| x.eq_ignore_ascii_case(loc))
            // Azure deploys action groups only to `global` (their data stays in
            // the resource group's region).
            && !(loc.eq_ignore_ascii_case("global")
                && r.resource_type.eq_ignore_ascii_case("Microsoft.Insights/actionGroups"))
        {
            return Err(out(format!(
                "is located in `{loc}`; the platform uses {} only",
                regions.join(" and ")
            )));
        }
    }
    Ok(())
}

/// Index, de-duplicate, derive edges, check for cycles.
pub fn connect(mut resources: Vec<Resource>, scope: &Scope) -> Result<Graph, GraphError> {
    resources.sort_by(|a, b| (a.layer, &a.tenant, &a.id).cmp(&(b.layer, &b.tenant, &b.id)));
    // Looked up for every id every body names (~50,000 for a fleet): a fast
    // hash, not SipHash.
    let mut by_key: hashbrown::HashMap<&str, usize> =
        hashbrown::HashMap::with_capacity(resources.len());
    for (i, r) in resources.iter().enumerate() {
        if let Some(&j) = by_key.get(r.id.key()) {
            return Err(GraphError::Duplicate {
                id: r.id.clone(),
                first: resources[j].template.clone(),
                second: r.template.clone(),
            });
        }
        by_key.insert(r.id.key(), i);
    }
    // Edges per resource are independent: derive them on all cores.
    let deps = crate::par::map_in_order(&resources, |i, r| edges(i, r, &by_key, scope))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    // (hashbrown's map, unlike std's, holds its borrow until dropped)
    drop(by_key);
    let graph = Graph { resources, deps };
    graph.check_acyclic()?;
    Ok(graph)
}

/// The resources `r` (at `i`) depends on: explicit `dependsOn`, its nearest ancestor
/// node (parent resource, scope of an extension resource, resource group), and ARM
/// ids in its body (a sub-resource id such as a subnet counts for its nearest node).
fn edges(
    i: usize,
    r: &Resource,
    index: &hashbrown::HashMap<&str, usize>,
    scope: &Scope,
) -> Result<Vec<usize>, GraphError> {
    let mut d: Vec<usize> = Vec::new();
    for explicit in &r.depends_on {
        match index.get(explicit.key()) {
            Some(&j) => d.push(j),
            // Outside a narrowed scope (e.g. the shared layer while planning one
            // tenant) is fine: the full render checks it.
            None if *scope != Scope::everything() => {}
            None => {
                return Err(GraphError::MissingDependency {
                    template: r.template.clone(),
                    id: r.id.clone(),
                    missing: explicit.clone(),
                });
            }
        }
    }
    if let Some(parent) = strip_pair(r.id.key()) {
        d.extend(nearest_node(index, parent));
    }
    let mut refs = Vec::new();
    collect_refs(&r.body, &mut refs);
    for s in refs {
        d.extend(nearest_node(index, &s.to_ascii_lowercase()));
    }
    d.retain(|&j| j != i);
    d.sort_unstable();
    d.dedup();
    Ok(d)
}

/// `key` without its last `/type/name` pair, unless that would leave the
/// subscription or less.
fn strip_pair(key: &str) -> Option<&str> {
    match key.rfind('/').and_then(|k| key[..k].rfind('/')) {
        Some(k) if k > "/subscriptions/x/resourcegroups".len() => Some(&key[..k]),
        _ => None,
    }
}

/// The node at `key` (lower-cased) or its nearest ancestor that is one. Walking
/// by pairs passes `providers/NAMESPACE` segments, which are never nodes.
fn nearest_node(index: &hashbrown::HashMap<&str, usize>, key: &str) -> Option<usize> {
    let mut probe = key;
    loop {
        if let Some(&j) = index.get(probe) {
            return Some(j);
        }
        probe = strip_pair(probe)?;
    }
}

/// Every string in a body that looks like an ARM id.
fn collect_refs<'a>(v: &'a Body, out: &mut Vec<&'a str>) {
    match v {
        Body::String(s) if s.len() > 15 && s[..15].eq_ignore_ascii_case("/subscriptions/") => {
            out.push(s)
        }
        Body::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Body::Object(m) => m.iter().for_each(|(_, i)| collect_refs(i, out)),
        _ => {}
    }
}

impl Graph {
    pub fn len(&self) -> usize {
        self.resources.len()
    }
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Kahn's algorithm; on failure, walk the remainder to name one actual cycle.
    fn check_acyclic(&self) -> Result<(), GraphError> {
        let n = self.resources.len();
        let mut indegree = vec![0usize; n];
        let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, d) in self.deps.iter().enumerate() {
            indegree[i] = d.len();
            for &j in d {
                dependants[j].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = ready.pop() {
            seen += 1;
            for &k in &dependants[i] {
                indegree[k] -= 1;
                if indegree[k] == 0 {
                    ready.push(k);
                }
            }
        }
        if seen == n {
            return Ok(());
        }
        // Every remaining node has an unfinished dependency; follow them until one repeats.
        let start = (0..n).find(|&i| indegree[i] > 0).expect("a node is left");
        let mut path = vec![start];
        let mut pos: HashMap<usize, usize> = HashMap::from([(start, 0)]);
        let mut cur = start;
        loop {
            let next = *self.deps[cur]
                .iter()
                .find(|&&j| indegree[j] > 0)
                .expect("a blocked node has a blocked dependency");
            if let Some(&p) = pos.get(&next) {
                let mut cycle: Vec<ResourceId> = path[p..]
                    .iter()
                    .map(|&i| self.resources[i].id.clone())
                    .collect();
                cycle.push(self.resources[next].id.clone());
                return Err(GraphError::Cycle { cycle });
            }
            pos.insert(next, path.len());
            path.push(next);
            cur = next;
        }
    }

    /// Tenants whose resources depend on shared-layer resources, per shared resource.
    pub fn dependent_tenants(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, d) in self.deps.iter().enumerate() {
            let r = &self.resources[i];
            let Some(t) = &r.tenant else { continue };
            for &j in d {
                if self.resources[j].layer == Layer::Shared {
                    let e = out.entry(self.resources[j].id.to_string()).or_default();
                    if !e.contains(t) {
                        e.push(t.clone());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    fn res(id: &str, deps: &[&str], body: Value) -> Resource {
        Resource {
            id: ResourceId::parse(id).unwrap(),
            resource_type: "Microsoft.Test/things".into(),
            api_version: "2024-01-01".into(),
            layer: Layer::Tenant,
            tenant: Some("t".into()),
            body: body.into(),
            depends_on: deps.iter().map(|d| ResourceId::parse(d).unwrap()).collect(),
            lifecycle: Lifecycle::default(),
            template: "tenant/test.yaml.tera".into(),
            template_line: 1,
            secrets: Vec::new(),
        }
    }

    const RG: &str = "/subscriptions/s/resourceGroups/rg";

    #[test]
    fn edges_from_parents_and_body_refs() {
        let vnet = format!("{RG}/providers/Microsoft.Network/virtualNetworks/v");
        let nic = format!("{RG}/providers/Microsoft.Network/networkInterfaces/n");
        let peer = format!("{vnet}/virtualNetworkPeerings/p");
        let g = connect(
            vec![
                res(RG, &[], serde_json::json!({})),
                res(&vnet, &[], serde_json::json!({})),
                res(&nic, &[], serde_json::json!({"properties": {"subnet": {"id": format!("{vnet}/subnets/a")}}})),
                res(&peer, &[], serde_json::json!({})),
            ],
            &Scope::everything(),
        )
        .unwrap();
        let idx = |id: &str| {
            g.resources
                .iter()
                .position(|r| r.id.as_str() == id)
                .unwrap()
        };
        assert_eq!(g.deps[idx(&nic)], {
            let mut v = vec![idx(RG), idx(&vnet)];
            v.sort();
            v
        });
        assert_eq!(g.deps[idx(&peer)], vec![idx(&vnet)]);
        assert_eq!(g.deps[idx(&vnet)], vec![idx(RG)]);
    }

    #[test]
    fn cycles_are_named() {
        let a = format!("{RG}/providers/Microsoft.Test/things/a");
        let b = format!("{RG}/providers/Microsoft.Test/things/b");
        let err = connect(
            vec![
                res(&a, &[&b], serde_json::json!({})),
                res(&b, &[], serde_json::json!({"x": a.clone()})),
            ],
            &Scope::everything(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("dependency cycle"), "{msg}");
        assert!(
            msg.contains("things/a") && msg.contains("things/b"),
            "{msg}"
        );
    }

    #[test]
    fn duplicates_are_errors() {
        let a = format!("{RG}/providers/Microsoft.Test/things/a");
        let err = connect(
            vec![
                res(&a, &[], Value::Null),
                res(
                    &a.to_uppercase().replace("/SUBSCRIPTIONS", "/subscriptions"),
                    &[],
                    Value::Null,
                ),
            ],
            &Scope::everything(),
        )
        .unwrap_err();
        assert!(matches!(err, GraphError::Duplicate { .. }));
    }
}
