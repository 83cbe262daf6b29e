//! A span-carrying YAML tree: every node and every mapping key knows its line and
//! column, so later stages can report `file:line:column` for any field.
//!
//! This module owns parsing hostile input safely (alias bombs, deep nesting,
//! duplicate keys, huge documents are refused by `serde-saphyr` budgets) and never
//! interprets what the fields mean: that is `schema`'s job.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

pub use crate::diag::Pos;

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The shape of a YAML node. Mapping keys keep their own positions and source order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key. Non-string keys are kept as their text so that schema checks can
/// report them instead of failing the parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub pos: Pos,
    pub text: String,
}

impl Value {
    /// Human name of the node kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A parse failure with the position the parser reported (if any).
#[derive(Debug, Clone)]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// Parse one YAML document. The limits are far above any real manifest and far
/// below what would take a second to process.
pub fn parse(text: &str) -> Result<Node, ParseError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_depth: 32,
            max_nodes: 20_000,
            max_aliases: 200,
            max_anchors: 200,
            max_events: 100_000,
            max_total_scalar_bytes: 4 * 1024 * 1024,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 8,
        },
    };
    let spanned: Spanned<RawValue> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line() as u32,
                    column: l.column() as u32,
                })
                .unwrap_or_default();
            ParseError {
                pos,
                message: first_line(&e.without_snippet().to_string()),
            }
        })?;
    Ok(into_node(spanned))
}

/// The parser's message without its own position (we report ours) or advice aimed
/// at programmers using the library.
fn first_line(s: &str) -> String {
    let mut line = s.lines().next().unwrap_or("invalid YAML").trim();
    if let Some(i) = line.find(" at line ") {
        line = &line[..i];
    }
    line.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line() as u32,
        column: s.referenced.column() as u32,
    }
}

fn into_node(s: Spanned<RawValue>) -> Node {
    let pos = pos_of(&s);
    let value = match s.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(f) => Value::Float(f),
        RawValue::Str(s) => Value::Str(s),
        RawValue::Seq(items) => Value::Seq(items.into_iter().map(into_node).collect()),
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        pos: pos_of(&k),
                        text: k.value.key_text(),
                    };
                    (key, into_node(v))
                })
                .collect(),
        ),
    };
    Node { pos, value }
}

/// What serde-saphyr hands us; converted into [`Value`] once spans are attached.
enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

impl RawValue {
    fn key_text(&self) -> String {
        match self {
            RawValue::Null => "null".into(),
            RawValue::Bool(b) => b.to_string(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Float(f) => f.to_string(),
            RawValue::Str(s) => s.clone(),
            RawValue::Seq(_) => "[list]".into(),
            RawValue::Map(_) => "{mapping}".into(),
        }
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        i64::try_from(v)
            .map(RawValue::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawValue>>()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawValue>>()? {
            let value = map.next_value::<Spanned<RawValue>>()?;
            entries.push((key, value));
        }
        Ok(RawValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let n = parse("a: 1\nb:\n  c: [x, 2]\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("not a map")
        };
        assert_eq!(entries[0].0.text, "a");
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 4 });
        let Value::Map(inner) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, column: 3 });
        let Value::Seq(items) = &inner[0].1.value else {
            panic!()
        };
        assert_eq!(items[1].value, Value::Int(2));
        assert_eq!(items[1].pos.line, 3);
    }

    #[test]
    fn strict_booleans_keep_yes_a_string() {
        let n = parse("a: yes\nb: true\n").unwrap();
        let Value::Map(e) = n.value else { panic!() };
        assert_eq!(e[0].1.value, Value::Str("yes".into()));
        assert_eq!(e[1].1.value, Value::Bool(true));
    }

    #[test]
    fn hostile_inputs_fail_fast() {
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        assert!(parse(bomb).is_err());
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).is_err());
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(dup.pos.line, 2, "{}", dup.message);
        assert!(parse("a:\n\tb: 1\n").is_err());
    }
}
