//! The signed endpoint catalog (after the eHealth BCP model): per tenant its
//! services with the primary (hospital) and fallback (emergency) endpoint, each
//! ACTIVE or INACTIVE, and a cache validity, signed with an enveloped XML
//! Signature (RSA-SHA256, exclusive canonicalisation) that `xmlsec1 --verify`
//! accepts.
//!
//! lifeboat writes the document already in its exclusive-C14N form (no
//! self-closing tags, attributes in canonical order, canonical escaping), so the
//! digest is taken over the bytes as written without the Signature element, and
//! `verify` is strict: it accepts the serialisation lifeboat writes and refuses
//! anything else, re-formatted or tampered. RSA comes from `ring` (already the TLS
//! provider); the certificate is read with a minimal DER walk. Pure: no files, no
//! cloud; the command layer reads keys and writes the file.

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

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = s.find(open)? + open.len();
    let b = a + s[a..].find(close)?;
    Some(&s[a..b])
}

/// What a verified catalog says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub valid_until: String,
    pub tenants: usize,
    pub active: Vec<String>,
}

/// Check the enveloped signature with the certificate's key, and the validity.
pub fn verify(xml: &str, cert_pem: &str, now: jiff::Timestamp) -> Result<Verified, CatalogError> {
    let bad = |m: &str| CatalogError::Invalid(m.to_string());
    let cert = pem_blocks(cert_pem, "CERTIFICATE").ok_or_else(|| CatalogError::Key {
        what: "certificate".into(),
        reason: "no PEM CERTIFICATE block".into(),
    })?;
    let public = cert_public_key(&cert).ok_or_else(|| CatalogError::Key {
        what: "certificate".into(),
        reason: "no RSA public key in it".into(),
    })?;
    let start = xml
        .find("<EndpointCatalog ")
        .ok_or_else(|| bad("no EndpointCatalog element"))?;
    let end = xml
        .rfind("</EndpointCatalog>")
        .ok_or_else(|| bad("no end of EndpointCatalog"))?
        + "</EndpointCatalog>".len();
    let root = &xml[start..end];
    let sig_open = format!("<Signature xmlns=\"{DSIG}\">");
    let s0 = root
        .find(&sig_open)
        .ok_or_else(|| bad("no enveloped Signature"))?;
    let s1 = s0
        + root[s0..]
            .find("</Signature>")
            .ok_or_else(|| bad("unterminated Signature"))?
        + "</Signature>".len();
    let signature_el = &root[s0..s1];
    let content = format!("{}{}", &root[..s0], &root[s1..]);
    let digest = between(signature_el, "<DigestValue>", "</DigestValue>")
        .ok_or_else(|| bad("no DigestValue"))?;
    // The only algorithms accepted are the ones lifeboat signs with.
    let si_doc = between(signature_el, "<SignedInfo>", "</SignedInfo>")
        .ok_or_else(|| bad("no SignedInfo"))?;
    if format!("<SignedInfo>{si_doc}</SignedInfo>") != signed_info(digest, false) {
        return Err(bad(
            "unexpected SignedInfo (algorithms, transforms or reference)",
        ));
    }
    let actual = B64.encode(Sha256::digest(content.as_bytes()));
    if actual != digest {
        return Err(bad(
            "the content does not match its digest (edited after signing)",
        ));
    }
    let value: String = between(signature_el, "<SignatureValue>", "</SignatureValue>")
        .ok_or_else(|| bad("no SignatureValue"))?
        .split_whitespace()
        .collect();
    let sig = B64
        .decode(value)
        .map_err(|_| bad("SignatureValue is not base64"))?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(signed_info(digest, true).as_bytes(), &sig)
        .map_err(|_| bad("the signature does not verify with this certificate"))?;
    let valid_until = between(root, "validUntil=\"", "\"")
        .unwrap_or("")
        .to_string();
    if valid_until
        .parse::<jiff::Timestamp>()
        .map_or(true, |v| v < now)
    {
        return Err(CatalogError::Expired(valid_until));
    }
    let mut active = Vec::new();
    let mut tenants = 0;
    for t in content.split("<Tenant ").skip(1) {
        tenants += 1;
        let id = between(t, "id=\"", "\"").unwrap_or("?");
        if t.contains("role=\"fallback\" status=\"ACTIVE\"") {
            active.push(id.to_string());
        }
    }
    Ok(Verified {
        valid_until,
        tenants,
        active,
    })
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
