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
    /// Worked out once: a fleet's plan asks ids for their type and parent
    /// tens of thousands of times.
    shape: Shape,
}

/// Where an id's parts are, by the id grammar (so a resource *named*
/// `providers` is not taken for the keyword).
#[derive(Clone, Copy)]
struct Shape {
    /// Byte offset of the namespace after the last `providers` segment; 0 when
    /// there is none (a subscription or a resource group).
    own: u32,
    resource_group: bool,
}

/// At most this many segments are split without allocating; ARM ids are far
/// shorter, and a longer one is split into a `Vec`.
const INLINE_SEGMENTS: usize = 32;

/// `f` of the `/`-separated segments of `s`.
fn with_segments<R>(s: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    let mut buf = [""; INLINE_SEGMENTS];
    let mut n = 0;
    let mut start = 0;
    // A byte loop: `split('/')` searches for each of a dozen short segments
    // on its own, and ids are split a hundred thousand times per fleet plan.
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] != b'/' {
            continue;
        }
        if n + 1 == buf.len() {
            return f(&s.split('/').collect::<Vec<_>>());
        }
        buf[n] = &s[start..i];
        n += 1;
        start = i + 1;
    }
    buf[n] = &s[start..];
    f(&buf[..n + 1])
}

/// Byte offset of segment `i` of the segments `segs` of one string.
fn offset_of(segs: &[&str], i: usize) -> usize {
    segs[..i].iter().map(|s| s.len() + 1).sum()
}

/// The shape of `segs`, or why they are not an ARM resource id
/// (`/subscriptions/S[/resourceGroups/RG][/providers/NS/T/N[/T/N]...]...`).
fn shape_of(segs: &[&str]) -> Result<Shape, &'static str> {
    if segs.len() < 3 || !segs[0].is_empty() || !segs[1].eq_ignore_ascii_case("subscriptions") {
        return Err("must start with /subscriptions/");
    }
    if segs.iter().skip(1).any(|p| p.is_empty()) {
        return Err("has an empty segment");
    }
    let mut i = 3;
    let mut resource_group = false;
    if segs.len() > i && segs[i].eq_ignore_ascii_case("resourceGroups") {
        if segs.len() < i + 2 {
            return Err("resourceGroups needs a name");
        }
        i += 2;
        resource_group = segs.len() == i;
    }
    let mut own = 0;
    while i < segs.len() {
        if !segs[i].eq_ignore_ascii_case("providers") || segs.len() < i + 4 {
            return Err("expected providers/NAMESPACE/TYPE/NAME");
        }
        own = i + 1;
        i += 2;
        // type/name pairs until the next `providers` (extension resource) or the end.
        loop {
            if segs.len() < i + 2 {
                return Err("a resource type has no name");
            }
            i += 2;
            if i >= segs.len() || segs[i].eq_ignore_ascii_case("providers") {
                break;
            }
        }
    }
    let own = match own {
        0 => 0,
        i => u32::try_from(offset_of(segs, i)).map_err(|_| "is too long")?,
    };
    Ok(Shape {
        own,
        resource_group,
    })
}

/// The shape of segments that are not a valid id (what [`ResourceId::child`]
/// or [`ResourceId::parent`] may build from one): the last `providers`
/// segment wherever it is.
fn loose_shape(segs: &[&str]) -> Shape {
    let own = segs
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
        .filter(|p| p + 1 < segs.len())
        .and_then(|p| u32::try_from(offset_of(segs, p + 1)).ok())
        .unwrap_or(0);
    Shape {
        own,
        resource_group: segs.len() == 5 && segs[3].eq_ignore_ascii_case("resourceGroups"),
    }
}

/// [`shape_of`], or [`loose_shape`] when `segs` are not a valid id.
fn any_shape(segs: &[&str]) -> Shape {
    shape_of(segs).unwrap_or_else(|_| loose_shape(segs))
}

impl ResourceId {
    /// `raw` (its shape already worked out) with its lower-cased `key`.
    fn from_parts(raw: &str, key: Box<str>, shape: Shape) -> ResourceId {
        ResourceId {
            inner: std::sync::Arc::new(Spelling {
                raw: raw.into(),
                key,
                shape,
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
        let shape = with_segments(s, shape_of).map_err(|reason| IdError {
            id: s.to_string(),
            reason,
        })?;
        Ok(ResourceId::from_parts(
            s,
            s.to_ascii_lowercase().into(),
            shape,
        ))
    }

    /// The id's first `end` bytes (cut at a segment boundary).
    fn prefix(&self, end: usize) -> ResourceId {
        let raw = &self.inner.raw[..end];
        let shape = with_segments(raw, any_shape);
        ResourceId::from_parts(raw, self.inner.key[..end].into(), shape)
    }

    pub fn as_str(&self) -> &str {
        &self.inner.raw
    }

    /// Lower-cased form, the identity ARM uses.
    pub fn key(&self) -> &str {
        &self.inner.key
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
        with_segments(&self.inner.raw, |segs| {
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
        })
    }

    /// True for `/subscriptions/S/resourceGroups/RG`.
    pub fn is_resource_group(&self) -> bool {
        self.inner.shape.resource_group
    }

    /// `Microsoft.Network/virtualNetworks/virtualNetworkPeerings` for a peering id;
    /// `Microsoft.Resources/resourceGroups` for a resource group.
    pub fn resource_type(&self) -> String {
        if self.is_resource_group() {
            return "Microsoft.Resources/resourceGroups".into();
        }
        let own = self.inner.shape.own as usize;
        if own == 0 {
            return "Microsoft.Resources/subscriptions".into();
        }
        // NAMESPACE/T1/N1/T2/N2...: the namespace and every type.
        let tail = &self.inner.raw[own..];
        let mut t = String::with_capacity(tail.len());
        for (i, seg) in tail.split('/').enumerate() {
            if i == 0 || i % 2 == 1 {
                if i > 0 {
                    t.push('/');
                }
                t.push_str(seg);
            }
        }
        t
    }

    /// The resource this one lives in: the parent resource for a child, the scope for
    /// an extension resource, the resource group for a top-level resource.
    pub fn parent(&self) -> Option<ResourceId> {
        self.parent_end().map(|end| self.prefix(end))
    }

    /// [`ResourceId::parent`]'s key, a slice of this one's: nothing is built
    /// (ownership walks a fleet's ~17,000 resources up to their tagged
    /// ancestors).
    pub fn parent_key(&self) -> Option<&str> {
        self.parent_end().map(|end| &self.inner.key[..end])
    }

    /// Where the parent's id ends in this one (a byte offset).
    fn parent_end(&self) -> Option<usize> {
        let key = &*self.inner.key;
        // Drop the last TYPE/NAME pair, and a `providers/NAMESPACE` before it.
        let mut end = key.len();
        for _ in 0..2 {
            end = key[..end].rfind('/')?;
        }
        if key.as_bytes()[..end].iter().filter(|&&c| c == b'/').count() < 2 {
            return None;
        }
        let ns = key[..end].rfind('/')?;
        if let Some(p) = key[..ns].rfind('/')
            && &key[p + 1..ns] == "providers"
        {
            end = p;
        }
        Some(end)
    }

    /// Id of a child: `self/type/name`.
    pub fn child(&self, type_segment: &str, name: &str) -> ResourceId {
        let raw = format!("{}/{type_segment}/{name}", self.as_str());
        let shape = with_segments(&raw, any_shape);
        ResourceId::from_parts(&raw, raw.to_ascii_lowercase().into(), shape)
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

    /// Type, parent and resource-group-ness of every shape of id, including a
    /// resource named `providers` and a subscription-scope extension.
    #[test]
    fn every_shape_navigates() {
        let rg = "/subscriptions/s/resourceGroups/RG";
        for (id, ty, parent, is_rg) in [
            (
                "/subscriptions/s",
                "Microsoft.Resources/subscriptions",
                None,
                false,
            ),
            (
                rg,
                "Microsoft.Resources/resourceGroups",
                Some("/subscriptions/s"),
                true,
            ),
            (
                "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/g",
                "Microsoft.Authorization/roleAssignments",
                Some("/subscriptions/s"),
                false,
            ),
            (
                "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/a/blobServices/default/containers/c",
                "Microsoft.Storage/storageAccounts/blobServices/containers",
                Some(
                    "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Storage/storageAccounts/a/blobServices/default",
                ),
                false,
            ),
            (
                "/subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Insights/diagnosticSettings/d",
                "Microsoft.Insights/diagnosticSettings",
                Some("/subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/kv"),
                false,
            ),
            (
                "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/providers/subnets/x",
                "Microsoft.Network/virtualNetworks/subnets",
                Some(
                    "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/providers",
                ),
                false,
            ),
        ] {
            let r = ResourceId::parse(id).unwrap();
            assert_eq!(r.resource_type(), ty, "{id}");
            assert_eq!(
                r.parent().map(|p| p.as_str().to_string()).as_deref(),
                parent,
                "{id}"
            );
            assert_eq!(r.is_resource_group(), is_rg, "{id}");
            assert_eq!(
                r.parent_key().map(str::to_string),
                r.parent().map(|p| p.key().to_string()),
                "{id}"
            );
            if let Some(p) = r.parent() {
                assert_eq!(p.key(), p.as_str().to_ascii_lowercase(), "{id}");
                assert_eq!(p, ResourceId::parse(p.as_str()).unwrap(), "{id}");
                assert_eq!(
                    p.resource_type(),
                    ResourceId::parse(p.as_str()).unwrap().resource_type()
                );
            }
        }
        let long = format!("{rg}/providers/N/t/n{}", "/t/n".repeat(40));
        let r = ResourceId::parse(&long).unwrap();
        assert_eq!(r.resource_type(), format!("N/t{}", "/t".repeat(40)));
        assert_eq!(r.parent().unwrap().as_str(), &long[..long.len() - 4]);
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
