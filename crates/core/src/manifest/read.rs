//! Schema-driven reading of one YAML document: typed field accessors that record a
//! diagnostic (with position and field path) instead of stopping at the first error.
//!
//! Owns the generic shapes (mapping with known fields, required/optional, integers
//! in range, enumerations, lists). Never knows what a Tenant or a Platform is.

use std::path::PathBuf;
use std::sync::Arc;

use super::yaml::{Key, Node, Value};
pub use crate::diag::At;
use crate::diag::{Diagnostics, Origin, did_you_mean};

/// Reading context for one file: where diagnostics go.
pub struct Reader<'d> {
    pub file: Arc<PathBuf>,
    pub diags: &'d mut Diagnostics,
}

/// A mapping whose unknown keys have already been reported.
pub struct Obj<'n> {
    pub node: &'n Node,
    pub path: String,
    entries: &'n [(Key, Node)],
}

/// A field that is present, with its path.
pub struct Field<'n> {
    pub node: &'n Node,
    pub path: String,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Reader<'_> {
    pub fn origin(&self, node: &Node, path: &str) -> Origin {
        Origin::new(&self.file, node.pos, path)
    }

    pub fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        let origin = self.origin(node, path);
        self.diags.push(origin, message);
    }

    pub fn at<T>(&self, node: &Node, path: &str, value: T) -> At<T> {
        At {
            value,
            origin: self.origin(node, path),
        }
    }

    /// Treat `node` as a mapping with exactly the `known` fields.
    pub fn object<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Obj<'n>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node,
                path,
                format!("expected a mapping, found {}", node.value.kind()),
            );
            return None;
        };
        for (key, _) in entries {
            if !known.contains(&key.text.as_str()) {
                let mut msg = format!("unknown field `{}`", key.text);
                match did_you_mean(&key.text, known.iter().copied()) {
                    Some(hint) => msg.push_str(&format!(", did you mean `{hint}`?")),
                    None => msg.push_str(&format!(" (expected one of: {})", known.join(", "))),
                }
                let origin = Origin::new(&self.file, key.pos, join(path, &key.text));
                self.diags.push(origin, msg);
            }
        }
        Some(Obj {
            node,
            path: path.to_string(),
            entries,
        })
    }

    /// A field of `obj`; reports it when required and missing (or null).
    pub fn field<'n>(
        &mut self,
        obj: Option<&Obj<'n>>,
        name: &str,
        required: bool,
    ) -> Option<Field<'n>> {
        let obj = obj?;
        let path = join(&obj.path, name);
        let found = obj
            .entries
            .iter()
            .find(|(k, _)| k.text == name)
            .map(|(_, v)| v);
        match found {
            Some(node) if node.value != Value::Null => Some(Field { node, path }),
            Some(node) if required => {
                self.error(node, &path, "must not be empty");
                None
            }
            None if required => {
                self.error(obj.node, &path, format!("missing required field `{name}`"));
                None
            }
            _ => None,
        }
    }

    pub fn string(
        &mut self,
        obj: Option<&Obj<'_>>,
        name: &str,
        required: bool,
    ) -> Option<At<String>> {
        let f = self.field(obj, name, required)?;
        match &f.node.value {
            Value::Str(s) if s.trim().is_empty() => {
                self.error(f.node, &f.path, "must not be empty");
                None
            }
            Value::Str(s) => match crate::diag::control_character(s) {
                Some(reason) => {
                    self.error(f.node, &f.path, reason);
                    None
                }
                None => Some(self.at(f.node, &f.path, s.clone())),
            },
            other => {
                self.error(
                    f.node,
                    &f.path,
                    format!("expected a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// A string that must satisfy `check` (which returns the reason when it does not).
    pub fn string_with(
        &mut self,
        obj: Option<&Obj<'_>>,
        name: &str,
        required: bool,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Option<At<String>> {
        let s = self.string(obj, name, required)?;
        match check(&s.value) {
            Ok(()) => Some(s),
            Err(reason) => {
                self.diags.push(s.origin, reason);
                None
            }
        }
    }

    /// A string parsed into `T`; the parser's error text is the reason.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        obj: Option<&Obj<'_>>,
        name: &str,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<At<T>> {
        let s = self.string(obj, name, required)?;
        match parse(&s.value) {
            Ok(v) => Some(At {
                value: v,
                origin: s.origin,
            }),
            Err(e) => {
                self.diags.push(s.origin, e.to_string());
                None
            }
        }
    }

    pub fn int(
        &mut self,
        obj: Option<&Obj<'_>>,
        name: &str,
        required: bool,
        min: i64,
        max: i64,
    ) -> Option<At<i64>> {
        let f = self.field(obj, name, required)?;
        match &f.node.value {
            Value::Int(i) if (min..=max).contains(i) => Some(self.at(f.node, &f.path, *i)),
            Value::Int(i) => {
                self.error(
                    f.node,
                    &f.path,
                    format!("must be between {min} and {max}, found {i}"),
                );
                None
            }
            other => {
                self.error(
                    f.node,
                    &f.path,
                    format!("expected an integer, found {}", other.kind()),
                );
                None
            }
        }
    }

    pub fn choice(
        &mut self,
        obj: Option<&Obj<'_>>,
        name: &str,
        required: bool,
        allowed: &[&str],
    ) -> Option<At<String>> {
        let s = self.string(obj, name, required)?;
        if allowed.contains(&s.value.as_str()) {
            return Some(s);
        }
        let mut msg = format!("`{}` is not one of: {}", s.value, allowed.join(", "));
        if let Some(hint) = did_you_mean(&s.value, allowed.iter().copied()) {
            msg = format!("`{}` is not allowed, did you mean `{hint}`?", s.value);
        }
        self.diags.push(s.origin, msg);
        None
    }

    pub fn section<'n>(
        &mut self,
        obj: Option<&Obj<'n>>,
        name: &str,
        required: bool,
        known: &[&str],
    ) -> Option<Obj<'n>> {
        let f = self.field(obj, name, required)?;
        self.object(f.node, &f.path, known)
    }

    pub fn list<'n>(
        &mut self,
        obj: Option<&Obj<'n>>,
        name: &str,
        required: bool,
    ) -> Option<Vec<Field<'n>>> {
        let f = self.field(obj, name, required)?;
        match &f.node.value {
            Value::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, node)| Field {
                        node,
                        path: format!("{}[{i}]", f.path),
                    })
                    .collect(),
            ),
            other => {
                self.error(
                    f.node,
                    &f.path,
                    format!("expected a list, found {}", other.kind()),
                );
                None
            }
        }
    }
}
