//! The command line's arguments (clap). Parses and hands over; never computes
//! anything itself. Clap types stay in this crate: `commands` converts them into
//! the engine's own option types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Provision and operate per-hospital HiX emergency environments in Azure"
)]
pub struct Cli {
    /// Project directory (holds platform.yaml and tenants/); relative paths are taken inside it.
    #[arg(short = 'C', long = "dir", global = true, default_value = ".")]
    pub dir: PathBuf,
    /// Which cloud to talk to: the embedded local emulator or Azure.
    #[arg(long, global = true, value_enum, default_value_t = CloudKind::Local, env = "LIFEBOAT_CLOUD")]
    pub cloud: CloudKind,
    /// Azure Resource Manager endpoint (default https://management.azure.com).
    #[arg(long, global = true, env = "LIFEBOAT_ARM_ENDPOINT")]
    pub arm_endpoint: Option<String>,
    /// Credential source for Azure.
    #[arg(long, global = true, value_enum, default_value_t = AuthMode::Auto)]
    pub auth: AuthMode,
    /// Where locks, journal, audit log and saved plans live: `local` (under
    /// .lifeboat/) or `azblob://ACCOUNT/CONTAINER`; default: `spec.state` in
    /// platform.yaml, else local.
    #[arg(long, global = true, env = "LIFEBOAT_STATE")]
    pub state: Option<String>,
    /// Output for machines (`json`) or people (`human`).
    #[arg(long, global = true, value_enum, default_value_t = OutputKind::Human)]
    pub output: OutputKind,
    /// Never draw progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Microsoft Graph endpoint (default https://graph.microsoft.com; the
    /// emulator's own listener for the local cloud).
    #[arg(long, global = true, value_name = "URL")]
    pub graph_endpoint: Option<String>,
    /// Embedded cloud: multiply every emulated duration and quota refill by F.
    #[arg(
        long,
        global = true,
        value_name = "F",
        env = "LIFEBOAT_EMULATOR_TIME_SCALE"
    )]
    pub time_scale: Option<f64>,
    /// Embedded cloud: inject faults, e.g. `429=0.05,500=0.05,reset=0.02,lro-fail=0.02`.
    #[arg(
        long,
        global = true,
        value_name = "SPEC",
        env = "LIFEBOAT_EMULATOR_FAULTS"
    )]
    pub faults: Option<String>,
    /// Embedded cloud: seconds (Azure time) before Resource Graph shows a write.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "LIFEBOAT_EMULATOR_GRAPH_LAG"
    )]
    pub graph_lag: Option<f64>,
    /// Embedded cloud: per-region vCPU limits, e.g. `standardDSv5Family=100,total=350`.
    #[arg(
        long,
        global = true,
        value_name = "SPEC",
        env = "LIFEBOAT_EMULATOR_VCPU_QUOTA"
    )]
    pub vcpu_quota: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The global flags that only matter to commands that reach a cloud.
const CLOUD_FLAGS: &[&str] = &[
    "cloud",
    "arm_endpoint",
    "graph_endpoint",
    "auth",
    "state",
    "time_scale",
    "faults",
    "graph_lag",
    "vcpu_quota",
];

/// Commands that never reach a cloud (their help leaves the cloud flags out;
/// the flags are still accepted, so a pipeline can set them for every step).
const OFFLINE: &[&[&str]] = &[&["validate"], &["check"], &["export", "terraform"]];

impl Cli {
    /// The command line as `--help` shows it: cloud flags only where they apply.
    /// For rendering help only: arguments are parsed by [`Cli::parse_args`].
    pub fn command_scoped() -> clap::Command {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        for path in OFFLINE {
            cmd = hide_cloud_flags(cmd, path);
        }
        cmd
    }

    /// Parse `args`; a request for help is answered with the scoped help of the
    /// (sub)command it names.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, NotRun>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        Cli::try_parse_from(&args).map_err(|e| {
            if e.kind() != clap::error::ErrorKind::DisplayHelp {
                return NotRun::Clap(e);
            }
            let long = args.iter().any(|a| a == "--help");
            let mut cmd = Cli::command_scoped();
            let mut sub = &mut cmd;
            for a in args.iter().skip(1).filter_map(|a| a.to_str()) {
                let name = a.to_string();
                if sub.find_subcommand(&name).is_some() {
                    sub = sub.find_subcommand_mut(&name).expect("found above");
                }
            }
            let help = if long {
                sub.render_long_help()
            } else {
                sub.render_help()
            };
            // Styled on a terminal only, as clap prints its own help.
            use std::io::IsTerminal;
            NotRun::Help(if std::io::stdout().is_terminal() {
                help.ansi().to_string()
            } else {
                help.to_string()
            })
        })
    }
}

/// Why the command line does not run a command.
#[derive(Debug)]
pub enum NotRun {
    /// `--help`: the text to print (and exit 0).
    Help(String),
    /// clap's verdict: `--version`, or a usage error.
    Clap(clap::Error),
}

fn hide_cloud_flags(cmd: clap::Command, path: &[&str]) -> clap::Command {
    match path {
        [] => CLOUD_FLAGS
            .iter()
            .fold(cmd, |c, f| c.mut_arg(*f, |a| a.hide(true))),
        [first, rest @ ..] => cmd.mut_subcommand(*first, |s| hide_cloud_flags(s, rest)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudKind {
    Local,
    Azure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Auto,
    Token,
    Pipelines,
    ServicePrincipal,
    WorkloadIdentity,
    ManagedIdentity,
    Cli,
}

/// A free-text argument (a reason that reaches the audit trail, the tags, the
/// Markdown plan and terminals): printable text only.
fn printable(s: &str) -> Result<String, String> {
    match lifeboat_core::diag::control_character(s) {
        Some(reason) => Err(reason),
        None => Ok(s.to_string()),
    }
}

impl From<AuthMode> for lifeboat_engine::cloud::auth::AuthMode {
    fn from(m: AuthMode) -> Self {
        use lifeboat_engine::cloud::auth::AuthMode as Engine;
        match m {
            AuthMode::Auto => Engine::Auto,
            AuthMode::Token => Engine::Token,
            AuthMode::Pipelines => Engine::Pipelines,
            AuthMode::ServicePrincipal => Engine::ServicePrincipal,
            AuthMode::WorkloadIdentity => Engine::WorkloadIdentity,
            AuthMode::ManagedIdentity => Engine::ManagedIdentity,
            AuthMode::Cli => Engine::Cli,
        }
    }
}

impl From<Refresh> for lifeboat_engine::cloud::inventory::Refresh {
    fn from(r: Refresh) -> Self {
        match r {
            Refresh::Graph => lifeboat_engine::cloud::inventory::Refresh::Graph,
            Refresh::Direct => lifeboat_engine::cloud::inventory::Refresh::Direct,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Refresh {
    Graph,
    Direct,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate platform.yaml and every tenants/*.yaml; exit 1 on any error.
    #[command(
        after_help = "Examples:\n  lifeboat validate\n  lifeboat -C ../noodomgeving validate"
    )]
    Validate,
    /// Show what would change, against the cloud's current state.
    #[command(
        after_help = "Examples:\n  lifeboat plan\n  lifeboat plan --tenant cwz --detailed-exitcode\n  lifeboat --cloud azure plan --format markdown --out plan.json > plan.md"
    )]
    Plan(PlanArgs),
    /// Apply a saved plan, or plan and apply after confirmation.
    #[command(
        after_help = "Examples:\n  lifeboat apply --auto-approve\n  lifeboat apply --tenant cwz\n  lifeboat --cloud azure apply plan.json --auto-approve"
    )]
    Apply(ApplyArgs),
    /// Show changes made outside lifeboat (declared properties only).
    #[command(
        after_help = "Examples:\n  lifeboat drift\n  lifeboat drift --tenant cwz --detailed-exitcode"
    )]
    Drift(DriftArgs),
    /// Delete one tenant's resources in reverse dependency order.
    #[command(
        after_help = "Examples:\n  lifeboat destroy --tenant rst\n  lifeboat destroy --tenant rst --allow-data-loss rst --auto-approve"
    )]
    Destroy(DestroyArgs),
    /// Export the resource graph in another tool's format.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Build, list and prune the hospitals' HiX images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// The emergency-access roster: HR export (SOLL) against the Entra ID group (IST).
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Policy findings (CIS Azure, no single point of failure) on the rendered
    /// graph, without the cloud; exit 3 on an unwaived error.
    #[command(after_help = "Examples:\n  lifeboat check\n  lifeboat check --sarif lifeboat.sarif")]
    Check(CheckArgs),
    /// Disaster Activation Plan: bring a tenant's emergency environment up.
    #[command(
        after_help = "Examples:\n  lifeboat activate cwz --reason \"ransomware in the data centre\"\n  lifeboat activate cwz --reason \"fire\" --read-write --confirm cwz"
    )]
    Activate(ActivateArgs),
    /// Return an activated tenant to standby (front-ends deallocated, SQL restoring).
    #[command(
        after_help = "Examples:\n  lifeboat deactivate cwz --reason \"data centre back\"\n  lifeboat deactivate cwz mst rst"
    )]
    Deactivate(DeactivateArgs),
    /// Activate, verify and deactivate, with a report (HTML, JSON, JUnit XML).
    #[command(
        after_help = "Examples:\n  lifeboat drill cwz --report drill-cwz\n  lifeboat --cloud azure drill mst --reason \"quarterly drill\" --report out"
    )]
    Drill(DrillArgs),
    /// Per tenant: STANDBY/ACTIVE, SQL mode and RPO, image, front-ends, drift,
    /// last drill (bulk reads only).
    #[command(
        after_help = "Examples:\n  lifeboat status\n  lifeboat status --tenant cwz --format json\n  lifeboat status --format prometheus > lifeboat.prom"
    )]
    Status(StatusArgs),
    /// The signed endpoint catalog (XML Signature, RSA-SHA256, exclusive C14N).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// The audit trail of mutating commands (a hash chain).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The price table behind the plan's cost estimate.
    #[command(subcommand)]
    Pricing(PricingCommand),
    /// The ARM emulator behind `--cloud local`, standalone.
    #[command(subcommand)]
    Emulator(EmulatorCommand),
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The tenants (hospitals) to activate, at once when more than one.
    #[arg(required = true, value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Why (recorded in the audit trail and on the tenant).
    #[arg(long, value_parser = printable)]
    pub reason: String,
    /// Activate even when the RPO is above the tenant's target (or unknown).
    #[arg(long)]
    pub force: bool,
    /// RESTORE WITH RECOVERY: read-write, irreversible (the secondary leaves the
    /// log-shipping chain). Asks for the tenant id to be typed again.
    #[arg(long)]
    pub read_write: bool,
    /// The tenant id again, for --read-write in a pipeline.
    #[arg(long, value_name = "ID")]
    pub confirm: Option<String>,
    /// How long to wait for an apply holding the tenant's lock (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub lock_timeout: f64,
}

#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// The tenants (hospitals) to return to standby, at once when more than one.
    #[arg(required = true, value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Why (recorded in the audit trail).
    #[arg(long, value_parser = printable)]
    pub reason: Option<String>,
    /// How long to wait for a command holding the tenant's lock (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub lock_timeout: f64,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The tenant (hospital) id.
    pub tenant: String,
    /// Write drill.html, drill.json and drill-junit.xml here.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Why (recorded in the audit trail and the report).
    #[arg(long, default_value = "scheduled drill", value_parser = printable)]
    pub reason: String,
    /// Drill even when the RPO is above target.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for a command holding the tenant's lock (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub lock_timeout: f64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these tenants (repeatable).
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,
    /// A table for people, JSON, Prometheus text exposition (for a textfile
    /// collector or a Pushgateway) or a self-contained HTML page.
    #[arg(long, value_enum, default_value_t = StatusFormat::Human)]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Human,
    Json,
    Prometheus,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Sign the catalog of every tenant's current state (ACTIVE/INACTIVE endpoints).
    #[command(
        after_help = "Examples:\n  lifeboat catalog publish --key signer.key --cert signer.pem --out catalog.xml"
    )]
    Publish {
        /// RSA private key (PEM, PKCS#8 or PKCS#1).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
        /// The key's X.509 certificate (PEM); the result is verified with it.
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
        /// Where to write the signed catalog (XML).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a catalog's signature against a certificate, and its validity.
    #[command(after_help = "Examples:\n  lifeboat catalog verify catalog.xml --cert signer.pem")]
    Verify {
        /// The signed catalog (XML).
        file: PathBuf,
        /// The signer's X.509 certificate (PEM).
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 naming the first line that was edited,
    /// removed, inserted or reordered. With the head a command published
    /// (RECORDS:HASH), also exit 1 when the trail is missing, shorter or was
    /// rewritten and re-sealed since.
    #[command(
        after_help = "Examples:\n  lifeboat audit verify\n  lifeboat audit verify --expect-head 42:3f1c..."
    )]
    Verify {
        /// The head published by an earlier command (`Audit trail head: ...`).
        #[arg(long, value_name = "RECORDS:HASH", env = "LIFEBOAT_AUDIT_HEAD")]
        expect_head: Option<lifeboat_engine::state::audit::Head>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PricingCommand {
    /// Update pricing/<region>.json from the Azure Retail Prices API.
    #[command(
        after_help = "Examples:\n  lifeboat pricing refresh\n  lifeboat pricing refresh --currency EUR"
    )]
    Refresh {
        /// The API (or a mirror of it).
        #[arg(long, default_value = "https://prices.azure.com/api/retail/prices")]
        endpoint: String,
        /// Currency code; default: the table's.
        #[arg(long)]
        currency: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also write the findings as SARIF 2.1.0 (Azure DevOps Scans, code scanning).
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; refused if anything it was computed from changed.
    pub planfile: Option<PathBuf>,
    /// Apply only this tenant's layer (repeatable; without a plan file).
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,
    /// Apply the shared layer.
    #[arg(long)]
    pub shared: bool,
    /// Do not ask for confirmation (pipelines).
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow deleting or replacing protected resources of this tenant.
    #[arg(long = "allow-data-loss", value_name = "ID")]
    pub allow_data_loss: Vec<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Apply changes that lower the SQL VM's vCPUs or memory or its data disk's
    /// IOPS or throughput (shown in the plan with before/after figures).
    #[arg(long)]
    pub allow_capacity_reduction: bool,
    /// How prior state is read (as for `plan`).
    #[arg(long, value_enum, default_value_t = Refresh::Graph)]
    pub refresh: Refresh,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Check only this tenant (repeatable).
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,
    /// Check the shared layer.
    #[arg(long)]
    pub shared: bool,
    /// Exit 2 when drift is found.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The tenant to destroy (`shared` for the shared layer, refused while tenants exist).
    #[arg(long = "tenant", value_name = "ID")]
    pub tenant: String,
    /// Do not ask for confirmation (pipelines).
    #[arg(long)]
    pub auto_approve: bool,
    /// Also delete this tenant's protected data resources.
    #[arg(long = "allow-data-loss", value_name = "ID")]
    pub allow_data_loss: Vec<String>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How a plan is carried out (apply and destroy).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Cap on changes in flight (default: paced by ARM's rate limits only).
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<usize>,
    /// How long to wait for another apply's lock before failing (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub lock_timeout: f64,
    /// Apply disruptive tenant changes (replace, delete, a resize that restarts a VM)
    /// outside the tenant's maintenance window. Never overrides an activated tenant.
    #[arg(long)]
    pub outside_window: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationFormat {
    Csv,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Who the HR export says may log in (SOLL) against the emergency group
    /// (IST): joiners, leavers (and why), movers, unmanaged members.
    #[command(
        after_help = "Examples:\n  lifeboat roster plan\n  lifeboat roster plan --tenant cwz --format json --detailed-exitcode"
    )]
    Plan {
        /// Only these tenants (repeatable; default: every tenant with a roster).
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
        /// Output for people (`human`), pipelines (`json`) or a PR comment (`markdown`).
        #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
        format: PlanFormat,
        /// Exit 2 when there are changes, 0 when none.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Count members nobody added as staying (as `roster apply --keep-unmanaged`).
        #[arg(long)]
        keep_unmanaged: bool,
    },
    /// Add joiners, remove leavers (and disable their guest accounts) and
    /// unmanaged members; keep the MFA policy over every emergency group.
    #[command(
        after_help = "Examples:\n  lifeboat roster apply --auto-approve\n  lifeboat roster apply --tenant cwz --keep-unmanaged"
    )]
    Apply {
        /// Only these tenants (repeatable; default: every tenant with a roster).
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
        /// Apply without asking.
        #[arg(long)]
        auto_approve: bool,
        /// Leave members nobody added in the group.
        #[arg(long)]
        keep_unmanaged: bool,
    },
    /// The attestation list: who has access, by which rule or manual reason, since when.
    #[command(
        after_help = "Examples:\n  lifeboat roster report --tenant cwz --format csv > cwz-access.csv\n  lifeboat roster report --tenant cwz --format html > cwz-access.html"
    )]
    Report {
        /// The tenant to attest.
        #[arg(long = "tenant", value_name = "ID")]
        tenant: String,
        /// `csv` (for a spreadsheet) or `html` (one self-contained page).
        #[arg(long, value_enum)]
        format: AttestationFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the declared HiX hotfix image (skipped when that version exists).
    #[command(
        after_help = "Examples:\n  lifeboat image build --tenant cwz\n  lifeboat image build --all --concurrency 20",
        group(clap::ArgGroup::new("which").required(true).args(["tenants", "all"]))
    )]
    Build {
        /// Build this tenant's image (repeatable).
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
        /// Build every tenant whose declared hotfix has no image yet.
        #[arg(long, conflicts_with = "tenants")]
        all: bool,
        /// Builds at once (Azure Image Builder quota).
        #[arg(long, value_name = "N", default_value_t = 20)]
        concurrency: usize,
        /// How long to wait for another run's lock on a tenant's image (seconds).
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
        lock_timeout: f64,
    },
    /// Per tenant: declared hotfix, newest version, versions in use, replication, end of life.
    #[command(
        after_help = "Examples:\n  lifeboat image list\n  lifeboat --output json image list --tenant cwz"
    )]
    List {
        /// Only these tenants (repeatable).
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
    },
    /// Delete old image versions (never the newest N, one in use or the declared one)
    /// and mark superseded versions exclude-from-latest.
    #[command(
        after_help = "Examples:\n  lifeboat image prune --keep 2\n  lifeboat image prune --tenant cwz --auto-approve"
    )]
    Prune {
        /// Versions to keep per tenant, newest first.
        #[arg(long, value_name = "N", default_value_t = 2)]
        keep: usize,
        /// Only these tenants (repeatable).
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Serve the emulator on ADDR, persisting to DIR. It answers only requests
    /// that carry its token: LIFEBOAT_EMULATOR_TOKEN, or a random one it prints;
    /// clients pass it as LIFEBOAT_ACCESS_TOKEN.
    #[command(
        after_help = "Examples:\n  LIFEBOAT_EMULATOR_TOKEN=secret lifeboat emulator serve --listen 127.0.0.1:8686\n  LIFEBOAT_ACCESS_TOKEN=secret lifeboat --arm-endpoint http://127.0.0.1:8686 plan"
    )]
    Serve {
        /// Address to listen on (loopback only, unless --allow-remote).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8686")]
        listen: String,
        /// Directory that holds the emulated resources.
        #[arg(long, value_name = "DIR", default_value = ".lifeboat/cloud")]
        data: PathBuf,
        /// Listen on a non-loopback address (anyone who can reach it and holds
        /// the token can change the emulated estate).
        #[arg(long)]
        allow_remote: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan only this tenant's layer (repeatable).
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,
    /// Plan the shared layer (alone, or with the given tenants).
    #[arg(long)]
    pub shared: bool,
    /// Save the plan for `apply`, with what it was computed from.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format (defaults to json with --output json).
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
    /// Exit 0 when there are no changes, 2 when there are.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// How prior state is read: one Resource Graph query, or a GET per resource.
    #[arg(long, value_enum, default_value_t = Refresh::Graph)]
    pub refresh: Refresh,
    /// Allow deleting or replacing protected resources of this tenant (`shared` for the shared layer).
    #[arg(long = "allow-data-loss", value_name = "ID")]
    pub allow_data_loss: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Terraform JSON (azapi_resource) equivalent of the graph.
    #[command(after_help = "Examples:\n  lifeboat export terraform --out tf/")]
    Terraform {
        /// Directory to write *.tf.json files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command says what it is for, and every command
    /// that does something shows examples.
    #[test]
    fn offline_commands_do_not_show_cloud_flags() {
        let mut cmd = Cli::command_scoped();
        let check = cmd.find_subcommand_mut("check").unwrap();
        let help = check.render_help().to_string();
        assert!(
            !help.contains("--arm-endpoint") && !help.contains("--vcpu-quota"),
            "{help}"
        );
        assert!(help.contains("--sarif"), "{help}");
        let plan = cmd.find_subcommand_mut("plan").unwrap();
        assert!(plan.render_help().to_string().contains("--arm-endpoint"));
        // Still accepted (a pipeline may set them for every step).
        let cli = Cli::parse_args(["lifeboat", "check", "--cloud", "azure"]).unwrap();
        assert_eq!(cli.cloud, CloudKind::Azure);
        let help = |args: &[&str]| match Cli::parse_args(args.iter().copied()) {
            Err(NotRun::Help(text)) => text,
            other => panic!("{other:?}"),
        };
        let text = help(&["lifeboat", "check", "--help"]);
        assert!(
            text.contains("--sarif") && !text.contains("--arm-endpoint"),
            "{text}"
        );
        assert!(!text.starts_with("error"), "{text}");
        assert!(!help(&["lifeboat", "export", "terraform", "-h"]).contains("--faults"));
        assert!(help(&["lifeboat", "plan", "-h"]).contains("--faults"));
    }

    #[test]
    fn help_is_complete() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                if a.is_hide_set() || a.get_id() == "help" || a.get_id() == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}: no help", a.get_id()));
                }
            }
            let leaf = c.get_subcommands().next().is_none();
            if leaf
                && !path.is_empty()
                && c.get_after_help().is_none()
                && c.get_after_long_help().is_none()
            {
                missing.push(format!("{path}: no examples"));
            }
            for s in c.get_subcommands() {
                if s.get_name() == "help" {
                    continue;
                }
                walk(s, format!("{path} {}", s.get_name()).trim(), missing);
            }
        }
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
