//! The typed, validated project: one [`Platform`] and its [`Tenant`]s, plus the
//! Azure names and address plan derived from them.
//!
//! Everything here is already valid (the `manifest` stage only builds a `Project`
//! when validation found no error). This module never reads files and never talks
//! to a cloud.

pub mod cidr;
pub mod naming;
pub mod sizes;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

pub use crate::diag::At;
use cidr::Ipv4Cidr;

/// The whole validated project.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    #[serde(skip)]
    pub root: PathBuf,
    pub platform: Platform,
    /// Sorted by tenant id.
    pub tenants: Vec<Tenant>,
    /// Every manifest file read, with its SHA-256, so a saved plan can tell whether
    /// the inputs it was computed from changed.
    #[serde(skip)]
    pub sources: Vec<SourceFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceFile {
    pub path: String,
    pub sha256: String,
}

impl Project {
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id.value == id)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    #[serde(skip)]
    pub file: Arc<PathBuf>,
    pub name: String,
    pub subscription_id: String,
    pub region: At<String>,
    pub secondary_region: Option<At<String>>,
    pub prefix: At<String>,
    pub hub: Hub,
    pub domain_controllers: VmTier,
    pub citrix: Citrix,
    pub gallery: Gallery,
    pub log_retention_days: u32,
    /// Where pipelines keep locks, journal, audit log and plans
    /// (`azblob://ACCOUNT/CONTAINER`); `--state` overrides it.
    pub state: Option<At<String>>,
    /// Waivers for shared-layer findings.
    pub exceptions: Vec<Waiver>,
    /// Who is told when log shipping stops, an RPO goes over target or a SQL VM
    /// is unavailable (an action group and scheduled query rules).
    pub alerts: Option<At<Alerts>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alerts {
    pub email: Vec<String>,
    pub webhook: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hub {
    pub address_space: At<Ipv4Cidr>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gallery {
    pub name: At<String>,
    /// SHA-256 of `scripts/cis-hardening.ps1` in the artifact storage.
    pub hardening_script_sha256: At<String>,
    /// Image versions get an end-of-life date this many days after their build.
    pub image_lifetime_days: u32,
}

/// A group of identical VMs of the shared layer.
#[derive(Debug, Clone, Serialize)]
pub struct VmTier {
    pub count: At<u32>,
    pub size: At<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Citrix {
    pub cloud_connectors: VmTier,
    pub storefront: VmTier,
    pub gateway: Gateway,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub count: At<u32>,
    pub size: At<String>,
    pub mfa: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    #[serde(skip)]
    pub file: Arc<PathBuf>,
    pub id: At<String>,
    pub name: String,
    pub address_space: At<Ipv4Cidr>,
    pub hix: Hix,
    pub frontends: Frontends,
    pub sql: Sql,
    pub access: Access,
    pub maintenance_window: MaintenanceWindow,
    pub cost_center: At<String>,
    pub contacts: Vec<Contact>,
    pub exceptions: Vec<Waiver>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hix {
    /// `major.minor`, as written.
    pub version: At<String>,
    pub major: u32,
    pub minor: u32,
    pub hotfix: At<u32>,
    /// SHA-256 of the HiX client installer and of the hotfix package.
    pub client_sha256: At<String>,
    pub hotfix_sha256: At<String>,
}

impl Hix {
    /// Gallery image version `Major.Minor.Patch`.
    pub fn image_version(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.hotfix.value)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Frontends {
    pub count: At<u32>,
    pub size: At<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    Norecovery,
    Standby,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sql {
    pub size: At<String>,
    pub data_disk_gb: At<u32>,
    pub restore_mode: RestoreMode,
    /// Log backups are applied this many seconds after they were taken.
    pub restore_delay_seconds: u64,
    pub rpo_target_minutes: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    pub max_users: u32,
    /// Who may log in (`roster`); `None`: nobody is managed by lifeboat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roster: Option<crate::roster::Roster>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceWindow {
    pub day: String,
    /// `HH:MM`, local time in `timezone`.
    pub start: String,
    pub hours: u32,
    pub timezone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

/// A policy waiver (`exceptions` entry).
#[derive(Debug, Clone, Serialize)]
pub struct Waiver {
    pub rule: At<String>,
    pub reason: String,
    pub expires: At<jiff::civil::Date>,
}
