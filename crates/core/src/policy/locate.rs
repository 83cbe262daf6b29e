//! Where a finding points: the template source line that sets (or should set) the
//! offending property, or a manifest field. Rendered line numbers mean nothing to a
//! reviewer (loops repeat a document), so this searches the template source: the
//! documents of the resource's type, for the first needle the rule names, else the
//! document's `type:` line. Never reads files: the sources are already loaded.

use std::collections::{HashMap, HashSet};

use super::Location;
use crate::graph::{Resource, TemplateSet};
use crate::model::{At, Project};

pub struct Locator<'a> {
    project: &'a Project,
    templates: &'a TemplateSet,
    /// Per template: its lines' documents, by resource type.
    docs: HashMap<String, Vec<Doc>>,
}

/// One `type:` document of a template source: its line range, and the keys and
/// literal names it writes (block or flow style), to tell which document rendered
/// a resource.
struct Doc {
    resource_type: String,
    lines: std::ops::Range<usize>,
    keys: HashSet<String>,
}

/// Keys of the resource envelope, not of the body.
const ENVELOPE: &[&str] = &[
    "type",
    "apiVersion",
    "resourceGroup",
    "name",
    "location",
    "scope",
    "dependsOn",
    "lifecycle",
    "body",
    "preventDestroy",
    "ignore",
    "replaceOn",
    "powerState",
    "guardCapacity",
];

impl<'a> Locator<'a> {
    pub fn new(project: &'a Project, templates: &'a TemplateSet) -> Self {
        Locator {
            project,
            templates,
            docs: HashMap::new(),
        }
    }

    pub fn manifest<T>(&self, at: &At<T>) -> Location {
        super::manifest_location(self.project, at)
    }

    /// The line of `r`'s template where the first of `needles` appears in the
    /// document that rendered `r` (the one of its type whose keys the body has
    /// most of), else that document's `type:` line.
    pub fn template(&mut self, r: &Resource, needles: &[&str]) -> Location {
        let Some(src) = self.templates.sources.iter().find(|s| s.name == r.template) else {
            return Location {
                file: r.template.clone(),
                line: r.template_line,
                column: 1,
            };
        };
        let file = if src.origin == "embedded" {
            format!("templates/{}", src.name)
        } else {
            std::path::Path::new(&src.origin)
                .strip_prefix(&self.project.root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| src.origin.clone())
        };
        let at = |line: usize, column: usize| Location {
            file: file.clone(),
            line: line as u32 + 1,
            column: column as u32 + 1,
        };
        let docs = self
            .docs
            .entry(src.name.clone())
            .or_insert_with(|| split_docs(&src.text));
        let mut body_keys = HashSet::new();
        collect_keys(&r.body, &mut body_keys);
        let best = docs
            .iter()
            .filter(|d| d.resource_type == r.resource_type)
            .max_by(|a, b| score(a, &body_keys).total_cmp(&score(b, &body_keys)));
        let Some(doc) = best else {
            return at(0, 0);
        };
        let lines: Vec<&str> = src.text.lines().collect();
        for needle in needles {
            for i in doc.lines.clone() {
                if let Some(c) = lines[i].find(needle) {
                    return at(i, c);
                }
            }
        }
        at(doc.lines.start, 0)
    }
}

fn score(d: &Doc, body_keys: &HashSet<&str>) -> f64 {
    if d.keys.is_empty() {
        return 0.0;
    }
    let hits = d
        .keys
        .iter()
        .filter(|k| body_keys.contains(k.as_str()))
        .count();
    hits as f64 / d.keys.len() as f64
}

/// Object keys and string values of a body.
fn collect_keys<'v>(v: &'v crate::body::Body, out: &mut HashSet<&'v str>) {
    use crate::body::Body;
    match v {
        Body::String(s) => {
            out.insert(s);
        }
        Body::Object(m) => {
            for (k, v) in m.iter() {
                out.insert(k);
                collect_keys(v, out);
            }
        }
        Body::Array(a) => a.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

fn split_docs(text: &str) -> Vec<Doc> {
    let lines: Vec<&str> = text.lines().collect();
    let mut docs = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let Some(ty) = t.strip_prefix("type:") else {
            continue;
        };
        let end = lines[i..]
            .iter()
            .position(|l| l.trim() == "---")
            .map_or(lines.len(), |p| i + p);
        let mut keys = HashSet::new();
        for l in &lines[i..end] {
            // Literal names (rules, subnets, containers) tell loop bodies apart.
            if let Some(name) = l
                .trim_start()
                .trim_start_matches("- ")
                .strip_prefix("name:")
            {
                let name = name.trim().trim_matches('"');
                if !name.is_empty() && !name.contains("{{") && !name.contains(['{', '[']) {
                    keys.insert(name.to_string());
                }
            }
            let b = l.as_bytes();
            let mut start = None;
            for (j, &c) in b.iter().enumerate() {
                if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                    start.get_or_insert(j);
                    continue;
                }
                if let Some(s0) = start.take()
                    && c == b':'
                    && !ENVELOPE.contains(&&l[s0..j])
                {
                    keys.insert(l[s0..j].to_string());
                }
            }
        }
        docs.push(Doc {
            resource_type: ty.trim().trim_matches('"').to_string(),
            lines: i..end,
            keys,
        });
    }
    docs
}
