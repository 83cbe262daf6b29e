//! The template set: lifeboat's embedded defaults for every layer, overridden file
//! by file by the project's `templates/` directory, compiled once into Tera.
//!
//! Owns template discovery, the strict `json` filter (an undefined value is an
//! error, never `null`) and the `guid()` function. Never knows what a resource is.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tera::{Kwargs, State, Tera, Value};

use crate::model::naming::stable_guid;

/// `(layer/file name, source)` of the embedded defaults.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "shared/network.yaml.tera",
        include_str!("../../../../templates/shared/network.yaml.tera"),
    ),
    (
        "shared/operations.yaml.tera",
        include_str!("../../../../templates/shared/operations.yaml.tera"),
    ),
    (
        "shared/identity.yaml.tera",
        include_str!("../../../../templates/shared/identity.yaml.tera"),
    ),
    (
        "shared/citrix.yaml.tera",
        include_str!("../../../../templates/shared/citrix.yaml.tera"),
    ),
    (
        "shared/diagnostics.yaml.tera",
        include_str!("../../../../templates/shared/diagnostics.yaml.tera"),
    ),
    (
        "shared/alerts.yaml.tera",
        include_str!("../../../../templates/shared/alerts.yaml.tera"),
    ),
    (
        "shared/imagebuilder.yaml.tera",
        include_str!("../../../../templates/shared/imagebuilder.yaml.tera"),
    ),
    (
        "image/definition.yaml.tera",
        include_str!("../../../../templates/image/definition.yaml.tera"),
    ),
    (
        "image/builder.yaml.tera",
        include_str!("../../../../templates/image/builder.yaml.tera"),
    ),
    (
        "tenant/network.yaml.tera",
        include_str!("../../../../templates/tenant/network.yaml.tera"),
    ),
    (
        "tenant/keyvault.yaml.tera",
        include_str!("../../../../templates/tenant/keyvault.yaml.tera"),
    ),
    (
        "tenant/backup.yaml.tera",
        include_str!("../../../../templates/tenant/backup.yaml.tera"),
    ),
    (
        "tenant/sql.yaml.tera",
        include_str!("../../../../templates/tenant/sql.yaml.tera"),
    ),
    (
        "tenant/frontends.yaml.tera",
        include_str!("../../../../templates/tenant/frontends.yaml.tera"),
    ),
    (
        "tenant/diagnostics.yaml.tera",
        include_str!("../../../../templates/tenant/diagnostics.yaml.tera"),
    ),
    (
        "tenant/alerts.yaml.tera",
        include_str!("../../../../templates/tenant/alerts.yaml.tera"),
    ),
];

pub const LAYER_DIRS: &[&str] = &["shared", "tenant", "image"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name} ({origin}) does not compile: {message}")]
    Compile {
        name: String,
        origin: String,
        message: String,
    },
}

/// One template and where it came from.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    /// `tenant/sql.yaml.tera`
    pub name: String,
    /// `embedded` or the override file's path.
    pub origin: String,
    pub sha256: String,
    /// The template source, so findings can point at the line responsible.
    pub text: String,
}

/// All templates of a project, compiled.
pub struct TemplateSet {
    pub tera: Tera,
    pub sources: Vec<TemplateSource>,
}

impl TemplateSet {
    /// Embedded defaults plus overrides (and additions) from `<root>/templates/`.
    pub fn load(root: &Path) -> Result<TemplateSet, TemplateError> {
        let mut files: Vec<(String, String, String)> = DEFAULTS
            .iter()
            .map(|(n, s)| (n.to_string(), "embedded".to_string(), s.to_string()))
            .collect();
        for layer in LAYER_DIRS {
            let dir = root.join("templates").join(layer);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".yaml.tera"))
                .collect();
            paths.sort();
            for path in paths {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let name = format!(
                    "{layer}/{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                let origin = path.display().to_string();
                match files.iter_mut().find(|(n, _, _)| *n == name) {
                    Some(slot) => *slot = (name, origin, text),
                    None => files.push((name, origin, text)),
                }
            }
        }
        Self::compile(files)
    }

    /// Only the embedded defaults.
    pub fn embedded() -> Result<TemplateSet, TemplateError> {
        Self::compile(
            DEFAULTS
                .iter()
                .map(|(n, s)| (n.to_string(), "embedded".to_string(), s.to_string()))
                .collect(),
        )
    }

    fn compile(files: Vec<(String, String, String)>) -> Result<TemplateSet, TemplateError> {
        let mut tera = Tera::new();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_filter("json", json_filter);
        tera.register_function("guid", guid_function);
        let mut sources = Vec::new();
        for (name, origin, text) in &files {
            tera.add_raw_template(name, text)
                .map_err(|e| TemplateError::Compile {
                    name: name.clone(),
                    origin: origin.clone(),
                    message: error_chain(&e),
                })?;
            sources.push(TemplateSource {
                name: name.clone(),
                origin: origin.clone(),
                sha256: crate::id::hex(&Sha256::digest(text.as_bytes())),
                text: text.clone(),
            });
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(TemplateSet { tera, sources })
    }

    /// Template names of one layer, in name order.
    pub fn layer(&self, layer: &str) -> Vec<&TemplateSource> {
        let prefix = format!("{layer}/");
        self.sources
            .iter()
            .filter(|s| s.name.starts_with(&prefix))
            .collect()
    }
}

/// The full message of a Tera error, with its causes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        cur = c.source();
    }
    msg
}

/// `{{ value | json }}`: the value as JSON (which YAML reads back verbatim).
/// Undefined values are errors: Tera's own filters would print them as `null`.
fn json_filter(value: &Value, _: Kwargs, _: &State) -> tera::TeraResult<Value> {
    if value.is_undefined() {
        return Err(tera::Error::message(
            "undefined value passed to `json` (check the variable name)",
        ));
    }
    let text = serde_json::to_string(value).map_err(|e| tera::Error::message(e.to_string()))?;
    Ok(Value::safe_string(&text))
}

/// `guid(seed="...")`: a stable name-based GUID (role assignment names).
fn guid_function(kwargs: Kwargs, _: &State) -> tera::TeraResult<Value> {
    let seed: &str = kwargs.must_get("seed")?;
    Ok(Value::from(stable_guid(seed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: &tera::Context) -> Result<String, String> {
        let set = TemplateSet::compile(vec![("t".into(), "test".into(), src.into())])
            .map_err(|e| e.to_string())?;
        set.tera.render("t", ctx).map_err(|e| error_chain(&e))
    }

    #[test]
    fn undefined_is_an_error_even_through_json() {
        let mut ctx = tera::Context::new();
        ctx.insert("a", &serde_json::json!({"b": "x\"y"}));
        assert_eq!(render("{{ a.b | json }}", &ctx).unwrap(), "\"x\\\"y\"");
        assert!(render("{{ a.c | json }}", &ctx).is_err());
        assert!(render("{{ nope }}", &ctx).is_err());
        assert!(render("{{ a.c }}", &ctx).is_err());
    }

    #[test]
    fn embedded_defaults_compile() {
        let set = TemplateSet::embedded().unwrap();
        assert!(set.layer("shared").len() >= 4);
        assert!(set.layer("tenant").len() >= 5);
    }
}
