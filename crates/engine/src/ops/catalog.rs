//! The signed endpoint catalog (after the eHealth BCP model): per tenant its
//! services with the primary (hospital) and fallback (emergency) endpoint, each
//! ACTIVE or INACTIVE, and a cache validity, signed with an enveloped XML
//! Signature (RSA-SHA256, exclusive canonicalisation) that `xmlsec1 --verify`
//! accepts.
//!
//! lifeboat writes the document already in its exclusive-C14N form (no
//! self-closing tags, attributes in canonical order, canonical escaping), so the
//! digest is taken over the bytes as written without the Signature element.
//!
//! `verify` never reads bytes it has not verified: it parses the document as XML
//! (no DTD, no entities, one root element and nothing beside it), requires the
//! profile lifeboat signs (unprefixed elements in the catalog namespace, one
//! enveloped Signature as a child of the root, the exact algorithms), computes
//! the exclusive canonical form of the tree the signature covers, checks the
//! digest and the RSA signature over the canonical SignedInfo, checks the signing
//! certificate's validity period, and only then reads the catalog's content from
//! that same tree. RSA comes from `ring` (already the TLS provider); the
//! certificate is read with a minimal DER walk. Pure: no files, no cloud; the
//! command layer reads keys and writes the file.

use std::fmt::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, RsaKeyPair};
use sha2::{Digest, Sha256};

pub const NS: &str = "urn:lifeboat:endpoint-catalog:1";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    #[error("catalog signature invalid: {0}")]
    Invalid(String),
    #[error("catalog expired: valid until {0}")]
    Expired(String),
    #[error("signing certificate not valid at {at}: valid from {not_before} until {not_after}")]
    Certificate {
        at: String,
        not_before: String,
        not_after: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `primary` (the hospital's own) or `fallback` (the emergency environment).
    pub role: &'static str,
    pub url: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: String,
    pub name: String,
    pub services: Vec<Service>,
}

/// Canonical attribute value escaping (exclusive C14N).
fn attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#x9;"),
            '\n' => o.push_str("&#xA;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    o
}

/// The catalog without its signature, as its root element (canonical form).
pub fn unsigned_root(
    tenants: &[TenantEntry],
    issuer: &str,
    issued: jiff::Timestamp,
    cache_validity_s: u64,
) -> String {
    let valid_until = issued + jiff::SignedDuration::from_secs(cache_validity_s as i64);
    let mut x = String::new();
    let _ = writeln!(
        x,
        "<EndpointCatalog xmlns=\"{NS}\" cacheValiditySeconds=\"{cache_validity_s}\" issued=\"{}\" issuer=\"{}\" validUntil=\"{}\">",
        attr(&issued.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        attr(issuer),
        attr(&valid_until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    );
    for t in tenants {
        let _ = writeln!(
            x,
            "<Tenant id=\"{}\" name=\"{}\">",
            attr(&t.id),
            attr(&t.name)
        );
        for s in &t.services {
            let _ = writeln!(x, "<Service name=\"{}\">", attr(&s.name));
            for e in &s.endpoints {
                let _ = writeln!(
                    x,
                    "<Endpoint role=\"{}\" status=\"{}\" url=\"{}\"></Endpoint>",
                    e.role,
                    if e.active { "ACTIVE" } else { "INACTIVE" },
                    attr(&e.url)
                );
            }
            x.push_str("</Service>\n");
        }
        x.push_str("</Tenant>\n");
    }
    x.push_str("</EndpointCatalog>");
    x
}

fn signed_info(digest_b64: &str, with_ns: bool) -> String {
    let ns = if with_ns {
        format!(" xmlns=\"{DSIG}\"")
    } else {
        String::new()
    };
    format!(
        "<SignedInfo{ns}><CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></CanonicalizationMethod><SignatureMethod Algorithm=\"{RSA_SHA256}\"></SignatureMethod><Reference URI=\"\"><Transforms><Transform Algorithm=\"{ENVELOPED}\"></Transform><Transform Algorithm=\"{EXC_C14N}\"></Transform></Transforms><DigestMethod Algorithm=\"{SHA256}\"></DigestMethod><DigestValue>{digest_b64}</DigestValue></Reference></SignedInfo>"
    )
}

fn pem_blocks(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].split_whitespace().collect();
    B64.decode(b64).ok()
}

/// An RSA key from PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
pub fn load_key(pem: &str, what: &str) -> Result<RsaKeyPair, CatalogError> {
    let err = |reason: String| CatalogError::Key {
        what: what.into(),
        reason,
    };
    if let Some(der) = pem_blocks(pem, "PRIVATE KEY") {
        return RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| err(format!("not an RSA PKCS#8 key: {e}")));
    }
    if let Some(der) = pem_blocks(pem, "RSA PRIVATE KEY") {
        return RsaKeyPair::from_der(&der).map_err(|e| err(format!("not an RSA key: {e}")));
    }
    Err(err(
        "no PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)".into(),
    ))
}

/// One DER element at the start of `d`: (tag, contents, rest).
fn der(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let l0 = *d.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *d.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = d.get(hdr..hdr + len)?;
    Some((tag, body, &d[hdr + len..]))
}

/// The RSA public key (PKCS#1 `RSAPublicKey` DER) of an X.509 certificate.
fn cert_public_key(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert, _) = der(cert_der)?; // Certificate SEQUENCE
    let (_, tbs, _) = der(cert)?; // TBSCertificate SEQUENCE
    let mut rest = tbs;
    let (tag, _, r) = der(rest)?;
    rest = if tag == 0xa0 { r } else { rest }; // [0] version
    for _ in 0..5 {
        // serial, signature, issuer, validity, subject
        rest = der(rest)?.2;
    }
    let (_, spki, _) = der(rest)?; // SubjectPublicKeyInfo
    let (_, _alg, r) = der(spki)?;
    let (tag, bits, _) = der(r)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| bits[1..].to_vec())
}

/// Sign: the root's digest goes into SignedInfo, SignedInfo (canonical, with its
/// namespace) is signed, and the Signature element is appended inside the root.
pub fn sign(root: &str, key: &RsaKeyPair) -> Result<String, CatalogError> {
    let digest = B64.encode(Sha256::digest(root.as_bytes()));
    let si = signed_info(&digest, true);
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        si.as_bytes(),
        &mut sig,
    )
    .map_err(|_| CatalogError::Key {
        what: "signing".into(),
        reason: "RSA signing failed".into(),
    })?;
    let signature = format!(
        "<Signature xmlns=\"{DSIG}\">{}<SignatureValue>{}</SignatureValue></Signature>",
        signed_info(&digest, false),
        B64.encode(&sig)
    );
    let cut = root
        .rfind("</EndpointCatalog>")
        .expect("root ends with its end tag");
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}{signature}{}\n",
        &root[..cut],
        &root[cut..]
    ))
}

/// What a verified catalog says, read from the verified tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub valid_until: String,
    pub issuer: String,
    pub tenants: usize,
    /// Tenants whose fallback (emergency) endpoint is ACTIVE.
    pub active: Vec<String>,
    pub entries: Vec<TenantEntry>,
}

/// The certificate's validity period (notBefore, notAfter).
fn cert_validity(cert_der: &[u8]) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
    let (_, cert, _) = der(cert_der)?;
    let (_, tbs, _) = der(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = der(rest)?;
    rest = if tag == 0xa0 { r } else { rest };
    for _ in 0..3 {
        // serial, signature, issuer
        rest = der(rest)?.2;
    }
    let (_, validity, _) = der(rest)?;
    let (t1, nb, r) = der(validity)?;
    let (t2, na, _) = der(r)?;
    Some((asn1_time(t1, nb)?, asn1_time(t2, na)?))
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ).
fn asn1_time(tag: u8, v: &[u8]) -> Option<jiff::Timestamp> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let full = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: u32 = s[..2].parse().ok()?;
            format!("{}{s}", if yy >= 50 { "19" } else { "20" })
        }
        (0x18, 14) => s.to_string(),
        _ => return None,
    };
    let t = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    );
    t.parse().ok()
}

/// The certificate's public key, refused outside its validity period.
fn certificate_key(cert_pem: &str, now: jiff::Timestamp) -> Result<Vec<u8>, CatalogError> {
    let key_err = |reason: &str| CatalogError::Key {
        what: "certificate".into(),
        reason: reason.into(),
    };
    let cert =
        pem_blocks(cert_pem, "CERTIFICATE").ok_or_else(|| key_err("no PEM CERTIFICATE block"))?;
    let public = cert_public_key(&cert).ok_or_else(|| key_err("no RSA public key in it"))?;
    let (not_before, not_after) =
        cert_validity(&cert).ok_or_else(|| key_err("no readable validity period"))?;
    if now < not_before || now > not_after {
        return Err(CatalogError::Certificate {
            at: now.to_string(),
            not_before: not_before.to_string(),
            not_after: not_after.to_string(),
        });
    }
    Ok(public)
}

/// The start tag's qualified name as written (to refuse prefixes).
fn written_name<'a>(n: &roxmltree::Node<'a, 'a>) -> &'a str {
    let text = &n.document().input_text()[n.range().start + 1..];
    let end = text
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(text.len());
    &text[..end]
}

/// Exclusive XML canonicalisation (without comments) of `node`, leaving out the
/// element `skip` (the enveloped signature), for the profile `verify` accepts:
/// unprefixed elements in one default namespace, unqualified attributes. The
/// apex declares its namespace; nothing below redeclares it.
fn exc_c14n(node: roxmltree::Node<'_, '_>, skip: Option<roxmltree::NodeId>, out: &mut String) {
    fn text(out: &mut String, t: &str) {
        for c in t.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\r' => out.push_str("&#xD;"),
                c => out.push(c),
            }
        }
    }
    fn element(
        n: roxmltree::Node<'_, '_>,
        apex: bool,
        skip: Option<roxmltree::NodeId>,
        out: &mut String,
    ) {
        let name = n.tag_name().name();
        out.push('<');
        out.push_str(name);
        if apex && let Some(ns) = n.tag_name().namespace() {
            out.push_str(" xmlns=\"");
            out.push_str(&attr(ns));
            out.push('"');
        }
        let mut attrs: Vec<(&str, &str)> = n.attributes().map(|a| (a.name(), a.value())).collect();
        attrs.sort();
        for (k, v) in attrs {
            let _ = write!(out, " {k}=\"{}\"", attr(v));
        }
        out.push('>');
        for c in n.children() {
            if Some(c.id()) == skip {
                continue;
            }
            if c.is_element() {
                element(c, false, skip, out);
            } else if c.is_text() {
                text(out, c.text().unwrap_or(""));
            }
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    element(node, true, skip, out);
}

/// Check the enveloped signature with the certificate's key, the certificate's
/// and the catalog's validity; then read the catalog from the verified tree.
pub fn verify(xml: &str, cert_pem: &str, now: jiff::Timestamp) -> Result<Verified, CatalogError> {
    let bad = |m: &str| CatalogError::Invalid(m.to_string());
    let public = certificate_key(cert_pem, now)?;
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 1_000_000,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .map_err(|e| CatalogError::Invalid(format!("not well-formed XML without a DTD: {e}")))?;
    // One root element and nothing beside it (no comment can hide a second one).
    if doc.root().children().any(|c| !c.is_element()) {
        return Err(bad(
            "something beside the root element (a comment or processing instruction)",
        ));
    }
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(NS) || root.tag_name().name() != "EndpointCatalog" {
        return Err(bad(
            "the root element is not an EndpointCatalog in the catalog namespace",
        ));
    }
    let mut signature = None;
    for n in root.descendants().filter(|n| n.is_element() || n.is_pi()) {
        if n.is_pi() {
            return Err(bad("a processing instruction inside the catalog"));
        }
        if written_name(&n).contains(':') || n.attributes().any(|a| a.namespace().is_some()) {
            return Err(bad("prefixed names are not part of the signed profile"));
        }
        let in_signature = n
            .ancestors()
            .any(|a| a.tag_name().name() == "Signature" && a.tag_name().namespace() == Some(DSIG));
        let want = if in_signature { DSIG } else { NS };
        if n.tag_name().namespace() != Some(want) {
            return Err(bad("an element outside the catalog's namespace"));
        }
        if n.tag_name().name() == "Signature" && want == DSIG && n.parent() == Some(root) {
            if signature.replace(n).is_some() {
                return Err(bad("more than one Signature"));
            }
        } else if n.tag_name().name() == "Signature" {
            return Err(bad("a Signature that is not the root's enveloped one"));
        }
    }
    let signature = signature.ok_or_else(|| bad("no enveloped Signature"))?;
    let signed_info_node = child(signature, "SignedInfo").ok_or_else(|| bad("no SignedInfo"))?;
    let digest = child(signed_info_node, "Reference")
        .and_then(|r| child(r, "DigestValue"))
        .and_then(|d| d.text())
        .ok_or_else(|| bad("no DigestValue"))?
        .trim()
        .to_string();
    // SignedInfo canonical, compared with the only one lifeboat signs: the
    // algorithms, the transforms and the reference to the whole document.
    let mut si = String::new();
    exc_c14n(signed_info_node, None, &mut si);
    if si != signed_info(&digest, true) {
        return Err(bad(
            "unexpected SignedInfo (algorithms, transforms or reference)",
        ));
    }
    let mut content = String::new();
    exc_c14n(root, Some(signature.id()), &mut content);
    if B64.encode(Sha256::digest(content.as_bytes())) != digest {
        return Err(bad(
            "the content does not match its digest (edited after signing)",
        ));
    }
    let value: String = child(signature, "SignatureValue")
        .and_then(|v| v.text())
        .ok_or_else(|| bad("no SignatureValue"))?
        .split_whitespace()
        .collect();
    let sig = B64
        .decode(value)
        .map_err(|_| bad("SignatureValue is not base64"))?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(si.as_bytes(), &sig)
        .map_err(|_| bad("the signature does not verify with this certificate"))?;
    // Verified: read the content from this same tree.
    let valid_until = root.attribute("validUntil").unwrap_or("").to_string();
    if valid_until
        .parse::<jiff::Timestamp>()
        .map_or(true, |v| v < now)
    {
        return Err(CatalogError::Expired(valid_until));
    }
    let mut entries = Vec::new();
    for t in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Tenant")
    {
        let mut services = Vec::new();
        for s in t
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "Service")
        {
            let mut endpoints = Vec::new();
            for e in s
                .children()
                .filter(|c| c.is_element() && c.tag_name().name() == "Endpoint")
            {
                let role = match e.attribute("role") {
                    Some("primary") => "primary",
                    Some("fallback") => "fallback",
                    _ => return Err(bad("an endpoint role other than primary or fallback")),
                };
                endpoints.push(Endpoint {
                    role,
                    url: e.attribute("url").unwrap_or("").to_string(),
                    active: e.attribute("status") == Some("ACTIVE"),
                });
            }
            services.push(Service {
                name: s.attribute("name").unwrap_or("").to_string(),
                endpoints,
            });
        }
        entries.push(TenantEntry {
            id: t.attribute("id").unwrap_or("").to_string(),
            name: t.attribute("name").unwrap_or("").to_string(),
            services,
        });
    }
    let active = entries
        .iter()
        .filter(|t| {
            t.services
                .iter()
                .flat_map(|s| &s.endpoints)
                .any(|e| e.role == "fallback" && e.active)
        })
        .map(|t| t.id.clone())
        .collect();
    Ok(Verified {
        valid_until,
        issuer: root.attribute("issuer").unwrap_or("").to_string(),
        tenants: entries.len(),
        active,
        entries,
    })
}

/// The first child element named `name`.
fn child<'a, 'i>(parent: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    parent
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_escape_canonically_and_der_walks_lengths() {
        assert_eq!(attr("a&b<c\"d>e\n"), "a&amp;b&lt;c&quot;d>e&#xA;");
        let (tag, body, rest) = der(&[0x30, 0x81, 0x02, 1, 2, 9]).unwrap();
        assert_eq!((tag, body, rest), (0x30, &[1u8, 2][..], &[9u8][..]));
        assert!(der(&[0x30, 0x05, 1]).is_none());
    }
}
