//! ARM resource ids as a type: parsing, case-insensitive identity, parent and
//! resource-type navigation. ARM treats ids case-insensitively, so equality,
//! hashing and ordering use the lower-cased form while display keeps the spelling.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which part of the estate a resource belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Shared,
    Tenant,
    Image,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Shared => "shared",
            Layer::Tenant => "tenant",
            Layer::Image => "image",
        }
    }
    pub fn parse(s: &str) -> Option<Layer> {
        match s {
            "shared" => Some(Layer::Shared),
            "tenant" => Some(Layer::Tenant),
            "image" => Some(Layer::Image),
            _ => None,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Shared, immutable: a fleet's plan holds hundreds of thousands of id copies (every
/// dependency edge), so a clone is a reference-count increment, not two strings.
#[derive(Clone)]
pub struct ResourceId {
    inner: std::sync::Arc<Spelling>,
}

struct Spelling {
    raw: Box<str>,
    key: Box<str>,
}

impl ResourceId {
    fn from_raw(raw: String) -> ResourceId {
        let key = raw.to_ascii_lowercase().into_boxed_str();
        ResourceId {
            inner: std::sync::Arc::new(Spelling {
                raw: raw.into_boxed_str(),
                key,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not an ARM resource id: {reason}")]
pub struct IdError {
    pub id: String,
    pub reason: &'static str,
}

impl ResourceId {
    /// Parse and check the shape `/subscriptions/S[/resourceGroups/RG][/providers/NS/T/N[/T/N]...]...`.
    pub fn parse(s: &str) -> Result<ResourceId, IdError> {
        let err = |reason| IdError {
            id: s.to_string(),
            reason,
        };
        let segs: Vec<&str> = s.split('/').collect();
        if segs.len() < 3 || !segs[0].is_empty() || !segs[1].eq_ignore_ascii_case("subscriptions") {
            return Err(err("must start with /subscriptions/"));
        }
        if segs.iter().skip(1).any(|p| p.is_empty()) {
            return Err(err("has an empty segment"));
        }
        let mut i = 3;
        if segs.len() > i && segs[i].eq_ignore_ascii_case("resourceGroups") {
            if segs.len() < i + 2 {
                return Err(err("resourceGroups needs a name"));
            }
            i += 2;
        }
        while i < segs.len() {
            if !segs[i].eq_ignore_ascii_case("providers") || segs.len() < i + 4 {
                return Err(err("expected providers/NAMESPACE/TYPE/NAME"));
            }
            i += 2;
            // type/name pairs until the next `providers` (extension resource) or the end.
            loop {
                if segs.len() < i + 2 {
                    return Err(err("a resource type has no name"));
                }
                i += 2;
                if i >= segs.len() || segs[i].eq_ignore_ascii_case("providers") {
                    break;
                }
            }
        }
        Ok(ResourceId::from_raw(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.inner.raw
    }

    /// Lower-cased form, the identity ARM uses.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    fn segments(&self) -> Vec<&str> {
        self.inner.raw.split('/').collect()
    }

    pub fn subscription(&self) -> &str {
        self.inner.raw.split('/').nth(2).unwrap_or_default()
    }

    pub fn resource_group(&self) -> Option<&str> {
        let mut it = self.inner.raw.split('/');
        it.nth(3)
            .filter(|s| s.eq_ignore_ascii_case("resourceGroups"))
            .and_then(|_| it.next())
    }

    /// The resource's own name (last segment).
    pub fn name(&self) -> &str {
        self.inner.raw.rsplit('/').next().unwrap_or_default()
    }

    /// The names along the type chain: `account/default/logshipping` for a container;
    /// an extension resource is named after its scope too (`kv/to-log-analytics`).
    pub fn display_name(&self) -> String {
        let segs = self.segments();
        let providers: Vec<usize> = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.eq_ignore_ascii_case("providers"))
            .map(|(i, _)| i)
            .collect();
        let names = |from: usize, to: usize| -> Vec<&str> {
            segs[from..to].iter().step_by(2).copied().collect()
        };
        match providers.as_slice() {
            [] => self.name().to_string(),
            [.., scope, own] => {
                let mut n = names(scope + 3, *own);
                n.extend(names(own + 3, segs.len()));
                n.join("/")
            }
            [own] => names(own + 3, segs.len()).join("/"),
        }
    }

    /// True for `/subscriptions/S/resourceGroups/RG`.
    pub fn is_resource_group(&self) -> bool {
        self.segments().len() == 5 && self.resource_group().is_some()
    }

    /// `Microsoft.Network/virtualNetworks/virtualNetworkPeerings` for a peering id;
    /// `Microsoft.Resources/resourceGroups` for a resource group.
    pub fn resource_type(&self) -> String {
        let segs = self.segments();
        if self.is_resource_group() {
            return "Microsoft.Resources/resourceGroups".into();
        }
        let Some(p) = segs
            .iter()
            .rposition(|s| s.eq_ignore_ascii_case("providers"))
        else {
            return "Microsoft.Resources/subscriptions".into();
        };
        let mut t = segs[p + 1].to_string();
        let mut i = p + 2;
        while i < segs.len() {
            t.push('/');
            t.push_str(segs[i]);
            i += 2;
        }
        t
    }

    /// The resource this one lives in: the parent resource for a child, the scope for
    /// an extension resource, the resource group for a top-level resource.
    pub fn parent(&self) -> Option<ResourceId> {
        let segs = self.segments();
        if segs.len() <= 3 {
            return None;
        }
        let mut end = segs.len() - 2;
        if end >= 2 && segs[end - 2].eq_ignore_ascii_case("providers") {
            end -= 2;
        }
        Some(ResourceId::from_raw(segs[..end].join("/")))
    }

    /// Id of a child: `self/type/name`.
    pub fn child(&self, type_segment: &str, name: &str) -> ResourceId {
        ResourceId::from_raw(format!("{}/{type_segment}/{name}", self.as_str()))
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, o: &Self) -> bool {
        self.inner.key == o.inner.key
    }
}
impl Eq for ResourceId {}
impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.inner.key.hash(h)
    }
}
impl PartialOrd for ResourceId {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ResourceId {
    fn cmp(&self, o: &Self) -> Ordering {
        self.inner.key.cmp(&o.inner.key)
    }
}
impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.raw)
    }
}
impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({})", self.inner.raw)
    }
}
impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.inner.raw)
    }
}
impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResourceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// 32 hex digits as a GUID (`8-4-4-4-12`), the form Azure and Entra ids take.
pub fn guid_of_hex(h: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VNET: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v";

    #[test]
    fn navigates() {
        let peer = ResourceId::parse(&format!("{VNET}/virtualNetworkPeerings/p")).unwrap();
        assert_eq!(
            peer.resource_type(),
            "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
        );
        assert_eq!(peer.parent().unwrap().as_str(), VNET);
        assert_eq!(
            peer.parent().unwrap().parent().unwrap().as_str(),
            "/subscriptions/s/resourceGroups/rg"
        );
        assert!(peer.parent().unwrap().parent().unwrap().is_resource_group());
        assert_eq!(peer.resource_group(), Some("rg"));
        assert_eq!(peer.name(), "p");
        assert_eq!(peer.display_name(), "v/p");
        let ra = ResourceId::parse(&format!(
            "{VNET}/providers/Microsoft.Authorization/roleAssignments/g"
        ))
        .unwrap();
        assert_eq!(
            ra.resource_type(),
            "Microsoft.Authorization/roleAssignments"
        );
        assert_eq!(ra.parent().unwrap().as_str(), VNET);
    }

    #[test]
    fn case_insensitive_identity() {
        let a = ResourceId::parse(VNET).unwrap();
        let b = ResourceId::parse(
            &VNET
                .to_uppercase()
                .replace("/SUBSCRIPTIONS", "/subscriptions"),
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "subscriptions/x",
            "/subscriptions/",
            "/subscriptions/s/resourceGroups",
            "/subscriptions/s/providers/Microsoft.Network/virtualNetworks",
            "/subscriptions/s//x",
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad}");
        }
    }
}
