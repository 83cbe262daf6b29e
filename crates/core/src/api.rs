//! The one table of ARM api-versions lifeboat speaks outside its templates:
//! operations (DAP, images), orphans no template declares any more, and the
//! emulator's own writes. Templates name their own api-version per resource;
//! everything else takes it from here, so an upgrade is one edit.

/// Virtual machines, their actions (start, deallocate, runCommand) and views.
pub const COMPUTE: &str = "2024-07-01";
/// Managed disks.
pub const DISKS: &str = "2024-03-02";
/// Azure Compute Gallery: galleries, image definitions and versions.
pub const GALLERY: &str = "2023-07-03";
/// Azure Image Builder templates (`Microsoft.VirtualMachineImages`).
pub const IMAGE_BUILDER: &str = "2024-02-01";
/// Virtual networks, NSGs and their rules, load balancers, public IPs.
pub const NETWORK: &str = "2024-05-01";
/// Resource groups.
pub const RESOURCE_GROUPS: &str = "2021-04-01";
/// Subscriptions.
pub const SUBSCRIPTIONS: &str = "2022-12-01";
/// Storage accounts, blob services and containers.
pub const STORAGE: &str = "2023-05-01";
/// Key Vaults and their keys.
pub const KEY_VAULT: &str = "2023-07-01";
/// Role assignments.
pub const AUTHORIZATION: &str = "2022-04-01";
/// Log Analytics workspaces.
pub const OPERATIONAL_INSIGHTS: &str = "2023-09-01";
/// Diagnostic settings (the version the templates use).
pub const INSIGHTS: &str = "2021-05-01-preview";
pub const MANAGED_IDENTITY: &str = "2023-01-31";
/// Alerts: the action group and the log alert rules (as the templates use).
pub const ACTION_GROUPS: &str = "2023-01-01";
pub const SCHEDULED_QUERY_RULES: &str = "2023-12-01";
/// Fired alerts (Alerts Management `Alerts_GetAll`).
pub const ALERTS_MANAGEMENT: &str = "2019-05-05-preview";

/// Azure Resource Graph queries (`Microsoft.ResourceGraph/resources`).
pub const RESOURCE_GRAPH: &str = "2022-10-01";
/// Log Analytics queries through ARM (`<workspace>/api/query`).
pub const LOG_QUERY: &str = "2020-08-01";

/// The ARM type of a gallery image version (what an image build produces).
pub const IMAGE_VERSION_TYPE: &str = "Microsoft.Compute/galleries/images/versions";

/// The api-version for a type no template declares (an orphan of a removed
/// template), by provider.
pub fn for_type(resource_type: &str) -> &'static str {
    let t = resource_type.to_ascii_lowercase();
    match t.as_str() {
        "microsoft.resources/subscriptions" => SUBSCRIPTIONS,
        "microsoft.resources/resourcegroups" => RESOURCE_GROUPS,
        _ if t.starts_with("microsoft.network/") => NETWORK,
        _ if t.starts_with("microsoft.compute/galleries") => GALLERY,
        _ if t.starts_with("microsoft.compute/disks") => DISKS,
        // The disk resource provider versions disk encryption sets like disks.
        "microsoft.compute/diskencryptionsets" => DISKS,
        _ if t.starts_with("microsoft.compute/") => COMPUTE,
        _ if t.starts_with("microsoft.storage/") => STORAGE,
        _ if t.starts_with("microsoft.keyvault/") => KEY_VAULT,
        _ if t.starts_with("microsoft.authorization/") => AUTHORIZATION,
        _ if t.starts_with("microsoft.operationalinsights/") => OPERATIONAL_INSIGHTS,
        _ if t.starts_with("microsoft.virtualmachineimages/") => IMAGE_BUILDER,
        "microsoft.insights/actiongroups" => ACTION_GROUPS,
        "microsoft.insights/scheduledqueryrules" => SCHEDULED_QUERY_RULES,
        _ if t.starts_with("microsoft.insights/") => INSIGHTS,
        _ if t.starts_with("microsoft.managedidentity/") => MANAGED_IDENTITY,
        _ => RESOURCE_GROUPS,
    }
}

/// The response header by which the lifeboat emulator announces its time scale;
/// a client scales its waits only for an endpoint that sends it (or when told).
pub const TIME_SCALE_HEADER: &str = "x-lifeboat-time-scale";

/// A child type that ARM also shows as an array in its parent's body (and that
/// Resource Graph indexes only there).
#[derive(Debug)]
pub struct InlineChildren {
    /// The parent's type, lower-cased.
    pub parent: &'static str,
    /// The property of the parent's `properties`, and the child's type segment.
    pub key: &'static str,
    pub child: &'static str,
    /// A parent PUT replaces the whole set (absent means none); otherwise a
    /// parent PUT without the array leaves the children alone (peerings).
    pub replaced_by_parent: bool,
}

pub const INLINE_CHILDREN: &[InlineChildren] = &[
    InlineChildren {
        parent: "microsoft.network/virtualnetworks",
        key: "subnets",
        child: "Microsoft.Network/virtualNetworks/subnets",
        replaced_by_parent: true,
    },
    InlineChildren {
        parent: "microsoft.network/virtualnetworks",
        key: "virtualNetworkPeerings",
        child: "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
        replaced_by_parent: false,
    },
    InlineChildren {
        parent: "microsoft.network/networksecuritygroups",
        key: "securityRules",
        child: "Microsoft.Network/networkSecurityGroups/securityRules",
        replaced_by_parent: true,
    },
];

/// The inline child kinds of `resource_type`.
pub fn inline_children(resource_type: &str) -> impl Iterator<Item = &'static InlineChildren> + '_ {
    INLINE_CHILDREN
        .iter()
        .filter(move |k| k.parent.eq_ignore_ascii_case(resource_type))
}
