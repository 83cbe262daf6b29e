//! Where the ARM bearer token comes from. `azure_identity` 1.x has no default chain,
//! so lifeboat chooses explicitly (`--auth`), and `auto` takes the first source that
//! applies, in the order DESIGN.md gives, and says which one it used.
//!
//! The token is attached by the client itself: `azure_core`'s bearer policy refuses
//! plain `http://`, which the loopback emulator uses. Never logs a token.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, AzurePipelinesCredential, ClientSecretCredential,
    ManagedIdentityCredential, WorkloadIdentityCredential,
};

/// Which credential source to use (`--auth`); `Auto` takes the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Auto,
    Token,
    Pipelines,
    ServicePrincipal,
    WorkloadIdentity,
    ManagedIdentity,
    Cli,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("--auth {mode}: {reason}")]
    Unavailable { mode: &'static str, reason: String },
    #[error("getting an access token ({source_name}): {message}")]
    Token {
        source_name: &'static str,
        message: String,
    },
}

/// A source of bearer tokens.
#[derive(Clone)]
pub enum Credential {
    /// A fixed token (`LIFEBOAT_ACCESS_TOKEN`, or the local emulator's identity).
    Static { token: String, source: &'static str },
    Azure {
        credential: Arc<dyn TokenCredential>,
        source: &'static str,
        scope: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.source())
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// What `--auth pipelines` lacks, and where each variable comes from: the
/// AzureCLI@2 and AzurePowerShell@5 tasks export the service connection's
/// `AZURESUBSCRIPTION_*`; nothing exports `SYSTEM_ACCESSTOKEN` unless the step
/// maps it.
fn pipelines_missing() -> String {
    let unset: Vec<&str> = [
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
        "AZURESUBSCRIPTION_CLIENT_ID",
        "AZURESUBSCRIPTION_TENANT_ID",
        "SYSTEM_ACCESSTOKEN",
    ]
    .into_iter()
    .filter(|v| std::env::var(v).map_or(true, |x| x.is_empty()))
    .collect();
    let mut hints = Vec::new();
    if unset.iter().any(|v| v.starts_with("AZURESUBSCRIPTION_")) {
        hints.push("run lifeboat inside an AzureCLI@2 or AzurePowerShell@5 task with a workload-identity service connection (they export AZURESUBSCRIPTION_*)");
    }
    if unset.contains(&"SYSTEM_ACCESSTOKEN") {
        hints.push("map the job's token in that step: `env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }` (no task sets it)");
    }
    format!("{} not set: {}", unset.join(", "), hints.join("; "))
}

impl Credential {
    pub fn source(&self) -> &'static str {
        match self {
            Credential::Static { source, .. } | Credential::Azure { source, .. } => source,
        }
    }

    /// The identity the local emulator throttles on.
    /// The embedded or a standalone emulator: its token, and the identity
    /// it throttles this client as.
    pub fn emulator(token: &str, identity: &str) -> Credential {
        Credential::Static {
            token: format!("{token}:{identity}"),
            source: "the local emulator's token",
        }
    }

    /// Choose a credential for `mode`. `endpoint` decides the token scope
    /// (`https://management.azure.com/.default` for public Azure).
    pub fn for_mode(mode: AuthMode, endpoint: &str) -> Result<Credential, AuthError> {
        let scope = if endpoint.starts_with("https://") {
            format!("{}/.default", endpoint.trim_end_matches('/'))
        } else {
            "https://management.azure.com/.default".to_string()
        };
        Self::for_scope(mode, scope, "LIFEBOAT_ACCESS_TOKEN")
    }

    /// The same choice for Microsoft Graph (the roster): tokens for its own
    /// audience (`<graph endpoint>/.default`); a fixed one comes from
    /// `LIFEBOAT_GRAPH_ACCESS_TOKEN` (an ARM token is not valid for Graph).
    pub fn for_graph(mode: AuthMode, endpoint: &str) -> Result<Credential, AuthError> {
        Self::for_scope(
            mode,
            format!("{}/.default", endpoint.trim_end_matches('/')),
            "LIFEBOAT_GRAPH_ACCESS_TOKEN",
        )
    }

    /// The same choice for Blob Storage (`--state azblob://`): tokens for
    /// `https://storage.azure.com`; a fixed one comes from
    /// `LIFEBOAT_STORAGE_ACCESS_TOKEN` (an ARM token is not valid for storage).
    pub fn for_storage(mode: AuthMode) -> Result<Credential, AuthError> {
        Self::for_scope(
            mode,
            "https://storage.azure.com/.default".into(),
            "LIFEBOAT_STORAGE_ACCESS_TOKEN",
        )
    }

    fn for_scope(
        mode: AuthMode,
        scope: String,
        token_var: &'static str,
    ) -> Result<Credential, AuthError> {
        let azure = |credential: Arc<dyn TokenCredential>, source| Credential::Azure {
            credential,
            source,
            scope: scope.clone(),
        };
        let fail = |mode, e: azure_core::Error| AuthError::Unavailable {
            mode,
            reason: e.to_string(),
        };
        let pipelines = || -> Option<Result<Credential, AuthError>> {
            let conn = env("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")?;
            let token = env("SYSTEM_ACCESSTOKEN")?;
            let client = env("AZURESUBSCRIPTION_CLIENT_ID")?;
            let tenant = env("AZURESUBSCRIPTION_TENANT_ID")?;
            Some(
                AzurePipelinesCredential::new(tenant, client, &conn, token, None)
                    .map(|c| azure(c, "Azure Pipelines workload identity federation"))
                    .map_err(|e| fail("pipelines", e)),
            )
        };
        let service_principal = || -> Option<Result<Credential, AuthError>> {
            let (client, tenant, secret) = (
                env("AZURE_CLIENT_ID")?,
                env("AZURE_TENANT_ID")?,
                env("AZURE_CLIENT_SECRET")?,
            );
            Some(
                ClientSecretCredential::new(&tenant, client, secret.into(), None)
                    .map(|c| azure(c, "service principal (AZURE_CLIENT_SECRET)"))
                    .map_err(|e| fail("service-principal", e)),
            )
        };
        let workload = || -> Option<Result<Credential, AuthError>> {
            env("AZURE_FEDERATED_TOKEN_FILE")?;
            Some(
                WorkloadIdentityCredential::new(None)
                    .map(|c| azure(c, "workload identity (AZURE_FEDERATED_TOKEN_FILE)"))
                    .map_err(|e| fail("workload-identity", e)),
            )
        };
        let token = || {
            env(token_var).map(|token| Credential::Static {
                token,
                source: token_var,
            })
        };
        let managed = || {
            ManagedIdentityCredential::new(None)
                .map(|c| azure(c, "managed identity"))
                .map_err(|e| fail("managed-identity", e))
        };
        let cli = || {
            AzureCliCredential::new(None)
                .map(|c| azure(c, "Azure CLI"))
                .map_err(|e| fail("cli", e))
        };
        let missing = |mode, reason: &str| AuthError::Unavailable {
            mode,
            reason: reason.to_string(),
        };
        match mode {
            AuthMode::Token => {
                token().ok_or_else(|| missing("token", &format!("{token_var} is not set")))
            }
            AuthMode::Pipelines => {
                pipelines().unwrap_or_else(|| Err(missing("pipelines", &pipelines_missing())))
            }
            AuthMode::ServicePrincipal => service_principal().unwrap_or_else(|| {
                Err(missing(
                    "service-principal",
                    "needs AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET",
                ))
            }),
            AuthMode::WorkloadIdentity => workload().unwrap_or_else(|| {
                Err(missing(
                    "workload-identity",
                    "needs AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID",
                ))
            }),
            AuthMode::ManagedIdentity => managed(),
            AuthMode::Cli => cli(),
            AuthMode::Auto => {
                if let Some(c) = token() {
                    return Ok(c);
                }
                if let Some(candidate) = [pipelines(), service_principal(), workload()]
                    .into_iter()
                    .flatten()
                    .next()
                {
                    return candidate;
                }
                // Managed identity applies on Azure hosts (IMDS); off Azure the CLI
                // login is the engineer's way in. Which one works shows on first use.
                if env("IDENTITY_ENDPOINT").is_some() || env("MSI_ENDPOINT").is_some() {
                    managed()
                } else {
                    cli()
                }
            }
        }
    }

    /// A bearer token for one request.
    pub async fn bearer(&self) -> Result<String, AuthError> {
        match self {
            Credential::Static { token, .. } => Ok(token.clone()),
            Credential::Azure {
                credential,
                source,
                scope,
            } => credential
                .get_token(&[scope.as_str()], None)
                .await
                .map(|t| t.token.secret().to_string())
                .map_err(|e| AuthError::Token {
                    source_name: source,
                    message: e.to_string(),
                }),
        }
    }
}

impl Credential {
    /// Who the token says the caller is: `upn` (or `preferred_username`,
    /// `unique_name`), else `app:<appid>`, with the object id; `None` when the
    /// token is not an Entra ID JWT (the emulator's). Read from the token the
    /// identity platform issued to this process, so not self-reported.
    pub async fn principal(&self) -> Option<String> {
        principal_of(&self.bearer().await.ok()?)
    }
}

/// The principal named in a JWT's claims (unverified: it is our own token).
pub fn principal_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let name = text("upn")
        .or_else(|| text("preferred_username"))
        .or_else(|| text("unique_name"))
        .or_else(|| {
            text("appid")
                .or_else(|| text("azp"))
                .map(|a| format!("app:{a}"))
        })?;
    Some(match text("oid") {
        Some(oid) => format!("{name} (oid {oid})"),
        None => name,
    })
}

/// A fresh random token (128 bits from the system's secure random source, hex):
/// the embedded cloud's per-run token, or `emulator serve`'s when none is given.
pub fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    lifeboat_core::id::hex(&bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_principal_comes_from_the_tokens_claims() {
        use base64::Engine as _;
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let jwt = |claims| {
            format!(
                "{}.{}.sig",
                enc(serde_json::json!({"alg": "RS256"})),
                enc(claims)
            )
        };
        assert_eq!(
            super::principal_of(&jwt(
                serde_json::json!({"upn": "j.devries@cwz.nl", "oid": "42"})
            )),
            Some("j.devries@cwz.nl (oid 42)".into())
        );
        assert_eq!(
            super::principal_of(&jwt(serde_json::json!({"appid": "a-b-c"}))),
            Some("app:a-b-c".into())
        );
        assert_eq!(super::principal_of("0123456789abcdef:default"), None);
    }

    use super::*;

    #[test]
    fn explicit_modes_name_what_is_missing() {
        // SAFETY-free: these variables are unlikely to be set in a test run.
        if std::env::var("AZURE_CLIENT_SECRET").is_err() {
            let e =
                Credential::for_mode(AuthMode::ServicePrincipal, "https://management.azure.com")
                    .unwrap_err();
            assert!(e.to_string().contains("AZURE_CLIENT_SECRET"), "{e}");
        }
        if std::env::var("SYSTEM_ACCESSTOKEN").is_err() {
            let e = Credential::for_mode(AuthMode::Pipelines, "https://management.azure.com")
                .unwrap_err();
            assert!(e.to_string().contains("SYSTEM_ACCESSTOKEN"), "{e}");
            assert!(
                e.to_string().contains(
                    "`env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) }` (no task sets it)"
                ),
                "{e}"
            );
        }
    }
}
