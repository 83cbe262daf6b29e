//! The command side of a connection: which endpoint (starting the embedded local
//! cloud in-process for `--cloud local`), which credential, which time scale and
//! where the state lives, from the global flags; then the engine's
//! [`Session`]/[`Workspace`]. Everything after that is the engine's.

use anyhow::{Context, bail};

use crate::args::{Cli, CloudKind};
use lifeboat_core::location::Location;
use lifeboat_core::model::Project;
use lifeboat_emulator::Faults;
use lifeboat_engine::cloud::HttpClients;
use lifeboat_engine::cloud::auth::Credential;
use lifeboat_engine::cloud::client::{ArmClient, ClientConfig};
use lifeboat_engine::cloud::graph::GraphClient;
use lifeboat_engine::review::{Session, Workspace};
use lifeboat_engine::state::StateStore;

fn time_scale(cli: &Cli) -> anyhow::Result<f64> {
    Ok(explicit_time_scale(cli)?.unwrap_or(lifeboat_emulator::DEFAULT_TIME_SCALE))
}

fn explicit_time_scale(cli: &Cli) -> anyhow::Result<Option<f64>> {
    match cli.time_scale {
        Some(s) if !(s > 0.0 && s <= 1.0) => {
            bail!("--time-scale {s}: must be greater than 0 and at most 1")
        }
        s => Ok(s),
    }
}

/// `--graph-lag` in Azure seconds (default 10).
pub fn graph_lag(cli: &Cli) -> anyhow::Result<f64> {
    match cli.graph_lag {
        Some(l) if !(0.0..=3600.0).contains(&l) => {
            bail!("--graph-lag {l}: must be between 0 and 3600 seconds")
        }
        l => Ok(l.unwrap_or(lifeboat_emulator::DEFAULT_GRAPH_LAG_SECS)),
    }
}

/// `--vcpu-quota` (Azure-like defaults when absent).
pub fn vcpu_quota(cli: &Cli) -> anyhow::Result<lifeboat_emulator::arm::VcpuQuota> {
    match &cli.vcpu_quota {
        Some(spec) => lifeboat_emulator::arm::VcpuQuota::parse(spec)
            .map_err(|e| anyhow::anyhow!("--vcpu-quota {e}")),
        None => Ok(Default::default()),
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    lifeboat_engine::review::runtime().context("starting the async runtime")
}

/// Where state lives: `--state` (or `LIFEBOAT_STATE`), else `spec.state` of
/// platform.yaml, else local.
pub fn state_location(cli: &Cli, project: Option<&Project>) -> anyhow::Result<Location> {
    if let Some(s) = &cli.state {
        return Location::parse(s).map_err(|e| anyhow::anyhow!("--state {e}"));
    }
    match project.and_then(|p| p.platform.state.as_ref()) {
        Some(s) => Location::parse(&s.value).map_err(|e| anyhow::anyhow!("spec.state {e}")),
        None => Ok(Location::Local),
    }
}

/// Open the state store at `location` (reaching Blob Storage once).
pub fn open_state(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    location: &Location,
) -> anyhow::Result<StateStore> {
    rt.block_on(StateStore::open(location, &cli.dir, cli.auth.into()))
        .context("opening the state store")
}

/// Start (or reach) the cloud named by the global flags, with the state store at
/// `location`, sending with `http`.
fn connect(cli: &Cli, location: &Location, http: HttpClients) -> anyhow::Result<Session> {
    let rt = runtime()?;
    let state = open_state(&rt, cli, location)?;
    let (endpoint, credential, scale) = match (cli.cloud, &cli.arm_endpoint) {
        (CloudKind::Local, None) => {
            let scale = time_scale(cli)?;
            let faults = match &cli.faults {
                Some(spec) => Faults::parse(spec)?,
                None => Faults::default(),
            };
            let dir = cli.dir.join(".lifeboat").join("cloud");
            // A token per run: nothing else on this machine can write to the
            // embedded cloud while a command uses it.
            let token = lifeboat_engine::cloud::auth::random_token();
            let addr = rt
                .block_on(lifeboat_emulator::start(
                    &dir,
                    "127.0.0.1:0",
                    lifeboat_emulator::Config {
                        time_scale: scale,
                        faults,
                        token: token.clone(),
                        allow_remote: false,
                        graph_lag: graph_lag(cli)?,
                        vcpu_quota: vcpu_quota(cli)?,
                    },
                    lifeboat_emulator::Warm::Alongside,
                ))
                .context("starting the embedded local cloud on 127.0.0.1")?;
            (
                format!("http://{addr}"),
                Credential::emulator(&token, "default"),
                Some(scale),
            )
        }
        (CloudKind::Local, Some(ep)) => {
            // A standalone `lifeboat emulator serve`: its token, as it printed it.
            let token = std::env::var("LIFEBOAT_ACCESS_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "--arm-endpoint {ep}: set LIFEBOAT_ACCESS_TOKEN to the token `lifeboat emulator serve` printed (or its LIFEBOAT_EMULATOR_TOKEN)"
                )
            })?;
            let cred = Credential::Static {
                token,
                source: "LIFEBOAT_ACCESS_TOKEN",
            };
            (
                ep.trim_end_matches('/').to_string(),
                cred,
                explicit_time_scale(cli)?,
            )
        }
        (CloudKind::Azure, ep) => {
            let ep = ep
                .clone()
                .unwrap_or_else(|| "https://management.azure.com".into());
            let cred = Credential::for_mode(cli.auth.into(), &ep)?;
            (
                ep.trim_end_matches('/').to_string(),
                cred,
                explicit_time_scale(cli)?,
            )
        }
    };
    plain_http_only_on_loopback(&endpoint)?;
    // Microsoft Graph: the emulator answers it on the same listener, with the
    // same token; Azure's has its own endpoint and token audience.
    let graph = match (&cli.graph_endpoint, cli.cloud) {
        (Some(ep), CloudKind::Azure) => {
            plain_http_only_on_loopback(ep)?;
            GraphClient::with_http(
                ep,
                Credential::for_graph(cli.auth.into(), ep)?,
                scale,
                http.graph,
            )
        }
        (None, CloudKind::Azure) => GraphClient::with_http(
            "https://graph.microsoft.com",
            Credential::for_graph(cli.auth.into(), "https://graph.microsoft.com")?,
            scale,
            http.graph,
        ),
        (ep, CloudKind::Local) => {
            let ep = ep.clone().unwrap_or_else(|| endpoint.clone());
            plain_http_only_on_loopback(&ep)?;
            GraphClient::with_http(&ep, credential.clone(), scale, http.graph)
        }
    };
    let mut cfg = ClientConfig::azure(&endpoint);
    // Azure's time unless the scale is known (embedded cloud, `--time-scale`) or
    // the endpoint announces itself as the emulator.
    cfg.time_scale = scale.unwrap_or(1.0);
    cfg.discover_time_scale = scale.is_none();
    let client = ArmClient::with_http(cfg, credential, http.arm);
    Ok(Session {
        rt,
        client,
        graph,
        state,
        endpoint,
        skus: Default::default(),
    })
}

/// Load, validate and connect; `Err(code)` after the diagnostics were printed.
pub fn open(
    cli: &Cli,
    ui: &crate::ui::Ui,
) -> anyhow::Result<Result<Workspace, std::process::ExitCode>> {
    // Built while the manifests load: it reads the platform's certificates.
    let http = std::thread::spawn(HttpClients::build);
    let project = match super::load_project(cli, ui) {
        Ok(p) => p,
        Err(code) => return Ok(Err(code)),
    };
    let templates = super::load_templates(cli)?;
    let location = state_location(cli, Some(&project))?;
    let http = http.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
    let session = connect(cli, &location, http)?;
    Ok(Ok(Workspace {
        project,
        templates,
        session,
    }))
}

/// A bearer token (a real Azure one above all) never travels in the clear off
/// this machine: `http://` is for the emulator on loopback only.
fn plain_http_only_on_loopback(endpoint: &str) -> anyhow::Result<()> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        bail!(
            "--arm-endpoint {endpoint}: refusing to send an access token over plain http to {host}, which is not this machine; use https:// (or the emulator on 127.0.0.1)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::plain_http_only_on_loopback as check;

    #[test]
    fn tokens_go_over_plain_http_only_to_loopback() {
        for ok in [
            "https://management.azure.com",
            "http://127.0.0.1:8080",
            "http://127.3.4.5:1/x",
            "http://localhost:9",
            "http://[::1]:80",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:8080",
            "http://management.azure.com",
            "http://127.0.0.1.evil.example:80",
            "http://[2001:db8::1]:80",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
