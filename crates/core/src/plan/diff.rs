//! Declared-properties diff: compares only what the template declares against what
//! the cloud reports, so server-filled fields, defaults and write-only secrets never
//! show as drift. Arrays of named objects (subnets, rules) are matched by name, and
//! an element present only in the cloud is a difference (the template owns the list).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::Body;
use crate::body::field;
use crate::observed::PriorState;

/// One changed property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// `properties.securityRules[allow-sql].properties.destinationPortRange`
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
}

/// Settings that shape a comparison.
pub struct DiffOptions<'a> {
    pub ignore: &'a [String],
    pub replace_on: &'a [String],
    /// Used to resolve `$ref` values against the referenced resource's state.
    pub prior: &'a PriorState,
}

/// `a.b` covers `a.b`, `a.b.c` and `a.b[x]`.
fn covered(path: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        path == p
            || (path.starts_with(p.as_str())
                && matches!(path.as_bytes().get(p.len()), Some(b'.' | b'[')))
    })
}

/// Path segments: `properties.securityRules[rule-a].properties.access` ->
/// key `properties`, key `securityRules` + element named `rule-a`, ...
fn segments(path: &str) -> Vec<(&str, Option<&str>)> {
    path.split('.')
        .map(|seg| match seg.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']'))),
            None => (seg, None),
        })
        .collect()
}

fn step<'v>(v: &'v Value, key: &str, name: Option<&str>) -> Option<&'v Value> {
    let x = v.get(key)?;
    match name {
        None => Some(x),
        Some(n) => x.as_array()?.iter().find(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|en| en.eq_ignore_ascii_case(n))
        }),
    }
}

fn step_mut<'v>(v: &'v mut Value, key: &str, name: Option<&str>) -> Option<&'v mut Value> {
    let x = v.get_mut(key)?;
    match name {
        None => Some(x),
        Some(n) => x.as_array_mut()?.iter_mut().find(|e| {
            e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|en| en.eq_ignore_ascii_case(n))
        }),
    }
}

/// Terraform's `ignore_changes`: on an update, an ignored property keeps the value
/// the live resource has (a PUT would otherwise reset it to the declared one).
pub fn keep_ignored(desired: &mut Value, actual: &Value, ignore: &[String]) {
    for path in ignore {
        let segs = segments(path);
        let Some(((last_key, last_name), parents)) = segs.split_last() else {
            continue;
        };
        let mut live = Some(actual);
        for (k, n) in &segs {
            live = live.and_then(|v| step(v, k, *n));
        }
        let Some(live) = live.cloned() else { continue };
        let mut cur = Some(&mut *desired);
        for (k, n) in parents {
            cur = cur.and_then(|v| step_mut(v, k, *n));
        }
        if let Some(slot) = cur.and_then(|v| step_mut(v, last_key, *last_name)) {
            *slot = live;
        }
    }
}

pub fn diff(desired: &Body, actual: &Value, opts: &DiffOptions<'_>) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk(desired, Some(actual), &mut String::new(), opts, &mut out);
    for e in &mut out {
        e.forces_replacement = covered(&e.path, opts.replace_on) || e.path == "location";
    }
    out
}

fn push(out: &mut Vec<DiffEntry>, path: &str, before: Option<&Value>, after: Option<&Body>) {
    out.push(DiffEntry {
        path: path.to_string(),
        before: before.cloned(),
        after: after.map(Body::to_value),
        forces_replacement: false,
    });
}

/// Walk `desired` against `actual`. `path` is the dotted path of `desired`; it
/// is one buffer, extended and truncated on the way down, because this runs for
/// every declared property of every settled resource.
fn walk(
    desired: &Body,
    actual: Option<&Value>,
    path: &mut String,
    opts: &DiffOptions<'_>,
    out: &mut Vec<DiffEntry>,
) {
    if !path.is_empty() && covered(path, opts.ignore) {
        return;
    }
    let len = path.len();
    match desired {
        Body::Null => {}
        Body::Object(_) if desired.get("$secret").is_some() => {}
        Body::Object(_) if desired.get("$ref").is_some() => {
            // Compare against the referenced value when it is known; unknown until
            // apply otherwise, and then not drift.
            if let Some(resolved) = resolve_ref(&desired["$ref"], opts.prior).map(Body::from)
                && !scalar_eq(&resolved, actual.unwrap_or(&Value::Null))
            {
                push(out, path, actual, Some(&resolved));
            }
        }
        Body::Object(d) => {
            let a = actual.and_then(Value::as_object);
            for (k, dv) in d.iter() {
                let av = a.and_then(|a| {
                    field(a, k).or_else(|| {
                        a.iter()
                            .find(|(ak, _)| ak.eq_ignore_ascii_case(k))
                            .map(|(_, v)| v)
                    })
                });
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(dv, av, path, opts, out);
                path.truncate(len);
            }
        }
        Body::Array(d) => {
            let Some(a) = actual.and_then(Value::as_array) else {
                if !(d.is_empty() && actual.is_none_or(Value::is_null)) {
                    push(out, path, actual, Some(desired));
                }
                return;
            };
            let named = !d.is_empty()
                && d.iter()
                    .all(|e| e.get("name").and_then(Body::as_str).is_some());
            let element = |path: &mut String, name: &dyn std::fmt::Display| {
                use std::fmt::Write;
                let _ = write!(path, "[{name}]");
            };
            if named {
                for de in d.iter() {
                    let name = de["name"].as_str().unwrap_or_default();
                    let ae = a.iter().find(|x| {
                        x.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    });
                    element(path, &name);
                    match ae {
                        Some(ae) => walk(de, Some(ae), path, opts, out),
                        None => push(out, path, None, Some(de)),
                    }
                    path.truncate(len);
                }
                for ae in a {
                    let name = ae.get("name").and_then(Value::as_str).unwrap_or_default();
                    let declared = d.iter().any(|de| {
                        de["name"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    });
                    if !declared {
                        element(path, &name);
                        push(out, path, Some(ae), None);
                        path.truncate(len);
                    }
                }
            } else if d.len() != a.len() {
                push(out, path, actual, Some(desired));
            } else {
                for (i, (de, ae)) in d.iter().zip(a).enumerate() {
                    element(path, &i);
                    walk(de, Some(ae), path, opts, out);
                    path.truncate(len);
                }
            }
        }
        scalar => {
            let a = actual.unwrap_or(&Value::Null);
            if !scalar_eq(scalar, a) {
                push(out, path, actual, Some(desired));
            }
        }
    }
}

/// Scalars compare by value; ARM ids compare case-insensitively (ARM may change
/// their casing in responses); numbers compare numerically.
fn scalar_eq(d: &Body, a: &Value) -> bool {
    match (d, a) {
        (Body::String(x), Value::String(y)) if x.starts_with("/subscriptions/") => {
            x.eq_ignore_ascii_case(y)
        }
        (Body::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => d == a,
    }
}

/// The value a `$ref` points at, if the referenced resource is in the prior state.
pub fn resolve_ref(r: &Body, prior: &PriorState) -> Option<Value> {
    let id = crate::id::ResourceId::parse(r.get("id")?.as_str()?).ok()?;
    let path = r.get("path")?.as_str()?;
    let mut cur = &prior.get(&id)?.body;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    (!cur.is_null()).then(|| cur.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(desired: Value, actual: Value) -> Vec<DiffEntry> {
        let prior = PriorState::default();
        diff(
            &desired.into(),
            &actual,
            &DiffOptions {
                ignore: &["properties.ignored".to_string()],
                replace_on: &["zones".to_string()],
                prior: &prior,
            },
        )
    }

    #[test]
    fn only_declared_properties_count() {
        let desired = json!({"properties": {"a": 1, "osProfile": {"adminPassword": {"$secret": {"vault": "v", "name": "n"}}}}});
        let actual = json!({"properties": {"a": 1.0, "provisioningState": "Succeeded", "osProfile": {}}, "etag": "x"});
        assert!(d(desired, actual).is_empty());
    }

    #[test]
    fn named_arrays_match_by_name_and_extra_elements_are_drift() {
        let desired = json!({"rules": [{"name": "a", "p": 1}, {"name": "b", "p": 2}]});
        let actual = json!({"rules": [{"name": "b", "p": 2, "etag": "e"}, {"name": "a", "p": 3}, {"name": "c", "p": 9}]});
        let out = d(desired, actual);
        let paths: Vec<&str> = out.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["rules[a].p", "rules[c]"]);
        assert_eq!(out[0].before, Some(json!(3)));
        assert_eq!(out[1].after, None);
    }

    #[test]
    fn ignored_properties_keep_their_live_value() {
        let mut desired = json!({"properties": {"securityRules": [
            {"name": "a", "properties": {"access": "Deny", "priority": 100}},
            {"name": "b", "properties": {"access": "Deny"}}]}});
        let live = json!({"properties": {"securityRules": [
            {"name": "b", "properties": {"access": "Allow"}},
            {"name": "a", "properties": {"access": "Allow", "priority": 90}}]}});
        keep_ignored(
            &mut desired,
            &live,
            &["properties.securityRules[a].properties.access".to_string()],
        );
        assert_eq!(
            desired["properties"]["securityRules"][0]["properties"]["access"],
            "Allow"
        );
        assert_eq!(
            desired["properties"]["securityRules"][0]["properties"]["priority"],
            100
        );
        assert_eq!(
            desired["properties"]["securityRules"][1]["properties"]["access"],
            "Deny"
        );
    }

    #[test]
    fn replacement_ignore_and_ids() {
        let out = d(
            json!({"zones": ["1"], "properties": {"ignored": 1}}),
            json!({"zones": ["2"], "properties": {"ignored": 2}}),
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].forces_replacement);
        let out = d(
            json!({"id": "/subscriptions/s/resourceGroups/RG"}),
            json!({"id": "/subscriptions/s/resourcegroups/rg"}),
        );
        assert!(out.is_empty());
        let out = d(
            json!({"location": "westeurope"}),
            json!({"location": "northeurope"}),
        );
        assert!(out[0].forces_replacement);
    }
}
