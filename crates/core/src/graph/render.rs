//! Template rendering: builds the Tera context for the shared layer and for each
//! tenant, renders every template of the layer, and turns the YAML documents it
//! produces into [`Resource`]s with ids, tags and checked secret references.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::templates::{TemplateSet, error_chain};
use super::{Layer, Lifecycle, Resource, ResourceId, Scope};
use crate::body::{Body, Key};
use crate::model::naming::{PlatformNames, PlatformNet, TenantNames, TenantNet, stable_guid};
use crate::model::{Platform, Project, Tenant};

/// Resource types whose ARM schema has no `tags` property.
const UNTAGGED_TYPES: &[&str] = &[
    "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/networkSecurityGroups/securityRules",
    "Microsoft.Storage/storageAccounts/blobServices",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.Insights/diagnosticSettings",
];

/// Whether ARM's schema for `resource_type` has no `tags` property.
pub fn is_untagged_type(resource_type: &str) -> bool {
    UNTAGGED_TYPES.contains(&resource_type)
}

/// Body keys that hold secrets: they must be `$secret` references, never literals.
const SECRET_KEYS: &[&str] = &[
    "adminPassword",
    "password",
    "clientSecret",
    "accountKey",
    "connectionString",
    "sharedKey",
    "secret",
];

const MAX_TAGS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}{}: {message}", tenant_suffix(.tenant))]
    Template {
        template: String,
        tenant: Option<String>,
        message: String,
    },
    #[error("template {template}{}, rendered line {line}: {message}", tenant_suffix(.tenant))]
    Resource {
        template: String,
        tenant: Option<String>,
        line: u32,
        message: String,
    },
}

fn tenant_suffix(t: &Option<String>) -> String {
    t.as_ref()
        .map(|t| format!(" (tenant {t})"))
        .unwrap_or_default()
}

/// One document of a template's output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawResource {
    #[serde(rename = "type")]
    resource_type: String,
    api_version: String,
    resource_group: Option<String>,
    scope: Option<String>,
    name: String,
    location: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(skip)]
    body: Vec<(Key, Body)>,
}

pub fn render_all(
    project: &Project,
    templates: &TemplateSet,
    scope: &Scope,
    rendered: &(dyn Fn(&[Resource]) + Sync),
) -> Result<Vec<Resource>, RenderError> {
    let p = &project.platform;
    let shared = SharedContext::new(p);
    let mut out = Vec::new();
    if scope.shared {
        let ctx = shared.context(p, project);
        render_layer(templates, "shared", &ctx, Layer::Shared, None, p, &mut out)?;
        rendered(&out);
    }
    let selected: Vec<&Tenant> = project
        .tenants
        .iter()
        .filter(|t| scope.includes_tenant(&t.id.value))
        .collect();
    // Tenants are independent: render them on all cores.
    let results = crate::par::map_in_order(&selected, |_, t| {
        let ctx = shared.tenant_context(p, t);
        let mut local = Vec::new();
        for (dir, layer) in [("tenant", Layer::Tenant), ("image", Layer::Image)] {
            render_layer(templates, dir, &ctx, layer, Some(t), p, &mut local)?;
        }
        rendered(&local);
        Ok::<_, RenderError>(local)
    });
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Context pieces every layer shares, computed once.
struct SharedContext {
    names: PlatformNames,
    net: PlatformNet,
    ids: BTreeMap<&'static str, String>,
    entra_tenant: Value,
}

fn rg_id(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

fn arm(rg: &str, provider_path: &str) -> String {
    format!("{rg}/providers/{provider_path}")
}

impl SharedContext {
    fn new(p: &Platform) -> SharedContext {
        let names = PlatformNames::derive(p);
        let net = PlatformNet::derive(p);
        let rg = rg_id(&p.subscription_id, &names.rg);
        let hub = arm(
            &rg,
            &format!("Microsoft.Network/virtualNetworks/{}", names.hub_vnet),
        );
        let lb = arm(
            &rg,
            &format!("Microsoft.Network/loadBalancers/{}", names.load_balancer),
        );
        let ids = BTreeMap::from([
            ("subnetIdentity", format!("{hub}/subnets/identity")),
            ("subnetCitrix", format!("{hub}/subnets/citrix")),
            ("subnetGateway", format!("{hub}/subnets/gateway")),
            (
                "nsgIdentity",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.Network/networkSecurityGroups/{}",
                        names.nsg_identity
                    ),
                ),
            ),
            (
                "nsgCitrix",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.Network/networkSecurityGroups/{}",
                        names.nsg_citrix
                    ),
                ),
            ),
            (
                "nsgGateway",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.Network/networkSecurityGroups/{}",
                        names.nsg_gateway
                    ),
                ),
            ),
            (
                "workspace",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.OperationalInsights/workspaces/{}",
                        names.log_analytics
                    ),
                ),
            ),
            (
                "keyVault",
                arm(
                    &rg,
                    &format!("Microsoft.KeyVault/vaults/{}", names.key_vault),
                ),
            ),
            (
                "actionGroup",
                arm(
                    &rg,
                    &format!("Microsoft.Insights/actionGroups/{}", names.action_group),
                ),
            ),
            (
                "gallery",
                arm(
                    &rg,
                    &format!("Microsoft.Compute/galleries/{}", names.gallery),
                ),
            ),
            (
                "artifacts",
                arm(
                    &rg,
                    &format!("Microsoft.Storage/storageAccounts/{}", names.artifacts),
                ),
            ),
            (
                "publicIp",
                arm(
                    &rg,
                    &format!("Microsoft.Network/publicIPAddresses/{}", names.public_ip),
                ),
            ),
            (
                "imageBuilderIdentity",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.ManagedIdentity/userAssignedIdentities/{}-imagebuilder-id",
                        p.prefix.value
                    ),
                ),
            ),
            (
                "imageBuilderRole",
                format!(
                    "{rg}/providers/Microsoft.Authorization/roleAssignments/{}",
                    stable_guid(&format!("{rg}/imagebuilder-contributor"))
                ),
            ),
            (
                "imageBuilderBlobRole",
                format!(
                    "{}/providers/Microsoft.Authorization/roleAssignments/{}",
                    arm(
                        &rg,
                        &format!("Microsoft.Storage/storageAccounts/{}", names.artifacts)
                    ),
                    stable_guid(&format!(
                        "{}/imagebuilder-blob-reader",
                        arm(
                            &rg,
                            &format!("Microsoft.Storage/storageAccounts/{}", names.artifacts)
                        )
                    ))
                ),
            ),
            ("lbBackendPool", format!("{lb}/backendAddressPools/gateway")),
            ("loadBalancer", lb),
            ("hubVnet", hub),
            ("rg", rg),
        ]);
        // Key Vault needs the Entra tenant id; ARM knows it from the subscription.
        let entra_tenant = json!({"$ref": {"id": format!("/subscriptions/{}", p.subscription_id), "path": "tenantId"}});
        SharedContext {
            names,
            net,
            ids,
            entra_tenant,
        }
    }

    fn context(&self, p: &Platform, project: &Project) -> tera::Context {
        let mut ctx = tera::Context::new();
        ctx.insert("platform", p);
        ctx.insert("names", &self.names);
        ctx.insert("net", &self.net);
        ctx.insert("ids", &self.ids);
        ctx.insert("entraTenant", &self.entra_tenant);
        let tenant_ids: Vec<&str> = project
            .tenants
            .iter()
            .map(|t| t.id.value.as_str())
            .collect();
        ctx.insert("tenants", &tenant_ids);
        ctx
    }

    fn tenant_context(&self, p: &Platform, t: &Tenant) -> tera::Context {
        let names = TenantNames::derive(p, t);
        let net = TenantNet::derive(t);
        let sub = &p.subscription_id;
        let rg = rg_id(sub, &names.rg);
        let vnet = arm(
            &rg,
            &format!("Microsoft.Network/virtualNetworks/{}", names.vnet),
        );
        let kv = arm(
            &rg,
            &format!("Microsoft.KeyVault/vaults/{}", names.key_vault),
        );
        let image_def = format!("{}/images/{}", self.ids["gallery"], names.image_definition);
        let ids = BTreeMap::from([
            ("subnetFrontend", format!("{vnet}/subnets/frontend")),
            ("subnetSql", format!("{vnet}/subnets/sql")),
            (
                "nsgFrontend",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.Network/networkSecurityGroups/{}",
                        names.nsg_frontend
                    ),
                ),
            ),
            (
                "nsgSql",
                arm(
                    &rg,
                    &format!("Microsoft.Network/networkSecurityGroups/{}", names.nsg_sql),
                ),
            ),
            ("cmkKey", format!("{kv}/keys/{}", names.cmk_key)),
            (
                "des",
                arm(
                    &rg,
                    &format!(
                        "Microsoft.Compute/diskEncryptionSets/{}",
                        names.disk_encryption_set
                    ),
                ),
            ),
            (
                "desRoleAssignment",
                format!(
                    "{kv}/providers/Microsoft.Authorization/roleAssignments/{}",
                    stable_guid(&format!("{kv}/des-crypto-user"))
                ),
            ),
            (
                "sqlNic",
                arm(
                    &rg,
                    &format!("Microsoft.Network/networkInterfaces/{}", names.sql.nic),
                ),
            ),
            (
                "sqlDataDisk",
                arm(
                    &rg,
                    &format!("Microsoft.Compute/disks/{}", names.sql_data_disk),
                ),
            ),
            (
                "sqlVm",
                arm(
                    &rg,
                    &format!("Microsoft.Compute/virtualMachines/{}", names.sql.vm),
                ),
            ),
            (
                "backup",
                arm(
                    &rg,
                    &format!("Microsoft.Storage/storageAccounts/{}", names.backup_storage),
                ),
            ),
            (
                "imageVersion",
                format!("{image_def}/versions/{}", names.image_version),
            ),
            ("imageDefinition", image_def),
            ("hubVnet", self.ids["hubVnet"].clone()),
            ("sharedRg", self.ids["rg"].clone()),
            ("gallery", self.ids["gallery"].clone()),
            ("workspace", self.ids["workspace"].clone()),
            ("actionGroup", self.ids["actionGroup"].clone()),
            ("keyVault", kv),
            ("vnet", vnet),
            ("rg", rg),
        ]);
        let mut ctx = tera::Context::new();
        ctx.insert("platform", p);
        ctx.insert(
            "shared",
            &json!({"names": &self.names, "net": &self.net, "ids": &self.ids}),
        );
        ctx.insert("tenant", t);
        ctx.insert("names", &names);
        ctx.insert("net", &net);
        ctx.insert("ids", &ids);
        ctx.insert("entraTenant", &self.entra_tenant);
        ctx
    }
}

fn render_layer(
    templates: &TemplateSet,
    layer_dir: &str,
    ctx: &tera::Context,
    layer: Layer,
    tenant: Option<&Tenant>,
    p: &Platform,
    out: &mut Vec<Resource>,
) -> Result<(), RenderError> {
    let tenant_id = tenant.map(|t| t.id.value.clone());
    for src in templates.layer(layer_dir) {
        let template_err = |message: String| RenderError::Template {
            template: src.name.clone(),
            tenant: tenant_id.clone(),
            message,
        };
        let text = templates
            .tera
            .render(&src.name, ctx)
            .map_err(|e| template_err(error_chain(&e)))?;
        for (line, doc) in documents(&text) {
            let resource_err = |message: String| RenderError::Resource {
                template: src.name.clone(),
                tenant: tenant_id.clone(),
                line,
                message,
            };
            let raw: RawResource = parse_document(doc).map_err(resource_err)?;
            let r = into_resource(raw, layer, tenant, p, &src.name, line).map_err(resource_err)?;
            out.push(r);
        }
    }
    Ok(())
}

/// Parse one rendered document. Rendered output is produced by templates, not
/// typed by people, and there are thousands of documents per plan, so this uses the
/// faster `yaml-rust2` parser (2.4x serde-saphyr here) and builds JSON straight from
/// its events, without an intermediate YAML tree.
fn parse_document(doc: &str) -> Result<RawResource, String> {
    let value = match super::fastyaml::parse(doc) {
        Some(v) => v,
        None => Body::from(parse_yaml(doc)?),
    };
    let Body::Object(top) = value else {
        return Err("a resource must be a mapping".into());
    };
    let mut top = top.into_vec();
    // The body is moved, not deserialized again (it is most of the bytes).
    let body = match top.iter().position(|(k, _)| *k == "body") {
        None => Vec::new(),
        Some(i) => match top.remove(i).1 {
            Body::Object(m) => m.into_vec(),
            other => return Err(format!("body: expected a mapping, found {other}")),
        },
    };
    let mut raw: RawResource =
        serde_json::from_value(Body::Object(top.into()).into_value()).map_err(|e| e.to_string())?;
    raw.body = body;
    Ok(raw)
}

/// The general path: any YAML, through yaml-rust2's events.
fn parse_yaml(doc: &str) -> Result<Value, String> {
    let mut b = JsonBuilder::default();
    yaml_rust2::parser::Parser::new_from_str(doc)
        .load(&mut b, false)
        .map_err(|e| format!("invalid YAML: {e}"))?;
    if let Some(e) = b.error {
        return Err(e);
    }
    let [value] = <[Value; 1]>::try_from(b.documents)
        .map_err(|_| "expected exactly one YAML document".to_string())?;
    Ok(value)
}

/// A container being built, and for mappings the key waiting for its value.
/// Mapping entries are gathered first so the map is allocated at its exact size:
/// a fleet holds millions of small maps, and growth by doubling would waste up to
/// half of each.
enum Frame {
    Seq(Vec<Value>),
    Map(Vec<(String, Value)>, Option<String>),
}

/// Builds `serde_json::Value`s from YAML parser events.
#[derive(Default)]
struct JsonBuilder {
    stack: Vec<Frame>,
    documents: Vec<Value>,
    error: Option<String>,
}

impl JsonBuilder {
    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    /// Place a finished value into its parent (or as a document).
    fn push(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.documents.push(v),
            Some(Frame::Seq(items)) => items.push(v),
            Some(Frame::Map(m, key)) => match key.take() {
                Some(k) => m.push((k, v)),
                None => match v {
                    Value::String(k) => *key = Some(k),
                    Value::Number(n) => *key = Some(n.to_string()),
                    Value::Bool(b) => *key = Some(b.to_string()),
                    other => self.fail(format!("mapping key {other} is not a string")),
                },
            },
        }
    }
}

/// A scalar as YAML 1.2 core schema resolves it (quoted scalars are strings).
pub(crate) fn scalar(
    text: String,
    style: yaml_rust2::scanner::TScalarStyle,
) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    use yaml_rust2::scanner::TScalarStyle;
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{s}` is not a finite number"))?,
        _ => Value::String(text),
    })
}

impl yaml_rust2::parser::MarkedEventReceiver for JsonBuilder {
    fn on_event(&mut self, ev: yaml_rust2::Event, _mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, _, _) => match scalar(text, style) {
                Ok(v) => self.push(v),
                Err(e) => self.fail(e),
            },
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(mut items)) => {
                    items.shrink_to_fit();
                    self.push(Value::Array(items))
                }
                Some(Frame::Map(entries, _)) => {
                    let mut m = Map::with_capacity(entries.len());
                    m.extend(entries);
                    self.push(Value::Object(m))
                }
                None => self.fail("unbalanced YAML events".into()),
            },
            Event::Alias(_) => {
                self.fail("aliases and invalid values are not allowed in templates".into())
            }
            _ => {}
        }
    }
}

/// Split a multi-document YAML stream at `---` lines, skipping empty documents.
/// Returns each document with the 1-based line it starts on.
fn documents(text: &str) -> Vec<(u32, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut offset = 0usize;
    for (line_no, line) in (1u32..).zip(text.split_inclusive('\n')) {
        if line.trim_end() == "---" {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn into_resource(
    raw: RawResource,
    layer: Layer,
    tenant: Option<&Tenant>,
    p: &Platform,
    template: &str,
    line: u32,
) -> Result<Resource, String> {
    let id = resource_id(&raw, &p.subscription_id)?;
    // Sized for what is added (a map grown entry by entry keeps up to twice its
    // room; a fleet's graph has tens of thousands of these).
    // As a JSON map does it: a key set again keeps its place; the tags are
    // taken out (the last entry moving into their place) and put back last.
    fn set(entries: &mut Vec<(Key, Body)>, key: &'static str, value: Body) {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => entries.push((key, value)),
        }
    }
    let text = |s: &str| Body::String(s.into());
    let mut body = Vec::with_capacity(raw.body.len() + 2);
    body.extend(raw.body);
    if let Some(loc) = &raw.location {
        set(&mut body, "location", text(loc));
    }
    if !is_untagged_type(&raw.resource_type) {
        let mut tags = match body.iter().position(|(k, _)| *k == "tags") {
            Some(i) => match body.swap_remove(i).1 {
                Body::Object(m) => {
                    let mut t = Vec::with_capacity(m.len() + 5);
                    t.extend(m.into_vec());
                    t
                }
                _ => return Err("`body.tags` must be a mapping".into()),
            },
            None => Vec::with_capacity(5),
        };
        set(&mut tags, "lifeboat-managed", text("true"));
        set(&mut tags, "lifeboat-layer", text(layer.as_str()));
        if let Some(t) = tenant {
            set(&mut tags, "lifeboat-tenant", text(&t.id.value));
        }
        let cost = tenant.map_or("shared", |t| t.cost_center.value.as_str());
        set(&mut tags, "cost-center", text(cost));
        if raw.lifecycle.prevent_destroy {
            set(&mut tags, "lifeboat-protected", text("true"));
        }
        if tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags; Azure allows at most {MAX_TAGS}",
                tags.len()
            ));
        }
        set(&mut body, "tags", Body::Object(tags.into()));
    }
    let body = Body::Object(body.into());
    let secrets = check_secrets(&body)?;
    let depends_on = raw
        .depends_on
        .iter()
        .map(|d| ResourceId::parse(d).map_err(|e| format!("dependsOn: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Resource {
        id,
        resource_type: raw.resource_type,
        api_version: raw.api_version,
        layer,
        tenant: tenant.map(|t| t.id.value.clone()),
        body,
        depends_on,
        lifecycle: raw.lifecycle,
        template: template.to_string(),
        template_line: line,
        secrets,
    })
}

/// ARM-template style: `name` has one segment per type segment after the namespace.
fn resource_id(raw: &RawResource, subscription: &str) -> Result<ResourceId, String> {
    let t = &raw.resource_type;
    let (namespace, types) = t
        .split_once('/')
        .ok_or_else(|| format!("type `{t}` is not NAMESPACE/TYPE"))?;
    let types: Vec<&str> = types.split('/').collect();
    let names: Vec<&str> = raw.name.split('/').collect();
    if let Some(bad) = names.iter().find(|n| {
        n.chars()
            .any(|c| c.is_control() || "\"'<>%&:\\?#*| ".contains(c))
    }) {
        return Err(format!(
            "name segment `{bad}` has a character ARM does not allow in names"
        ));
    }
    if types.len() != names.len() || names.iter().any(|n| n.is_empty()) {
        return Err(format!(
            "name `{}` needs {} segment(s) separated by `/` for type `{t}`",
            raw.name,
            types.len()
        ));
    }
    if t == "Microsoft.Resources/resourceGroups" {
        return ResourceId::parse(&rg_id(subscription, &raw.name)).map_err(|e| e.to_string());
    }
    let base = match (&raw.scope, &raw.resource_group) {
        (Some(scope), None) => scope.clone(),
        (None, Some(rg)) => rg_id(subscription, rg),
        (None, None) => format!("/subscriptions/{subscription}"),
        (Some(_), Some(_)) => return Err("give either `scope` or `resourceGroup`, not both".into()),
    };
    let mut id = format!("{base}/providers/{namespace}");
    for (ty, name) in types.iter().zip(&names) {
        id.push('/');
        id.push_str(ty);
        id.push('/');
        id.push_str(name);
    }
    ResourceId::parse(&id).map_err(|e| e.to_string())
}

/// One step of a path into a body; the path is only formatted for an error.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn show(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Check a body's secret handling and return the Key Vault secret ids (lower-cased)
/// its `$secret` references name. A secret-bearing key must hold
/// `{"$secret": {"vault": ID, "name": NAME}}`; `$ref` objects must name an id and
/// a path.
fn check_secrets(body: &Body) -> Result<Vec<String>, String> {
    let mut secrets = Vec::new();
    walk_secrets(body, &mut Vec::new(), &mut secrets)?;
    Ok(secrets)
}

fn walk_secrets<'a>(
    v: &'a Body,
    path: &mut Vec<Seg<'a>>,
    secrets: &mut Vec<String>,
) -> Result<(), String> {
    match v {
        Body::Object(m) => {
            for (marker, id_key, name_key, shape) in [
                (
                    "$secret",
                    "vault",
                    "name",
                    "{vault: <Key Vault id>, name: <secret name>}",
                ),
                (
                    "$ref",
                    "id",
                    "path",
                    "{id: <resource id>, path: <property path>}",
                ),
            ] {
                let Some(r) = v.get(marker) else { continue };
                let id = r
                    .get(id_key)
                    .and_then(Body::as_str)
                    .filter(|v| ResourceId::parse(v).is_ok());
                let name = r
                    .get(name_key)
                    .and_then(Body::as_str)
                    .filter(|n| !n.is_empty());
                let (Some(id), Some(name), 1) = (id, name, m.len()) else {
                    return Err(format!("{}: `{marker}` needs exactly {shape}", show(path)));
                };
                if marker == "$secret" {
                    secrets.push(format!("{id}/secrets/{name}").to_ascii_lowercase());
                }
                return Ok(());
            }
            for (k, child) in m.iter() {
                path.push(Seg::Key(k));
                if SECRET_KEYS.contains(k) && !child.is_object() && !child.is_null() {
                    return Err(format!(
                        "{}: secrets must be Key Vault references ({{$secret: {{vault, name}}}}), never literal values",
                        show(path)
                    ));
                }
                walk_secrets(child, path, secrets)?;
                path.pop();
            }
            Ok(())
        }
        Body::Array(items) => {
            for (i, c) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk_secrets(c, path, secrets)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let docs = documents("# x\n---\na: 1\n---\n\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, 3);
        assert_eq!(docs[1].0, 7);
    }

    #[test]
    fn rendered_yaml_becomes_json_with_core_schema_scalars() {
        let doc = "type: T\napiVersion: \"2024-05-01\"\nname: n\nbody:\n  a: [1, 2.5, true, null, \"true\", 'x']\n  b: { c: 10.0.0.0/24, d: -3 }\n";
        let r = parse_document(doc).unwrap();
        assert_eq!(r.api_version, "2024-05-01");
        assert_eq!(
            Body::Object(r.body.into()).into_value(),
            json!({"a": [1, 2.5, true, null, "true", "x"], "b": {"c": "10.0.0.0/24", "d": -3}})
        );
        let e = parse_document("type: T\nx: &a 1\ny: *a\n").err().unwrap();
        assert!(e.contains("aliases"), "{e}");
        assert!(
            parse_document("type: [\n")
                .err()
                .unwrap()
                .contains("invalid YAML")
        );
        assert!(
            parse_document("? [a]\n: 1\n")
                .err()
                .unwrap()
                .contains("not a string")
        );
    }

    /// Every document the default templates render for the example project parses
    /// the same on the fast path as on the general one, and takes the fast path.
    #[test]
    fn fast_yaml_agrees_with_the_general_parser_on_every_rendered_document() {
        let root = &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let project = crate::manifest::load(root).expect("the examples are valid");
        let templates = TemplateSet::embedded().expect("embedded templates compile");
        let p = &project.platform;
        let shared = SharedContext::new(p);
        let mut contexts = vec![("shared", shared.context(p, &project))];
        for t in &project.tenants {
            contexts.push(("tenant", shared.tenant_context(p, t)));
            contexts.push(("image", shared.tenant_context(p, t)));
        }
        let mut checked = 0;
        for (dir, ctx) in &contexts {
            for src in templates.layer(dir) {
                let text = templates.tera.render(&src.name, ctx).unwrap();
                for (line, doc) in documents(&text) {
                    let fast = super::super::fastyaml::parse(doc).unwrap_or_else(|| {
                        panic!("{} line {line}: not on the fast path:\n{doc}", src.name)
                    });
                    assert_eq!(
                        fast,
                        Body::from(parse_yaml(doc).unwrap()),
                        "{} line {line}",
                        src.name
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 200, "{checked}");
    }

    #[test]
    fn literal_secrets_are_refused() {
        let err = check_secrets(
            &json!({"properties": {"osProfile": {"adminPassword": "hunter2"}}}).into(),
        )
        .unwrap_err();
        assert!(err.contains("properties.osProfile.adminPassword"), "{err}");
        assert_eq!(
            check_secrets(&json!({"a": [{"adminPassword": {"$secret": {"vault": "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/V", "name": "X"}}}]}).into()),
            Ok(vec![
                "/subscriptions/s/resourcegroups/r/providers/microsoft.keyvault/vaults/v/secrets/x"
                    .to_string()
            ])
        );
        let err =
            check_secrets(&json!({"a": [{"b": {"$secret": {"name": "x"}}}]}).into()).unwrap_err();
        assert!(err.starts_with("a[0].b: `$secret` needs exactly"), "{err}");
    }
}
