//! Stage 1: read `platform.yaml` and `tenants/*.yaml`, validate them, and build the
//! typed [`Project`](crate::model::Project).
//!
//! Validation is all-or-nothing: either every file is valid and a `Project` comes
//! back, or every error of the run is returned together, sorted by file and line.
//! This stage never touches the network and never writes anything.

pub mod documents;
pub mod read;
pub mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostics, Origin};
use crate::id::hex;
use crate::model::naming::{self, DerivedName, PlatformNames, TenantNames};
use crate::model::{Platform, Project, SourceFile, Tenant};
use read::Reader;

/// Manifests larger than this are refused before parsing.
const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

pub const PLATFORM_FILE: &str = "platform.yaml";
pub const TENANTS_DIR: &str = "tenants";

/// Read and validate the project in `root`.
pub fn load(root: &Path) -> Result<Project, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut sources = Vec::new();

    let platform_path = root.join(PLATFORM_FILE);
    let platform = match read_source(root, &platform_path, &mut diags, &mut sources) {
        Some(node) => {
            let mut r = Reader {
                file: Arc::new(platform_path.clone()),
                diags: &mut diags,
            };
            documents::platform(&mut r, &node)
        }
        None => None,
    };

    let mut tenants = Vec::new();
    let files = tenant_files(root, &mut diags);
    // Reading, parsing and reading each tenant's HR export are most of
    // loading a fleet (200 manifests): on all cores, each file with its own
    // diagnostics, then taken in file order.
    let read = crate::par::map_in_order(&files, |_, path| {
        let (mut d, mut src) = (Diagnostics::default(), Vec::new());
        let tenant = read_source(root, path, &mut d, &mut src).and_then(|node| {
            let mut r = Reader {
                file: Arc::new(path.clone()),
                diags: &mut d,
            };
            let mut t = documents::tenant(&mut r, &node)?;
            if let Some(roster) = t.access.roster.as_mut() {
                read_hr(root, roster, &mut d);
            }
            Some(t)
        });
        (tenant, d, src)
    });
    for (path, (tenant, d, src)) in files.into_iter().zip(read) {
        diags.0.extend(d.0);
        sources.extend(src);
        let Some(t) = tenant else {
            continue;
        };
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != t.id.value {
            diags.push(
                t.id.origin.clone(),
                format!(
                    "tenant id `{}` must match its file name (tenants/{}.yaml)",
                    t.id.value, t.id.value
                ),
            );
        }
        tenants.push(t);
    }
    if let Some(p) = &platform {
        cross_file(p, &tenants, &mut diags);
    }
    if !diags.is_empty() {
        diags.sort();
        return Err(diags);
    }
    let platform = platform.expect("no diagnostics implies a platform");
    tenants.sort_by(|a, b| a.id.value.cmp(&b.id.value));
    Ok(Project {
        root: root.to_path_buf(),
        platform,
        tenants,
        sources,
    })
}

/// `tenants/*.yaml` (and `.yml`), sorted for stable output.
fn tenant_files(root: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let dir = root.join(TENANTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            diags.push(Origin::file(&dir), format!("cannot read directory: {e}"));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    files
}

/// Why a manifest path is refused when it is a symbolic link that leads out of
/// the project: its content would be read (and echoed in diagnostics) from
/// anywhere on the agent. Links inside the project are fine.
fn outside(root: &Path, path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let (Ok(root), Ok(target)) = (root.canonicalize(), path.canonicalize()) else {
        return Some("is a symbolic link that cannot be resolved".into());
    };
    if target.starts_with(&root) {
        None
    } else {
        Some(format!(
            "is a symbolic link to {}, outside the project: manifests must live in the project (copy the file in)",
            target.display()
        ))
    }
}

/// An HR export is bounded like a manifest, with room for a large hospital.
const MAX_HR_BYTES: u64 = 16 * 1024 * 1024;

/// Read a roster's HR export into its rows; every failure is a diagnostic at the
/// manifest's `hr` field or at the CSV's own line and column.
fn read_hr(root: &Path, roster: &mut crate::roster::Roster, diags: &mut Diagnostics) {
    let path = root.join(&roster.hr.value);
    let origin = roster.hr.origin.clone();
    if let Some(reason) = outside(root, &path) {
        diags.push(origin, format!("{}: {reason}", path.display()));
        return;
    }
    let text = match std::fs::metadata(&path) {
        Ok(m) if !m.is_file() => Err("is not a file".to_string()),
        Ok(m) if m.len() > MAX_HR_BYTES => Err(format!(
            "is {} bytes; an HR export may be at most {MAX_HR_BYTES}",
            m.len()
        )),
        Ok(_) => std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                String::from_utf8(b).map_err(|e| {
                    format!(
                        "is not UTF-8 (byte {}): export it as UTF-8",
                        e.utf8_error().valid_up_to()
                    )
                })
            }),
        Err(e) => Err(format!("cannot be read: {e}")),
    };
    match text {
        Ok(text) => match crate::roster::parse_hr(&Arc::new(path), &text) {
            Ok(rows) => roster.hr_rows = rows,
            Err(d) => diags.0.extend(d.0),
        },
        Err(why) => diags.push(origin, format!("the HR export {} {why}", path.display())),
    }
}

/// Read, check and parse one file; every failure becomes a diagnostic.
fn read_source(
    root: &Path,
    path: &Path,
    diags: &mut Diagnostics,
    sources: &mut Vec<SourceFile>,
) -> Option<yaml::Node> {
    if let Some(reason) = outside(root, path) {
        diags.push(Origin::file(path), reason);
        return None;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            diags.push(
                Origin::file(path),
                format!("file not found: a lifeboat project needs {PLATFORM_FILE} at its root (use -C DIR to point at one)"),
            );
            return None;
        }
        Err(e) => {
            diags.push(Origin::file(path), format!("cannot read file: {e}"));
            return None;
        }
    };
    sources.push(SourceFile {
        path: path.display().to_string(),
        sha256: hex(&Sha256::digest(&bytes)),
    });
    if bytes.len() > MAX_MANIFEST_BYTES {
        diags.push(
            Origin::file(path),
            format!(
                "file is {} bytes; manifests are limited to 1 MiB",
                bytes.len()
            ),
        );
        return None;
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() as u32 + 1;
            let col = good.iter().rev().take_while(|b| **b != b'\n').count() as u32 + 1;
            let mut o = Origin::file(path);
            o.line = line;
            o.column = col;
            diags.push(
                o,
                format!(
                    "file is not UTF-8 (invalid byte 0x{:02x})",
                    bytes[e.valid_up_to()]
                ),
            );
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        diags.push(
            Origin::file(path),
            "file is empty; expected a lifeboat/v1 manifest",
        );
        return None;
    }
    match yaml::parse(text) {
        Ok(node) => Some(node),
        Err(e) => {
            let mut o = Origin::file(path);
            if e.pos.line > 0 {
                o.line = e.pos.line;
                o.column = e.pos.column;
            }
            diags.push(o, format!("invalid YAML: {}", e.message));
            None
        }
    }
}

/// Rules that need more than one file: unique ids, disjoint address spaces, and
/// derived Azure names that are valid and do not collide.
fn cross_file(p: &Platform, tenants: &[Tenant], diags: &mut Diagnostics) {
    let mut first_by_id: HashMap<&str, &Tenant> = HashMap::new();
    let mut duplicates = std::collections::HashSet::new();
    for t in tenants {
        if let Some(prev) = first_by_id.get(t.id.value.as_str()) {
            duplicates.insert(std::sync::Arc::as_ptr(&t.file));
            diags.push(
                t.id.origin.clone(),
                format!(
                    "duplicate tenant id `{}` (also in {})",
                    t.id.value,
                    prev.file.display()
                ),
            );
        } else {
            first_by_id.insert(&t.id.value, t);
        }
    }

    // Address spaces: sort by start, compare each with the running widest block.
    let hub = &p.hub.address_space;
    let mut blocks: Vec<(&read::At<crate::model::cidr::Ipv4Cidr>, Option<&Tenant>)> = tenants
        .iter()
        .map(|t| (&t.address_space, Some(t)))
        .collect();
    blocks.push((hub, None));
    blocks.sort_by_key(|(b, _)| (b.value.first(), b.value.last()));
    let mut widest: Option<usize> = None;
    for i in 0..blocks.len() {
        if let Some(w) = widest {
            let (prev, prev_t) = blocks[w];
            let (cur, cur_t) = blocks[i];
            if prev.value.overlaps(&cur.value) {
                let name = |t: Option<&Tenant>| match t {
                    Some(t) => format!("tenant `{}` ({})", t.id.value, t.file.display()),
                    None => format!("the hub ({})", p.file.display()),
                };
                // Report on the tenant side (the hub is shared and rarely the one to
                // change); between two tenants, on both, each naming the other.
                let mut report = |at: &read::At<crate::model::cidr::Ipv4Cidr>,
                                  other_block: &read::At<crate::model::cidr::Ipv4Cidr>,
                                  other| {
                    diags.push(
                        at.origin.clone(),
                        format!(
                            "{} overlaps {} of {}",
                            at.value,
                            other_block.value,
                            name(other)
                        ),
                    );
                };
                // A copied manifest that kept the original's id overlaps it too:
                // blame the copy only (the original is not the one to change).
                let same_id =
                    matches!((prev_t, cur_t), (Some(a), Some(b)) if a.id.value == b.id.value);
                let is_copy = |t: Option<&Tenant>| {
                    t.is_some_and(|t| duplicates.contains(&std::sync::Arc::as_ptr(&t.file)))
                };
                if cur_t.is_some() && (!same_id || is_copy(cur_t)) {
                    report(cur, prev, prev_t);
                }
                if prev_t.is_some() && (!same_id || is_copy(prev_t)) {
                    report(prev, cur, cur_t);
                }
            }
            if blocks[i].0.value.last() > prev.value.last() {
                widest = Some(i);
            }
        } else {
            widest = Some(i);
        }
    }

    for t in tenants {
        let net = naming::TenantNet::derive(t);
        if u64::from(t.frontends.count.value) > net.frontend.azure_usable() {
            diags.push(
                t.frontends.count.origin.clone(),
                format!(
                    "{} front-ends do not fit in the front-end subnet {} ({} usable addresses); use a larger addressSpace",
                    t.frontends.count.value,
                    net.frontend,
                    net.frontend.azure_usable()
                ),
            );
        }
    }

    let pnames = PlatformNames::derive(p);
    let mut derived: Vec<DerivedName> = naming::platform_names_to_check(p, &pnames);
    // A duplicate id already has its error; its names would only repeat it.
    for t in tenants
        .iter()
        .filter(|t| !duplicates.contains(&std::sync::Arc::as_ptr(&t.file)))
    {
        derived.extend(naming::tenant_names_to_check(t, &TenantNames::derive(p, t)));
    }
    let mut seen: HashMap<(&str, String), &DerivedName> = HashMap::new();
    for d in &derived {
        if let Err(reason) = d.rule.check(&d.name) {
            diags.push(d.origin.clone(), reason);
        }
        // Image versions live under each tenant's own image definition.
        if d.scope == "image-version" {
            continue;
        }
        let key = (d.scope, d.name.to_ascii_lowercase());
        match seen.get(&key) {
            Some(prev) if prev.origin != d.origin => diags.push(
                d.origin.clone(),
                format!(
                    "derived name `{}` collides with the one derived from {} in {}",
                    d.name,
                    prev.origin.field,
                    prev.origin.file.display()
                ),
            ),
            Some(_) => {}
            None => {
                seen.insert(key, d);
            }
        }
    }
}
