//! A connection to the cloud for one command: the tokio runtime, the embedded
//! emulator when `--cloud local`, and the ARM client; plus the planning step that
//! plan, apply, drift and destroy share (graph + prior state -> plan).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::args::{Cli, CloudKind, Refresh};
use lifeboat_core::graph::templates::TemplateSet;
use lifeboat_core::graph::{Graph, Scope};
use lifeboat_core::model::Project;
use lifeboat_core::observed::PriorState;
use lifeboat_core::plan::{self, Inputs, Plan, PlanOptions};
use lifeboat_emulator::Faults;
use lifeboat_engine::cloud::auth::Credential;
use lifeboat_engine::cloud::client::{ArmClient, ClientConfig};
use lifeboat_engine::cloud::inventory::{self, Wanted};
use lifeboat_engine::state::{self, Location, StateStore};

pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub client: ArmClient,
    pub state: StateStore,
    /// Where the client talks to (for messages).
    pub endpoint: String,
}

fn time_scale(cli: &Cli) -> anyhow::Result<f64> {
    let s = cli
        .time_scale
        .unwrap_or(lifeboat_emulator::DEFAULT_TIME_SCALE);
    if !(s > 0.0 && s <= 1.0) {
        bail!("--time-scale {s}: must be greater than 0 and at most 1");
    }
    Ok(s)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
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
/// `location`.
pub fn connect(cli: &Cli, location: &Location) -> anyhow::Result<Session> {
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
            let addr = rt
                .block_on(lifeboat_emulator::start(
                    &dir,
                    "127.0.0.1:0",
                    lifeboat_emulator::Config {
                        time_scale: scale,
                        faults,
                    },
                ))
                .context("starting the embedded local cloud on 127.0.0.1")?;
            (
                format!("http://{addr}"),
                Credential::local("default"),
                scale,
            )
        }
        (CloudKind::Local, Some(ep)) => {
            // A standalone `lifeboat emulator serve`.
            let cred = std::env::var("LIFEBOAT_ACCESS_TOKEN")
                .map(|token| Credential::Static {
                    token,
                    source: "LIFEBOAT_ACCESS_TOKEN",
                })
                .unwrap_or_else(|_| Credential::local("default"));
            (ep.trim_end_matches('/').to_string(), cred, time_scale(cli)?)
        }
        (CloudKind::Azure, ep) => {
            let ep = ep
                .clone()
                .unwrap_or_else(|| "https://management.azure.com".into());
            let cred = Credential::for_mode(cli.auth.into(), &ep)?;
            let scale = if ep.starts_with("http://") {
                time_scale(cli)?
            } else {
                1.0
            };
            (ep.trim_end_matches('/').to_string(), cred, scale)
        }
    };
    let mut cfg = ClientConfig::azure(&endpoint);
    cfg.time_scale = scale;
    let client = ArmClient::new(cfg, credential);
    Ok(Session {
        rt,
        client,
        state,
        endpoint,
    })
}

/// What every cloud command starts from: the validated project, its templates and
/// a connection.
pub struct Workspace {
    pub project: Project,
    pub templates: TemplateSet,
    pub session: Session,
}

impl Workspace {
    /// Load, validate and connect; `Err(code)` after the diagnostics were printed.
    pub fn open(
        cli: &Cli,
        ui: &crate::ui::Ui,
    ) -> anyhow::Result<Result<Workspace, std::process::ExitCode>> {
        let project = match super::load_project(cli, ui) {
            Ok(p) => p,
            Err(code) => return Ok(Err(code)),
        };
        let templates = super::load_templates(cli)?;
        let location = state_location(cli, Some(&project))?;
        let session = connect(cli, &location)?;
        Ok(Ok(Workspace {
            project,
            templates,
            session,
        }))
    }

    /// Plan the layers named by `--tenant`/`--shared`.
    pub fn plan(
        &self,
        tenants: &[String],
        shared: bool,
        refresh: Refresh,
        allow_data_loss: &[String],
    ) -> anyhow::Result<Plan> {
        Ok(self
            .plan_with_prior(tenants, shared, refresh, allow_data_loss, true)?
            .0)
    }

    /// The plan and the prior state it was computed against; `review` adds the
    /// policy findings and the cost estimate (a change review needs them, `status`
    /// does not).
    pub fn plan_with_prior(
        &self,
        tenants: &[String],
        shared: bool,
        refresh: Refresh,
        allow_data_loss: &[String],
        review: bool,
    ) -> anyhow::Result<(Plan, lifeboat_core::observed::PriorState)> {
        let scope = super::plan::scope_from(&self.project, tenants, shared)?;
        let (project, templates) = (&self.project, &self.templates);
        let render = || {
            lifeboat_core::graph::build(project, templates, &scope)
                .context("rendering the resource graph")
        };
        let (graph, prior) = match refresh {
            // One Resource Graph query needs nothing from the graph: read the cloud
            // while the templates render.
            Refresh::Graph => std::thread::scope(|s| {
                let rendering = s.spawn(render);
                let prior = self
                    .session
                    .prior_state(project, &Graph::default(), refresh);
                let graph = rendering.join().expect("rendering does not panic");
                anyhow::Ok((graph?, prior?))
            })?,
            Refresh::Direct => {
                let graph = render()?;
                let prior = self.session.prior_state(project, &graph, refresh)?;
                (graph, prior)
            }
        };
        let inputs = if review {
            inputs(project, templates, &prior)
        } else {
            Inputs::default()
        };
        // Without review (status) deletes do not matter: skip rendering the rest.
        let elsewhere = if review {
            declared_elsewhere(project, templates, &scope, &graph)?
        } else {
            Default::default()
        };
        let (findings, cost) = if review {
            (
                lifeboat_core::policy::check(project, templates, &graph, super::today()?),
                super::price_table(project)?
                    .map(|t| lifeboat_core::cost::estimate(&graph, &prior, &t)),
            )
        } else {
            (Vec::new(), None)
        };
        let mut plan = plan::plan(
            graph,
            &prior,
            PlanOptions {
                scope: &scope,
                allow_data_loss,
                inputs,
                declared_elsewhere: &elsewhere,
            },
        )?;
        plan.attach_findings(findings);
        plan.cost = cost;
        Ok((plan, prior))
    }
}

pub fn inputs(project: &Project, templates: &TemplateSet, prior: &PriorState) -> Inputs {
    Inputs {
        lifeboat_version: env!("CARGO_PKG_VERSION").into(),
        manifests: project
            .sources
            .iter()
            .map(|s| (s.path.clone(), s.sha256.clone()))
            .collect(),
        templates: templates
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.sha256.clone()))
            .collect::<BTreeMap<_, _>>(),
        prior_state: prior.fingerprint(),
    }
}

impl Session {
    /// Run `work` while holding the locks for `scopes` (taken in order, waiting up
    /// to `timeout` each), renewing their leases alongside it (so a slow store
    /// never stalls the work), and releasing them when it ends. A lease that
    /// cannot be renewed stops the work before the lease runs out: another
    /// holder could otherwise start on the same layer.
    pub async fn holding_locks<T>(
        &self,
        scopes: &[String],
        command: &str,
        timeout: Duration,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let lease = state::lock_lease()?;
        let mut guards = Vec::new();
        for scope in scopes {
            match self.state.lock(scope, command, lease, timeout).await {
                Ok(g) => guards.push(g),
                Err(e) => {
                    release_all(guards).await;
                    return Err(e).with_context(|| format!("taking the {scope} lock"));
                }
            }
        }
        let renewing = async {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                for g in guards.iter_mut() {
                    if let Err(e) = g.renew(lease).await {
                        return anyhow::Error::new(e).context(format!(
                            "renewing the lock on {}; stopped before its lease runs out",
                            self.state.describe()
                        ));
                    }
                }
            }
        };
        let out = tokio::select! {
            out = work => out,
            e = renewing => Err(e),
        };
        release_all(guards).await;
        out
    }

    /// Read the prior state for `graph`: one Resource Graph query (plus direct
    /// re-reads of what the last apply wrote), or a GET per resource.
    pub fn prior_state(
        &self,
        project: &Project,
        graph: &Graph,
        refresh: Refresh,
    ) -> anyhow::Result<PriorState> {
        let journal = self
            .rt
            .block_on(self.state.journal())
            .context("reading the apply journal")?;
        // Resource Graph indexes ARM writes within minutes: what was written more
        // recently than that is read directly (in the cloud's own time).
        let lag = jiff::SignedDuration::from_secs_f64(
            RESOURCE_GRAPH_LAG_SECS * self.client.config().time_scale,
        );
        let since = jiff::Timestamp::now() - lag;
        let mut recent: Vec<Wanted> = journal
            .iter()
            .filter(|e| e.at.parse::<jiff::Timestamp>().is_ok_and(|t| t >= since))
            .map(|e| Wanted {
                id: e.id.clone(),
                api_version: e.api_version.clone(),
            })
            .collect();
        recent.extend(state::in_doubt(&journal).into_iter().map(|e| Wanted {
            id: e.id,
            api_version: e.api_version,
        }));
        recent.sort_by(|a, b| a.id.cmp(&b.id));
        recent.dedup_by(|a, b| a.id == b.id);
        let desired: Vec<Wanted> = graph
            .resources
            .iter()
            .map(|r| Wanted {
                id: r.id.clone(),
                api_version: r.api_version.clone(),
            })
            .collect();
        let refresh = match refresh {
            Refresh::Graph => inventory::Refresh::Graph,
            Refresh::Direct => inventory::Refresh::Direct,
        };
        let sub = &project.platform.subscription_id;
        self.rt
            .block_on(inventory::read(
                &self.client,
                sub,
                refresh,
                &project.platform.prefix.value,
                &desired,
                &recent,
            ))
            .with_context(|| format!("reading the current state from {}", self.endpoint))
    }
}

/// Ids the manifests declare outside `scope` (empty when the scope is everything).
pub fn declared_elsewhere(
    project: &Project,
    templates: &TemplateSet,
    scope: &Scope,
    in_scope: &Graph,
) -> anyhow::Result<std::collections::HashSet<String>> {
    if *scope == Scope::everything() {
        return Ok(Default::default());
    }
    let all = lifeboat_core::graph::build(project, templates, &Scope::everything())
        .context("rendering the resource graph")?;
    let mine: std::collections::HashSet<&str> =
        in_scope.resources.iter().map(|r| r.id.key()).collect();
    Ok(all
        .resources
        .iter()
        .map(|r| r.id.key())
        .filter(|k| !mine.contains(k))
        .map(str::to_string)
        .collect())
}

/// Lock scopes a plan writes to, in a fixed order (no deadlock between applies).
pub fn lock_scopes(plan: &Plan) -> Vec<String> {
    let mut scopes: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != lifeboat_core::plan::Action::NoOp)
        .map(|c| match &c.tenant {
            Some(t) => format!("tenant-{t}"),
            None => "shared".to_string(),
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// How long Resource Graph may lag behind ARM writes (Azure seconds).
pub const RESOURCE_GRAPH_LAG_SECS: f64 = 300.0;

/// Release every lock; one that cannot be released runs out with its lease.
async fn release_all(guards: Vec<state::LockGuard>) {
    for g in guards {
        let _ = g.release().await;
    }
}
