//! [`Body`]: a rendered resource's ARM body, held compactly. It owns the
//! representation the graph and the plan keep of what lifeboat will PUT, and the
//! [`Json`] trait that lets one reader (cost, quota, policy, image holds) work on a
//! desired body and on an observed `serde_json::Value` alike. It never changes a
//! body in place: code that edits one (an ignored path kept, an activation tag
//! carried over) goes through `serde_json::Value` and back.
//!
//! Why: a 200-hospital fleet renders ~15,600 bodies with ~440,000 object
//! entries. As `serde_json::Value` with `preserve_order` each entry costs ~112
//! bytes plus its key's allocation, about 90 MB before a single cloud read. Here an
//! entry is a 16-byte interned key and a 24-byte value, objects and arrays are
//! exactly sized boxed slices, and keys (a few hundred distinct ones, from the
//! templates) are allocated once per process: the same bodies take ~25 MB.
//! Entry order is kept, so a body serializes byte-for-byte as the `Value` it came
//! from.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// An object key, interned for the life of the process.
pub type Key = &'static str;

/// A compact, immutable JSON value.
#[derive(Clone, PartialEq, Default)]
pub enum Body {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Array(Box<[Body]>),
    /// Entries in their written order; keys are unique.
    Object(Box<[(Key, Body)]>),
}

static NULL: Body = Body::Null;

/// Keys are interned so that the ~440,000 entries of a fleet share a few hundred
/// allocations. Interned keys are never freed, for the life of the process (one
/// command): they are bounded by the distinct keys of its inputs, the rendered
/// templates and, for `apply <plan>`, the saved plan, which is read whole
/// anyway, so a hostile plan file costs at most its own size again.
fn intern(key: &str) -> Key {
    thread_local! {
        static LOCAL: std::cell::RefCell<hashbrown::HashSet<Key>> = Default::default();
    }
    static GLOBAL: OnceLock<Mutex<hashbrown::HashSet<Key>>> = OnceLock::new();
    if let Some(k) = LOCAL.with(|l| l.borrow().get(key).copied()) {
        return k;
    }
    let k = {
        let mut g = GLOBAL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match g.get(key) {
            Some(k) => *k,
            None => {
                let k: Key = Box::leak(key.into());
                g.insert(k);
                k
            }
        }
    };
    LOCAL.with(|l| l.borrow_mut().insert(k));
    k
}

impl Body {
    pub fn get(&self, key: &str) -> Option<&Body> {
        match self {
            Body::Object(e) => e.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// RFC 6901 pointer, like `Value::pointer`.
    pub fn pointer(&self, pointer: &str) -> Option<&Body> {
        if pointer.is_empty() {
            return Some(self);
        }
        pointer
            .strip_prefix('/')?
            .split('/')
            .try_fold(self, |cur, token| {
                let token = unescape(token);
                match cur {
                    Body::Object(_) => cur.get(&token),
                    Body::Array(a) => a.get(index(&token)?),
                    _ => None,
                }
            })
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Body::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Body]> {
        match self {
            Body::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&[(Key, Body)]> {
        match self {
            Body::Object(e) => Some(e),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Body::Number(n) => n.as_u64(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Body::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Body::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Body::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Body::Null)
    }
    pub fn is_object(&self) -> bool {
        matches!(self, Body::Object(_))
    }
    pub fn is_array(&self) -> bool {
        matches!(self, Body::Array(_))
    }
    pub fn is_string(&self) -> bool {
        matches!(self, Body::String(_))
    }

    /// An object of `entries` in their order; a repeated key keeps its first
    /// place and its last value (as `serde_json::Map` does when extended).
    pub fn object(entries: Vec<(String, Body)>) -> Body {
        let mut out: Vec<(Key, Body)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.iter_mut().find(|(x, _)| *x == k) {
                Some(slot) => slot.1 = v,
                None => out.push((intern(&k), v)),
            }
        }
        Body::Object(out.into())
    }

    /// The body as a `serde_json::Value` (a copy), for code that edits it.
    pub fn to_value(&self) -> Value {
        match self {
            Body::Null => Value::Null,
            Body::Bool(b) => Value::Bool(*b),
            Body::Number(n) => Value::Number(n.clone()),
            Body::String(s) => Value::String(s.to_string()),
            Body::Array(a) => Value::Array(a.iter().map(Body::to_value).collect()),
            Body::Object(e) => {
                let mut m = Map::with_capacity(e.len());
                for (k, v) in e.iter() {
                    m.insert((*k).to_string(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }

    /// Run `edit` on the body as a `Value` and keep the result.
    pub fn edit<T>(&mut self, edit: impl FnOnce(&mut Value) -> T) -> T {
        let mut v = std::mem::take(self).into_value();
        let out = edit(&mut v);
        *self = Body::from(v);
        out
    }

    /// The body as a `serde_json::Value`, consuming it.
    pub fn into_value(self) -> Value {
        match self {
            Body::Null => Value::Null,
            Body::Bool(b) => Value::Bool(b),
            Body::Number(n) => Value::Number(n),
            Body::String(s) => Value::String(s.into()),
            Body::Array(a) => {
                Value::Array(a.into_vec().into_iter().map(Body::into_value).collect())
            }
            Body::Object(e) => {
                let mut m = Map::with_capacity(e.len());
                for (k, v) in e.into_vec() {
                    m.insert(k.to_string(), v.into_value());
                }
                Value::Object(m)
            }
        }
    }
}

/// `~1` is `/` and `~0` is `~`, undone in that order (RFC 6901).
fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// An array index as RFC 6901 writes it: digits, no leading zero, no sign.
fn index(token: &str) -> Option<usize> {
    if token.is_empty()
        || (token.len() > 1 && token.starts_with('0'))
        || !token.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    token.parse().ok()
}

impl From<Value> for Body {
    fn from(v: Value) -> Body {
        match v {
            Value::Null => Body::Null,
            Value::Bool(b) => Body::Bool(b),
            Value::Number(n) => Body::Number(n),
            Value::String(s) => Body::String(s.into_boxed_str()),
            Value::Array(a) => Body::Array(a.into_iter().map(Body::from).collect()),
            Value::Object(m) => Body::Object(
                m.into_iter()
                    .map(|(k, v)| (intern(&k), Body::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<&Body> for Value {
    fn from(b: &Body) -> Value {
        b.to_value()
    }
}

impl std::ops::Index<&str> for Body {
    type Output = Body;
    /// `Null` when absent, like `Value`'s index.
    fn index(&self, key: &str) -> &Body {
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for Body {
    type Output = Body;
    fn index(&self, i: usize) -> &Body {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&NULL)
    }
}

impl PartialEq<Value> for Body {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Body::Null, Value::Null) => true,
            (Body::Bool(a), Value::Bool(b)) => a == b,
            (Body::Number(a), Value::Number(b)) => a == b,
            (Body::String(a), Value::String(b)) => **a == **b,
            (Body::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (Body::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(*k).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

impl PartialEq<str> for Body {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Body {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Body::Null => s.serialize_unit(),
            Body::Bool(b) => s.serialize_bool(*b),
            Body::Number(n) => n.serialize(s),
            Body::String(t) => s.serialize_str(t),
            Body::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a.iter() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Body::Object(e) => {
                let mut map = s.serialize_map(Some(e.len()))?;
                for (k, v) in e.iter() {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        Value::deserialize(d).map(Body::from)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Compact JSON, like `Value`'s `Display`.
impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

/// `m[key]`. Plans read a few fields (tags, states, sizes) of every one of a
/// fleet's ~15,000 resources, several times over: small objects (most of them)
/// are scanned rather than hashed.
pub fn field<'v>(m: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    if m.len() <= 16 {
        m.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    } else {
        m.get(key)
    }
}

/// What readers of a body need, for a desired [`Body`] and an observed
/// `serde_json::Value` alike.
pub trait Json: Sized {
    fn get(&self, key: &str) -> Option<&Self>;
    fn as_str(&self) -> Option<&str>;
    /// The array's items; empty for anything else.
    fn items(&self) -> &[Self];
    fn as_u64(&self) -> Option<u64>;
    fn as_f64(&self) -> Option<f64>;
    fn as_bool(&self) -> Option<bool>;

    /// A pointer's value, without allocating (tokens with `~` escapes do not
    /// occur in the fixed paths readers use, and are not decoded here).
    fn at(&self, pointer: &str) -> Option<&Self> {
        if pointer.is_empty() {
            return Some(self);
        }
        pointer
            .strip_prefix('/')?
            .split('/')
            .try_fold(self, |cur, token| match cur.get(token) {
                Some(v) => Some(v),
                None => cur.items().get(index(token)?),
            })
    }
}

impl Json for Body {
    fn get(&self, key: &str) -> Option<&Body> {
        Body::get(self, key)
    }
    fn as_str(&self) -> Option<&str> {
        Body::as_str(self)
    }
    fn items(&self) -> &[Body] {
        self.as_array().unwrap_or_default()
    }
    fn as_u64(&self) -> Option<u64> {
        Body::as_u64(self)
    }
    fn as_f64(&self) -> Option<f64> {
        Body::as_f64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Body::as_bool(self)
    }
}

impl Json for Value {
    fn get(&self, key: &str) -> Option<&Value> {
        field(self.as_object()?, key)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn items(&self) -> &[Value] {
        self.as_array().map(Vec::as_slice).unwrap_or_default()
    }
    fn as_u64(&self) -> Option<u64> {
        Value::as_u64(self)
    }
    fn as_f64(&self) -> Option<f64> {
        Value::as_f64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "location": "westeurope",
            "tags": {"lifeboat-tenant": "h1", "a/b": "slash", "m~n": "tilde"},
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                "storageProfile": {"dataDisks": [{"lun": 0, "diskSizeGB": 512}, {"lun": 1}]},
                "flag": true, "ratio": 0.5, "neg": -3, "none": null, "empty": {}, "list": []
            },
            "zones": ["1", "2"]
        })
    }

    #[test]
    fn round_trips_and_serializes_as_the_value_did() {
        let v = sample();
        let b = Body::from(v.clone());
        assert_eq!(b.to_value(), v);
        assert_eq!(b.clone().into_value(), v);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
        assert_eq!(
            serde_json::to_string_pretty(&b).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
        assert_eq!(b.to_string(), v.to_string());
        let back: Body = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(back, b);
        assert!(b == v);
        assert!(b != json!({"location": "westeurope"}));
    }

    #[test]
    fn reads_like_the_value() {
        let v = sample();
        let b = Body::from(v.clone());
        for p in [
            "",
            "/location",
            "/tags/a~1b",
            "/tags/m~0n",
            "/properties/hardwareProfile/vmSize",
            "/properties/storageProfile/dataDisks/0/diskSizeGB",
            "/properties/storageProfile/dataDisks/1",
            "/properties/storageProfile/dataDisks/01",
            "/properties/storageProfile/dataDisks/2",
            "/properties/none",
            "/zones/1",
            "/missing/x",
            "location",
        ] {
            assert_eq!(
                b.pointer(p).map(Body::to_value),
                v.pointer(p).cloned(),
                "{p}"
            );
        }
        assert_eq!(b["properties"]["flag"].as_bool(), Some(true));
        assert_eq!(b["properties"]["neg"].as_i64(), Some(-3));
        assert_eq!(b["properties"]["ratio"].as_f64(), Some(0.5));
        assert!(b["nope"]["deeper"].is_null());
        assert_eq!(b["zones"][1].as_str(), Some("2"));
    }

    #[test]
    fn the_shared_reader_agrees_on_both_representations() {
        let v = sample();
        let b = Body::from(v.clone());
        for p in [
            "/properties/hardwareProfile/vmSize",
            "/properties/storageProfile/dataDisks/0/lun",
            "/zones/0",
            "/zones/9",
            "/location/x",
        ] {
            assert_eq!(
                Json::at(&b, p).map(Body::to_value),
                Json::at(&v, p).cloned(),
                "{p}"
            );
        }
        assert_eq!(Json::items(&b["zones"]).len(), 2);
        assert!(Json::items(&b["location"]).is_empty());
    }

    #[test]
    fn keys_are_shared_and_edits_go_through_a_value() {
        let mut a = Body::from(json!({"properties": {"x": 1}}));
        let b = Body::from(json!({"properties": {"y": 2}}));
        let (ka, kb) = (a.as_object().unwrap()[0].0, b.as_object().unwrap()[0].0);
        assert!(std::ptr::eq(ka, kb));
        a.edit(|v| v["properties"]["x"] = json!(3));
        assert_eq!(a, Body::from(json!({"properties": {"x": 3}})));
    }
}
