//! The `lifeboat/v1` document schemas: reads a parsed `platform.yaml` or
//! `tenants/<id>.yaml` into the typed model, reporting every problem it finds.
//!
//! Owns per-field rules (formats, ranges, enumerations). Rules that need more than
//! one file (overlaps, duplicates, name collisions) live in `crossfile`.

use super::read::{At, Obj, Reader};
use super::yaml::Node;
use crate::model::cidr::Ipv4Cidr;
use crate::model::{
    Access, Alerts, Citrix, Contact, Frontends, Gallery, Gateway, Hix, Hub, MaintenanceWindow,
    Platform, RestoreMode, Sql, Tenant, VmTier, Waiver, sizes,
};

pub const API_VERSION: &str = "lifeboat/v1";

/// EU member-state Azure regions (data residency).
pub const EU_REGIONS: &[&str] = &[
    "westeurope",
    "northeurope",
    "francecentral",
    "francesouth",
    "germanywestcentral",
    "germanynorth",
    "swedencentral",
    "swedensouth",
    "italynorth",
    "polandcentral",
    "spaincentral",
    "austriaeast",
    "belgiumcentral",
    "denmarkeast",
];

/// Real Azure regions outside the EU, named so the error can say why they are refused.
const NON_EU_REGIONS: &[&str] = &[
    "uksouth",
    "ukwest",
    "switzerlandnorth",
    "switzerlandwest",
    "norwayeast",
    "norwaywest",
    "eastus",
    "eastus2",
    "westus",
    "westus2",
    "westus3",
    "centralus",
    "northcentralus",
    "southcentralus",
    "canadacentral",
    "brazilsouth",
    "australiaeast",
    "japaneast",
    "southeastasia",
    "eastasia",
    "centralindia",
    "uaenorth",
    "southafricanorth",
    "israelcentral",
    "qatarcentral",
];

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Top-level fields and the `apiVersion`/`kind` envelope.
fn envelope<'n>(
    r: &mut Reader<'_>,
    root: &'n Node,
    kind: &str,
) -> Option<(Obj<'n>, Option<Obj<'n>>)> {
    let top = r.object(root, "", &["apiVersion", "kind", "metadata", "spec"])?;
    if let Some(v) = r.string(Some(&top), "apiVersion", true)
        && v.value != API_VERSION
    {
        r.diags.push(
            v.origin,
            format!(
                "unsupported apiVersion `{}`, expected `{API_VERSION}`",
                v.value
            ),
        );
    }
    if let Some(k) = r.string(Some(&top), "kind", true)
        && k.value != kind
    {
        r.diags.push(
            k.origin,
            format!("expected kind `{kind}` in this file, found `{}`", k.value),
        );
    }
    let spec = r.section(Some(&top), "spec", true, spec_fields(kind));
    Some((top, spec))
}

fn spec_fields(kind: &str) -> &'static [&'static str] {
    if kind == "Platform" {
        &[
            "subscriptionId",
            "region",
            "secondaryRegion",
            "prefix",
            "hub",
            "domainControllers",
            "citrix",
            "gallery",
            "logRetentionDays",
            "state",
            "alerts",
            "exceptions",
        ]
    } else {
        &[
            "addressSpace",
            "hix",
            "frontends",
            "sql",
            "access",
            "maintenanceWindow",
            "costCenter",
            "contacts",
            "exceptions",
        ]
    }
}

pub fn check_region(name: &str) -> Result<(), String> {
    if EU_REGIONS.contains(&name) {
        return Ok(());
    }
    if NON_EU_REGIONS.contains(&name) {
        return Err(format!(
            "`{name}` is outside the EU; patient data must stay in EU regions ({})",
            EU_REGIONS.join(", ")
        ));
    }
    let all = EU_REGIONS.iter().chain(NON_EU_REGIONS).copied();
    match crate::diag::did_you_mean(name, all) {
        Some(hint) => Err(format!(
            "unknown Azure region `{name}`, did you mean `{hint}`?"
        )),
        None => Err(format!(
            "unknown Azure region `{name}`; use one of: {}",
            EU_REGIONS.join(", ")
        )),
    }
}

fn check_guid(s: &str) -> Result<(), String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a subscription GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        ))
    }
}

fn check_prefix(s: &str) -> Result<(), String> {
    if (2..=4).contains(&s.len()) && s.chars().all(|c| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "`{s}` must be 2-4 lowercase letters (^[a-z]{{2,4}}$)"
        ))
    }
}

fn check_sha256(s: &str) -> Result<(), String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a SHA-256 checksum (64 hexadecimal characters, as `Get-FileHash -Algorithm SHA256` prints)"
        ))
    }
}

fn check_tenant_id(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if first_ok && rest_ok && (2..=8).contains(&s.len()) {
        Ok(())
    } else {
        Err(format!(
            "`{s}` must be 2-8 lowercase letters or digits starting with a letter (^[a-z][a-z0-9]{{1,7}}$)"
        ))
    }
}

fn check_gallery_name(s: &str) -> Result<(), String> {
    let ok = (1..=80).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with(['.', '_'])
        && !s.ends_with(['.', '_']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid Compute Gallery name (1-80 letters, digits, `_` or `.`, not at the ends)"
        ))
    }
}

/// A private CIDR block whose prefix length is in `min..=max`.
fn parse_cidr(s: &str, min: u8, max: u8) -> Result<Ipv4Cidr, String> {
    let c: Ipv4Cidr = s
        .parse()
        .map_err(|e: crate::model::cidr::CidrError| e.to_string())?;
    if !c.is_private() {
        return Err(format!(
            "`{s}` is not private (RFC 1918: 10/8, 172.16/12, 192.168/16)"
        ));
    }
    if !(min..=max).contains(&c.prefix()) {
        return Err(format!("`{s}` must be between /{min} and /{max}"));
    }
    Ok(c)
}

/// `30m`, `1h30m`, `45s`, `0s`: at most 48 hours.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration like 30m, 1h30m or 45s");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(bad()),
        };
        if digits.is_empty() || digits.len() > 6 || rank <= last_unit {
            return Err(bad());
        }
        total += digits.parse::<u64>().map_err(|_| bad())? * factor;
        digits.clear();
        last_unit = rank;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    if total > 48 * 3600 {
        return Err(format!("`{s}` is longer than the allowed 48h"));
    }
    Ok(total)
}

fn check_email(s: &str) -> Result<(), String> {
    let bad = || Err(format!("`{s}` is not an e-mail address"));
    let Some((local, domain)) = s.split_once('@') else {
        return bad();
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    if local_ok && domain_ok { Ok(()) } else { bad() }
}

fn check_phone(s: &str) -> Result<(), String> {
    let digits = s.chars().filter(|c| c.is_ascii_digit()).count();
    let ok = s.starts_with('+')
        && s[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && (8..=15).contains(&digits);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an international phone number like \"+31 24 365 6565\""
        ))
    }
}

fn check_time(s: &str) -> Result<(), String> {
    let ok = s.len() == 5
        && s.as_bytes()[2] == b':'
        && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u8>().is_ok_and(|m| m < 60)
        && s.chars().filter(|c| c.is_ascii_digit()).count() == 4;
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a 24-hour time like \"22:00\""))
    }
}

fn check_timezone(s: &str) -> Result<(), String> {
    if s.contains('/') && jiff::tz::TimeZone::get(s).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an IANA time zone like Europe/Amsterdam"
        ))
    }
}

fn check_tag_value(s: &str) -> Result<(), String> {
    if s.len() > 256 || s.contains(['<', '>', '%', '&', '\\', '?', '/']) {
        Err(format!(
            "`{s}` cannot be an Azure tag value (at most 256 characters, none of < > % & \\ ? /)"
        ))
    } else {
        Ok(())
    }
}

fn check_rule_id(s: &str) -> Result<(), String> {
    let ok = s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a policy rule id like CIS-7.1 or LB-REDUNDANCY-1"
        ))
    }
}

fn count_and_size(
    r: &mut Reader<'_>,
    sec: Option<&Obj<'_>>,
    max: i64,
) -> Option<(At<u32>, At<String>)> {
    let count = r.int(sec, "count", true, 1, max);
    let size = r.string_with(sec, "size", true, sizes::check);
    let count = count?;
    Some((
        At {
            value: count.value as u32,
            origin: count.origin,
        },
        size?,
    ))
}

fn tier_section(r: &mut Reader<'_>, parent: Option<&Obj<'_>>, name: &str) -> Option<VmTier> {
    let sec = r.section(parent, name, true, &["count", "size"]);
    let (count, size) = count_and_size(r, sec.as_ref(), 9)?;
    Some(VmTier { count, size })
}

fn u32_at(a: At<i64>) -> At<u32> {
    At {
        value: a.value as u32,
        origin: a.origin,
    }
}

/// Read `platform.yaml`. `None` when it has errors (they are in `r.diags`).
pub fn platform(r: &mut Reader<'_>, root: &Node) -> Option<Platform> {
    let (top, spec) = envelope(r, root, "Platform")?;
    let meta = r.section(Some(&top), "metadata", true, &["name"]);
    let name = r.string(meta.as_ref(), "name", true);
    let spec = spec.as_ref();
    let subscription_id = r.string_with(spec, "subscriptionId", true, check_guid);
    let region = r.string_with(spec, "region", true, check_region);
    let secondary = r.string_with(spec, "secondaryRegion", false, check_region);
    if let (Some(p), Some(s)) = (&region, &secondary)
        && p.value == s.value
    {
        r.diags.push(
            s.origin.clone(),
            format!("must differ from region `{}`", p.value),
        );
    }
    let prefix = r.string_with(spec, "prefix", true, check_prefix);
    let hub = r.section(spec, "hub", true, &["addressSpace"]);
    let hub_space = r.parsed(hub.as_ref(), "addressSpace", true, |s| {
        parse_cidr(s, 16, 24)
    });
    let dcs = tier_section(r, spec, "domainControllers");
    let citrix = r.section(
        spec,
        "citrix",
        true,
        &["cloudConnectors", "storefront", "gateway"],
    );
    let cc = tier_section(r, citrix.as_ref(), "cloudConnectors");
    let sf = tier_section(r, citrix.as_ref(), "storefront");
    let gw_sec = r.section(citrix.as_ref(), "gateway", true, &["count", "size", "mfa"]);
    let gw = count_and_size(r, gw_sec.as_ref(), 9);
    let mfa = r.field(gw_sec.as_ref(), "mfa", true).and_then(|f| match &f.node.value {
        super::yaml::Value::Str(s) if s == "required" => Some(s.clone()),
        other => {
            let shown = match other {
                super::yaml::Value::Str(s) => format!("`{s}`"),
                v => v.kind().to_string(),
            };
            r.error(
                f.node,
                &f.path,
                format!("must be `required` (found {shown}): the gateway is the only internet entry and always needs two-factor authentication"),
            );
            None
        }
    });
    let gallery = r.section(
        spec,
        "gallery",
        true,
        &["name", "hardeningScriptSha256", "imageLifetimeDays"],
    );
    let gallery_name = r.string_with(gallery.as_ref(), "name", true, check_gallery_name);
    let hardening_sha256 = r.string_with(
        gallery.as_ref(),
        "hardeningScriptSha256",
        true,
        check_sha256,
    );
    let lifetime = r.int(gallery.as_ref(), "imageLifetimeDays", false, 30, 1825);
    let retention = r.int(spec, "logRetentionDays", false, 30, 730);
    let state = r.string_with(spec, "state", false, |s| {
        crate::location::Location::parse(s).map(|_| ())
    });
    let exceptions = waivers(r, spec);
    let alerts = alerts(r, spec);
    let (gw_count, gw_size) = gw?;
    Some(Platform {
        file: r.file.clone(),
        name: name?.value,
        subscription_id: subscription_id?.value,
        region: region?,
        secondary_region: secondary,
        prefix: prefix?,
        hub: Hub {
            address_space: hub_space?,
        },
        domain_controllers: dcs?,
        citrix: Citrix {
            cloud_connectors: cc?,
            storefront: sf?,
            gateway: Gateway {
                count: gw_count,
                size: gw_size,
                mfa: mfa?,
            },
        },
        gallery: Gallery {
            name: gallery_name?,
            hardening_script_sha256: hardening_sha256?,
            image_lifetime_days: lifetime.map_or(365, |v| v.value as u32),
        },
        log_retention_days: retention.map_or(90, |r| r.value as u32),
        state,
        alerts,
        exceptions,
    })
}

/// `alerts`: who is told, 24x7 (e-mail addresses and/or an https webhook).
fn alerts<'n>(r: &mut Reader<'_>, spec: Option<&Obj<'n>>) -> Option<At<Alerts>> {
    let f = r.field(spec, "alerts", false)?;
    let at = r.origin(f.node, &f.path);
    let a = r.object(f.node, &f.path, &["email", "webhook"])?;
    let mut email = Vec::new();
    for item in r.list(Some(&a), "email", false).unwrap_or_default() {
        match &item.node.value {
            super::yaml::Value::Str(s) => match check_email(s) {
                Ok(()) => email.push(s.clone()),
                Err(msg) => r.error(item.node, &item.path, msg),
            },
            other => r.error(
                item.node,
                &item.path,
                format!("expected an e-mail address, found {}", other.kind()),
            ),
        }
    }
    let webhook = r.string_with(Some(&a), "webhook", false, |s| {
        if s.starts_with("https://")
            && s.len() > "https://".len()
            && !s.chars().any(char::is_whitespace)
        {
            Ok(())
        } else {
            Err(format!(
                "`{s}` is not an https:// URL (alerts carry hospital names; never plain http)"
            ))
        }
    });
    if email.is_empty() && webhook.is_none() {
        r.error(
            f.node,
            &f.path,
            "name at least one receiver: email: [...] or webhook: https://...",
        );
        return None;
    }
    Some(At {
        value: Alerts {
            email,
            webhook: webhook.map(|w| w.value),
        },
        origin: at,
    })
}

/// `exceptions`: policy waivers, each with a rule id, a reason and an expiry date.
fn waivers<'n>(r: &mut Reader<'_>, spec: Option<&Obj<'n>>) -> Vec<Waiver> {
    let mut exceptions = Vec::new();
    for item in r.list(spec, "exceptions", false).unwrap_or_default() {
        let w = r.object(item.node, &item.path, &["rule", "reason", "expires"]);
        let rule = r.string_with(w.as_ref(), "rule", true, check_rule_id);
        let reason = r.string(w.as_ref(), "reason", true);
        let expires = r.parsed(w.as_ref(), "expires", true, |s| {
            s.parse::<jiff::civil::Date>()
                .map_err(|_| format!("`{s}` is not a date like 2027-03-01"))
        });
        if let (Some(rule), Some(reason), Some(expires)) = (rule, reason, expires) {
            exceptions.push(Waiver {
                rule,
                reason: reason.value,
                expires,
            });
        }
    }
    exceptions
}

/// `access.roster`: the HR export's path (read by `manifest::load`), the include
/// rules and the manual entries.
fn roster<'n>(r: &mut Reader<'_>, access: Option<&Obj<'n>>) -> Option<crate::roster::Roster> {
    let ro = r.section(access, "roster", false, &["hr", "include", "manual"])?;
    let hr = r.string_with(Some(&ro), "hr", true, |s| {
        let p = std::path::Path::new(s);
        if p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            Err(format!(
                "`{s}` must be a path inside the project, like hr/cwz.csv (no leading /, no ..)"
            ))
        } else {
            Ok(())
        }
    });
    let mut include = Vec::new();
    let rules = r.list(Some(&ro), "include", true).unwrap_or_default();
    if rules.is_empty()
        && let Some(f) = r.field(Some(&ro), "include", false)
    {
        r.error(f.node, &f.path, "at least one include rule is required");
    }
    for item in rules {
        let Some(o) = r.object(item.node, &item.path, &["department", "function"]) else {
            continue;
        };
        let department = words(r, &o, "department");
        let function = words(r, &o, "function");
        if department.is_empty() && function.is_empty() {
            r.error(
                item.node,
                &item.path,
                "a rule names a department list, a function list or both (an empty rule would admit everyone)",
            );
            continue;
        }
        include.push(crate::roster::IncludeRule {
            department,
            function,
        });
    }
    let mut manual = Vec::new();
    for item in r.list(Some(&ro), "manual", false).unwrap_or_default() {
        let m = r.object(item.node, &item.path, &["upn", "reason", "expires"]);
        let upn = r.string_with(m.as_ref(), "upn", true, check_email);
        let reason = r.string(m.as_ref(), "reason", true);
        let expires = r.parsed(m.as_ref(), "expires", true, |s| {
            s.parse::<jiff::civil::Date>()
                .map_err(|_| format!("`{s}` is not a date like 2027-03-01"))
        });
        if let (Some(upn), Some(reason), Some(expires)) = (upn, reason, expires) {
            manual.push(crate::roster::ManualEntry {
                upn: upn.value,
                reason: reason.value,
                expires: expires.value,
            });
        }
    }
    Some(crate::roster::Roster {
        hr: hr?,
        hr_rows: Vec::new(),
        include,
        manual,
    })
}

/// A list of non-empty strings (`department: [SEH, IC]`); an absent field is empty.
fn words<'n>(r: &mut Reader<'_>, o: &Obj<'n>, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in r.list(Some(o), name, false).unwrap_or_default() {
        match &item.node.value {
            super::yaml::Value::Str(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
            other => r.error(
                item.node,
                &item.path,
                format!("expected a name, found {}", other.kind()),
            ),
        }
    }
    out
}

/// Read one `tenants/<id>.yaml`. `None` when it has errors.
pub fn tenant(r: &mut Reader<'_>, root: &Node) -> Option<Tenant> {
    let (top, spec) = envelope(r, root, "Tenant")?;
    let meta = r.section(Some(&top), "metadata", true, &["id", "name"]);
    let id = r.string_with(meta.as_ref(), "id", true, check_tenant_id);
    let name = r.string(meta.as_ref(), "name", true);
    let spec = spec.as_ref();
    let address_space = r.parsed(spec, "addressSpace", true, |s| parse_cidr(s, 20, 26));

    let hix = r.section(
        spec,
        "hix",
        true,
        &["version", "hotfix", "clientSha256", "hotfixSha256"],
    );
    let version = r.field(hix.as_ref(), "version", true).and_then(|f| match &f.node.value {
        super::yaml::Value::Str(s) => {
            let parts: Vec<Option<u32>> = s.split('.').map(|p| p.parse::<u32>().ok().filter(|v| *v <= i32::MAX as u32)).collect();
            match parts.as_slice() {
                [Some(a), Some(b)] if !s.contains('+') => Some((r.at(f.node, &f.path, s.clone()), *a, *b)),
                _ => {
                    r.error(f.node, &f.path, format!("`{s}` is not a HiX version like \"6.3\" (major.minor)"));
                    None
                }
            }
        }
        super::yaml::Value::Float(v) => {
            r.error(f.node, &f.path, format!("write the version as a quoted string (\"{v}\"): an unquoted number loses trailing zeros"));
            None
        }
        other => {
            r.error(f.node, &f.path, format!("expected a string like \"6.3\", found {}", other.kind()));
            None
        }
    });
    let hotfix = r
        .int(hix.as_ref(), "hotfix", true, 0, i64::from(i32::MAX))
        .map(u32_at);
    // Image Builder checks the installers against these (File customizer
    // sha256Checksum); they are reviewed with the manifest, not fetched.
    let client_sha256 = r.string_with(hix.as_ref(), "clientSha256", true, check_sha256);
    let hotfix_sha256 = r.string_with(hix.as_ref(), "hotfixSha256", true, check_sha256);

    let fe = r.section(spec, "frontends", true, &["count", "size"]);
    let frontends = count_and_size(r, fe.as_ref(), 250);

    let sql = r.section(
        spec,
        "sql",
        true,
        &[
            "size",
            "dataDiskGb",
            "restoreMode",
            "restoreDelay",
            "rpoTargetMinutes",
        ],
    );
    let sql_size = r.string_with(sql.as_ref(), "size", true, sizes::check);
    let disk = r
        .int(sql.as_ref(), "dataDiskGb", true, 32, 32767)
        .map(u32_at);
    let mode = r.choice(
        sql.as_ref(),
        "restoreMode",
        true,
        &["norecovery", "standby"],
    );
    let delay = r.parsed(sql.as_ref(), "restoreDelay", true, parse_duration);
    let rpo = r.int(sql.as_ref(), "rpoTargetMinutes", true, 1, 1440);

    let access = r.section(spec, "access", false, &["maxUsers", "roster"]);
    let max_users = r.int(access.as_ref(), "maxUsers", false, 1, 250);
    let roster = roster(r, access.as_ref());
    if let (Some(m), Some((count, _))) = (&max_users, &frontends)
        && m.value > i64::from(count.value)
    {
        r.diags.push(
            m.origin.clone(),
            format!(
                "{} emergency users need {} front-end VMs, but frontends.count is {}",
                m.value, m.value, count.value
            ),
        );
    }

    let mw = r.section(
        spec,
        "maintenanceWindow",
        true,
        &["day", "start", "hours", "timezone"],
    );
    let day = r.choice(mw.as_ref(), "day", true, WEEKDAYS);
    let start = r.string_with(mw.as_ref(), "start", true, check_time);
    let hours = r.int(mw.as_ref(), "hours", true, 1, 24);
    let tz = r.string_with(mw.as_ref(), "timezone", true, check_timezone);

    let cost_center = r.string_with(spec, "costCenter", true, check_tag_value);

    let mut contacts = Vec::new();
    let contact_list = r.list(spec, "contacts", true);
    if let Some(list) = &contact_list {
        if list.is_empty() {
            let f = r.field(spec, "contacts", true);
            if let Some(f) = f {
                r.error(f.node, &f.path, "at least one DAP contact is required");
            }
        }
        for item in list {
            let c = r.object(item.node, &item.path, &["name", "email", "phone"]);
            let cname = r.string(c.as_ref(), "name", true);
            let email = r.string_with(c.as_ref(), "email", true, check_email);
            let phone = r.string_with(c.as_ref(), "phone", false, check_phone);
            if let (Some(n), Some(e)) = (cname, email) {
                contacts.push(Contact {
                    name: n.value,
                    email: e.value,
                    phone: phone.map(|p| p.value),
                });
            }
        }
    }

    let exceptions = waivers(r, spec);

    let (fe_count, fe_size) = frontends?;
    let (version, major, minor) = version?;
    let max_users = max_users.map_or(fe_count.value, |m| m.value as u32);
    Some(Tenant {
        file: r.file.clone(),
        id: id?,
        name: name?.value,
        address_space: address_space?,
        hix: Hix {
            version,
            major,
            minor,
            hotfix: hotfix?,
            client_sha256: client_sha256?,
            hotfix_sha256: hotfix_sha256?,
        },
        frontends: Frontends {
            count: fe_count,
            size: fe_size,
        },
        sql: Sql {
            size: sql_size?,
            data_disk_gb: disk?,
            restore_mode: if mode?.value == "standby" {
                RestoreMode::Standby
            } else {
                RestoreMode::Norecovery
            },
            restore_delay_seconds: delay?.value,
            rpo_target_minutes: rpo?.value as u32,
        },
        access: Access { max_users, roster },
        maintenance_window: MaintenanceWindow {
            day: day?.value,
            start: start?.value,
            hours: hours?.value as u32,
            timezone: tz?.value,
        },
        cost_center: cost_center?,
        contacts,
        exceptions,
    })
    .filter(|_| contact_list.is_some_and(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("48h"), Ok(172800));
        assert!(parse_duration("49h").is_err());
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1d").is_err());
    }

    #[test]
    fn formats() {
        assert!(check_email("j.devries@example.org").is_ok());
        assert!(check_email("j.devries@example").is_err());
        assert!(check_email("a@@b.nl").is_err());
        assert!(check_email("a b@c.nl").is_err());
        assert!(check_phone("+31 24 365 6565").is_ok());
        assert!(check_phone("024 365 6565").is_err());
        assert!(check_time("22:00").is_ok());
        assert!(check_time("24:00").is_err());
        assert!(check_time("9:00").is_err());
        assert!(check_timezone("Europe/Amsterdam").is_ok());
        assert!(check_timezone("Europe/Amsterdan").is_err());
        assert!(check_timezone("UTC").is_err());
        assert!(check_guid("00000000-0000-0000-0000-000000000000").is_ok());
        assert!(check_guid("0000-0000").is_err());
        assert!(check_region("westeurope").is_ok());
        assert!(
            check_region("uksouth")
                .unwrap_err()
                .contains("outside the EU")
        );
        assert!(
            check_region("westeuroep")
                .unwrap_err()
                .contains("did you mean `westeurope`")
        );
        assert!(check_tenant_id("cwz").is_ok());
        assert!(check_tenant_id("1cwz").is_err());
        assert!(check_tenant_id("averylongid").is_err());
        assert!(parse_cidr("10.10.0.0/24", 20, 26).is_ok());
        assert!(parse_cidr("10.10.0.0/27", 20, 26).is_err());
        assert!(
            parse_cidr("8.8.8.0/24", 20, 26)
                .unwrap_err()
                .contains("RFC 1918")
        );
    }
}
