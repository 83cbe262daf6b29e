//! `export terraform`: the resource graph as Terraform JSON using the AzAPI
//! provider (`azapi_resource`), one file per layer and tenant plus the provider and
//! backend settings. Dependencies become references (`${azapi_resource.x.id}`), so
//! Terraform orders the resources the way lifeboat's graph does.
//!
//! Pure: builds JSON documents; the command writes them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::graph::{Graph, Resource};

/// `(file name, document)` pairs.
pub fn terraform(graph: &Graph, subscription_id: &str) -> Vec<(String, Value)> {
    let labels = labels(graph);
    let by_key: HashMap<&str, usize> = graph
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.key(), i))
        .collect();
    let mut files: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Value> = BTreeMap::new();
    let mut exports: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut blocks: Vec<(String, String, Map<String, Value>)> = Vec::new();

    for (i, r) in graph.resources.iter().enumerate() {
        let mut ctx = Ctx {
            labels: &labels,
            by_key: &by_key,
            used: HashSet::new(),
            secrets: &mut secrets,
            exports: &mut exports,
        };
        let mut body = r.body.to_value();
        let obj = body.as_object_mut().expect("bodies are objects");
        let location = obj.remove("location");
        let tags = obj.remove("tags");
        let body = ctx.rewrite(&body);
        let parent = parent_id(r, subscription_id);
        let parent = ctx.rewrite(&Value::String(parent));
        let mut block = Map::new();
        block.insert(
            "type".into(),
            json!(format!("{}@{}", r.resource_type, r.api_version)),
        );
        block.insert("parent_id".into(), parent);
        block.insert("name".into(), json!(r.id.name()));
        if let Some(l) = location {
            block.insert("location".into(), l);
        }
        block.insert("body".into(), body);
        if let Some(t) = tags {
            block.insert("tags".into(), t);
        }
        let explicit: Vec<Value> = graph.deps[i]
            .iter()
            .filter(|j| !ctx.used.contains(*j))
            .map(|&j| json!(format!("azapi_resource.{}", labels[j])))
            .collect();
        if !explicit.is_empty() {
            block.insert("depends_on".into(), Value::Array(explicit));
        }
        if r.lifecycle.prevent_destroy {
            block.insert("lifecycle".into(), json!([{"prevent_destroy": true}]));
        }
        let file = match &r.tenant {
            Some(t) => format!("tenant-{t}.tf.json"),
            None => format!("{}.tf.json", r.layer.as_str()),
        };
        blocks.push((file, labels[i].clone(), block));
    }
    for (i, paths) in exports {
        let (_, _, block) = &mut blocks[i];
        let mut p: Vec<String> = paths.into_iter().collect();
        p.sort();
        block.insert("response_export_values".into(), json!(p));
    }
    for (file, label, block) in blocks {
        let doc = files.entry(file).or_default();
        let res = doc
            .entry("resource")
            .or_insert_with(|| json!({"azapi_resource": {}}));
        res["azapi_resource"][label] = Value::Object(block);
    }

    let mut out: Vec<(String, Value)> = files
        .into_iter()
        .map(|(f, m)| (f, Value::Object(m)))
        .collect();
    let mut providers = json!({
        "terraform": {
            "required_version": ">= 1.6",
            "required_providers": {"azapi": {"source": "Azure/azapi", "version": "~> 2.0"}},
            "backend": {"azurerm": {"use_azuread_auth": true, "use_oidc": true, "key": "lifeboat.tfstate"}}
        },
        "provider": {"azapi": {"subscription_id": subscription_id, "use_oidc": true}},
        "data": {"azapi_client_config": {"current": {}}}
    });
    if !secrets.is_empty() {
        providers["variable"] = Value::Object(secrets.into_iter().collect());
    }
    out.insert(0, ("providers.tf.json".into(), providers));
    out
}

fn parent_id(r: &Resource, subscription_id: &str) -> String {
    if r.id.is_resource_group() {
        return format!("/subscriptions/{subscription_id}");
    }
    r.id.parent()
        .map(|p| p.to_string())
        .unwrap_or_else(|| format!("/subscriptions/{subscription_id}"))
}

/// Terraform labels: `<tenant|layer>_<type>_<name>`, sanitised and unique.
fn labels(graph: &Graph) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    graph
        .resources
        .iter()
        .map(|r| {
            let owner = r
                .tenant
                .clone()
                .unwrap_or_else(|| r.layer.as_str().to_string());
            let ty = r.resource_type.rsplit('/').next().unwrap_or("resource");
            let raw = format!("{owner}_{ty}_{}", r.id.name());
            let mut label: String = raw
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let n = seen.entry(label.clone()).or_default();
            *n += 1;
            if *n > 1 {
                label = format!("{label}_{n}");
            }
            label
        })
        .collect()
}

struct Ctx<'a> {
    labels: &'a [String],
    by_key: &'a HashMap<&'a str, usize>,
    used: HashSet<usize>,
    secrets: &'a mut BTreeMap<String, Value>,
    exports: &'a mut HashMap<usize, HashSet<String>>,
}

impl Ctx<'_> {
    fn rewrite(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) if s.len() > 15 && s[..15].eq_ignore_ascii_case("/subscriptions/") => {
                self.reference(s)
            }
            Value::Object(m) if m.contains_key("$secret") => {
                let vault = m["$secret"]["vault"].as_str().unwrap_or_default();
                let name = m["$secret"]["name"].as_str().unwrap_or_default();
                let vault_name = vault.rsplit('/').next().unwrap_or_default();
                let var: String = format!("secret_{vault_name}_{name}")
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                self.secrets.insert(
                    var.clone(),
                    json!({"type": "string", "sensitive": true, "description": format!("secret {name} of Key Vault {vault_name}")}),
                );
                json!(format!("${{var.{var}}}"))
            }
            Value::Object(m) if m.contains_key("$ref") => {
                let id = m["$ref"]["id"].as_str().unwrap_or_default();
                let path = m["$ref"]["path"].as_str().unwrap_or_default();
                match self.by_key.get(id.to_ascii_lowercase().as_str()) {
                    Some(&j) => {
                        self.used.insert(j);
                        self.exports.entry(j).or_default().insert(path.to_string());
                        json!(format!(
                            "${{azapi_resource.{}.output.{path}}}",
                            self.labels[j]
                        ))
                    }
                    None if path == "tenantId" => {
                        json!("${data.azapi_client_config.current.tenant_id}")
                    }
                    None => Value::Null,
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.rewrite(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.rewrite(i)).collect()),
            other => other.clone(),
        }
    }

    /// An id of a node becomes its reference; an id below a node (a subnet) becomes
    /// the node's reference plus the rest of the path.
    fn reference(&mut self, id: &str) -> Value {
        let lower = id.to_ascii_lowercase();
        let mut cut = lower.len();
        loop {
            if let Some(&j) = self.by_key.get(&lower[..cut]) {
                self.used.insert(j);
                return json!(format!(
                    "${{azapi_resource.{}.id}}{}",
                    self.labels[j],
                    &id[cut..]
                ));
            }
            match lower[..cut].rfind('/') {
                Some(k) if k > 15 => cut = k,
                _ => return json!(id),
            }
        }
    }
}
