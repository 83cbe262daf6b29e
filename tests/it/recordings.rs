//! Protocol tests of the ARM client against real recorded Azure sessions
//! (`tests/fixtures/azure/recordings`, see its README): each recording is replayed by a
//! scripted HTTP peer on loopback, in order, and the test asserts which recorded
//! requests the client made, the waits it chose (Retry-After, or the 60 s default)
//! and the outcome. Synthetic scripts cover what no recording shows (429, 5xx,
//! connection resets, error bodies, concurrent PUTs on one resource).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lifeboat_core::id::ResourceId;
use lifeboat_engine::cloud::auth::Credential;
use lifeboat_engine::cloud::client::{ArmClient, ArmError, ClientConfig};
use serde_json::{Value, json};

const AZURE: &str = "https://management.azure.com";

#[derive(Debug, Clone)]
struct Entry {
    method: String,
    /// Path and query, as recorded (decoded).
    target: String,
    /// 0 = drop the connection without answering.
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn recordings() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/azure/recordings")
}

fn target_of(uri: &str) -> String {
    uri.strip_prefix(AZURE).unwrap_or(uri).to_string()
}

fn js(path: &str) -> Vec<Entry> {
    let text = std::fs::read_to_string(recordings().join(path)).expect("recording exists");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Entry {
            method: e["RequestMethod"].as_str().unwrap().into(),
            target: target_of(e["RequestUri"].as_str().unwrap()),
            status: e["StatusCode"].as_u64().unwrap() as u16,
            headers: e["ResponseHeaders"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
            body: match &e["ResponseBody"] {
                Value::Null => Vec::new(),
                Value::String(s) => s.clone().into_bytes(),
                other => serde_json::to_vec(other).unwrap(),
            },
        })
        .collect()
}

fn python(path: &str) -> Vec<Entry> {
    use yaml_rust2::{Yaml, YamlLoader};
    let text = std::fs::read_to_string(recordings().join(path)).expect("recording exists");
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let s = |y: &Yaml| y.as_str().unwrap_or("").to_string();
    docs[0]["interactions"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|i| Entry {
            method: s(&i["request"]["method"]),
            target: target_of(&s(&i["request"]["uri"])),
            status: i["response"]["status"]["code"].as_i64().unwrap() as u16,
            headers: i["response"]["headers"]
                .as_hash()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Yaml::Array(a) => a.first().map(s).unwrap_or_default(),
                        other => s(other),
                    };
                    (s(k), v)
                })
                .collect(),
            body: s(&i["response"]["body"]["string"]).into_bytes(),
        })
        .collect()
}

/// What the peer saw.
#[derive(Debug, Default)]
struct Log {
    /// Indexes of the entries served, in order.
    served: Vec<usize>,
    /// Requests that matched no entry.
    unexpected: Vec<String>,
}

struct Peer {
    base: String,
    log: Arc<Mutex<Log>>,
}

/// Serve `entries` in order. `strict`: every request must be the next entry;
/// otherwise later entries may be skipped (SDK calls lifeboat does not make).
async fn peer(entries: Vec<Entry>, strict: bool) -> Peer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let state = Arc::new(Mutex::new(0usize));
    let (l2, b2) = (log.clone(), base.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (entries, log, state, base) =
                (entries.clone(), l2.clone(), state.clone(), b2.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (entries, log, state, base) =
                        (entries.clone(), log.clone(), state.clone(), base.clone());
                    async move {
                        let method = req.method().to_string();
                        let target = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let _ = req.into_body().collect().await;
                        let found = {
                            let mut cursor = state.lock().unwrap();
                            let limit = if strict {
                                (*cursor + 1).min(entries.len())
                            } else {
                                entries.len()
                            };
                            let hit = (*cursor..limit).find(|&i| {
                                entries[i].method == method
                                    && entries[i].target.eq_ignore_ascii_case(&target)
                            });
                            match hit {
                                Some(i) => {
                                    *cursor = i + 1;
                                    log.lock().unwrap().served.push(i);
                                    Some(entries[i].clone())
                                }
                                None => {
                                    log.lock()
                                        .unwrap()
                                        .unexpected
                                        .push(format!("{method} {target}"));
                                    None
                                }
                            }
                        };
                        let Some(e) = found else {
                            return Ok::<_, std::io::Error>(
                                hyper::Response::builder()
                                    .status(418)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            );
                        };
                        if e.status == 0 {
                            return Err(std::io::Error::other("scripted connection reset"));
                        }
                        let mut resp = hyper::Response::builder().status(e.status);
                        for (k, v) in &e.headers {
                            if k.eq_ignore_ascii_case("content-length")
                                || k.eq_ignore_ascii_case("transfer-encoding")
                            {
                                continue;
                            }
                            resp = resp.header(k.as_str(), v.replace(AZURE, &base));
                        }
                        Ok(resp.body(Full::new(Bytes::from(e.body))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), Infallible>(())
    });
    Peer { base, log }
}

fn client(p: &Peer) -> ArmClient {
    let mut cfg = ClientConfig::azure(&p.base);
    cfg.time_scale = 0.0005; // 60 s default poll = 30 ms
    cfg.record_waits = true;
    cfg.retry.base = Duration::from_millis(200);
    ArmClient::new(
        cfg,
        Credential::Static {
            token: "t".into(),
            source: "test",
        },
    )
}

fn waits(c: &ArmClient) -> Vec<u64> {
    c.stats
        .waits
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_secs())
        .collect()
}

fn id(s: &str) -> ResourceId {
    ResourceId::parse(s).unwrap()
}

fn served(p: &Peer) -> Vec<usize> {
    let log = p.log.lock().unwrap();
    assert!(
        log.unexpected.is_empty(),
        "requests not in the recording: {:?}",
        log.unexpected
    );
    log.served.clone()
}

const JS_RG: &str = "/subscriptions/azure_subscription_id/resourceGroups/myjstest";

#[tokio::test]
async fn vnet_create_polls_azure_async_operation_after_retry_after() {
    let p = peer(
        js("azure-sdk-for-js/network/recording_virtualnetworks_create_test.json"),
        true,
    )
    .await;
    let c = client(&p);
    let vnet = id(&format!(
        "{JS_RG}/providers/Microsoft.Network/virtualNetworks/virtualnetworkzzz"
    ));
    let body = json!({"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
    let initial = c.put(&vnet, "2022-07-01", &body).await.unwrap();
    assert_eq!(initial["properties"]["provisioningState"], "Updating");
    let got = c.get(&vnet, "2022-07-01").await.unwrap().unwrap();
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    assert_eq!(served(&p), vec![0, 1, 2]);
    assert_eq!(waits(&c), vec![3], "Retry-After: 3 on the PUT");
}

#[tokio::test]
async fn vm_create_chain_honours_every_retry_after_and_the_60s_default() {
    let p = peer(
        js("azure-sdk-for-js/compute/recording_virtualmachines_create_test.json"),
        true,
    )
    .await;
    let c = client(&p);
    let net = "2021-05-01";
    let vnet = id(&format!(
        "{JS_RG}/providers/Microsoft.Network/virtualNetworks/networknamex"
    ));
    let subnet = vnet.child("subnets", "subnetnamex");
    let nic = id(&format!(
        "{JS_RG}/providers/Microsoft.Network/networkInterfaces/interfacex"
    ));
    let vm = id(&format!(
        "{JS_RG}/providers/Microsoft.Compute/virtualMachines/virtualmachinex"
    ));
    c.put(&vnet, net, &json!({"location": "eastus"}))
        .await
        .unwrap();
    c.put(
        &subnet,
        net,
        &json!({"properties": {"addressPrefix": "10.0.0.0/24"}}),
    )
    .await
    .unwrap();
    c.put(&nic, net, &json!({"location": "eastus"}))
        .await
        .unwrap();
    let initial = c
        .put(&vm, "2022-03-01", &json!({"location": "eastus"}))
        .await
        .unwrap();
    assert_eq!(initial["properties"]["provisioningState"], "Creating");
    let got = c.get(&vm, "2022-03-01").await.unwrap().unwrap();
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    let all: Vec<usize> = (0..13).collect();
    assert_eq!(served(&p), all);
    // vnet: PUT RA 3, poll InProgress RA 10; subnet: RA 3; NIC: none (60 s default);
    // VM: RA 10, InProgress RA 50, then two InProgress without RA (60 s each).
    assert_eq!(waits(&c), vec![3, 10, 3, 60, 10, 50, 60, 60]);
    assert_eq!(c.stats.snapshot().poll, 8);
}

#[tokio::test]
async fn subnet_delete_prefers_azure_async_operation_over_location() {
    let entries = js("azure-sdk-for-js/network/recording_subnets_begindeleteandwait_test.json");
    assert!(
        entries[0]
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("location"))
    );
    let p = peer(entries, true).await;
    let c = client(&p);
    let subnet = id(&format!(
        "{JS_RG}/providers/Microsoft.Network/virtualNetworks/virtualnetworkzzz/subnets/subnetzzz"
    ));
    assert!(c.delete(&subnet, "2022-07-01").await.unwrap());
    // The poll went to .../operations/<id> (Azure-AsyncOperation), not operationResults.
    assert_eq!(served(&p), vec![0, 1]);
    assert_eq!(waits(&c), vec![10]);
}

#[tokio::test]
async fn delete_of_a_missing_vm_is_204_and_not_polled() {
    let p = peer(
        js("azure-sdk-for-js/compute/recording_virtualmachines_delete_test.json"),
        true,
    )
    .await;
    let c = client(&p);
    let vm = id(&format!(
        "{JS_RG}/providers/Microsoft.Compute/virtualMachines/virtualmachinex"
    ));
    assert!(
        !c.delete(&vm, "2022-03-01").await.unwrap(),
        "204 = already gone"
    );
    assert_eq!(served(&p), vec![0]);
    assert!(waits(&c).is_empty());
}

#[tokio::test]
async fn managed_disk_202_with_both_headers_polls_the_async_operation() {
    let p = peer(
        python("azure-sdk-for-python/compute/test_mgmt_managed_disks.test_empty_md.yaml"),
        true,
    )
    .await;
    let c = client(&p);
    let disk = id(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/test_mgmt_managed_disks_test_empty_md20c90f2a/providers/Microsoft.Compute/disks/my_disk_name",
    );
    let body = json!({"location": "westus", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 200}});
    let initial = c.put(&disk, "2019-11-01", &body).await.unwrap();
    assert_eq!(initial["properties"]["provisioningState"], "Updating");
    let got = c.get(&disk, "2019-11-01").await.unwrap().unwrap();
    assert_eq!(got["properties"]["diskSizeGB"], 20);
    assert_eq!(served(&p), vec![0, 1, 2]);
    assert_eq!(waits(&c), vec![60], "no Retry-After: the 60 s default");
}

#[tokio::test]
async fn resource_group_lifecycle_sync_put_and_location_polled_delete() {
    let entries =
        python("azure-sdk-for-python/resources/test_mgmt_resource.test_resource_groups.yaml");
    let p = peer(entries, false).await;
    let c = client(&p);
    let rg = id(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/test_mgmt_resource_test_resource_groups457f1050",
    );
    let created = c
        .put(&rg, "2019-10-01", &json!({"location": "westus"}))
        .await
        .unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    assert!(c.get(&rg, "2019-10-01").await.unwrap().is_some());
    assert!(c.delete(&rg, "2019-10-01").await.unwrap());
    // PUT 201 (no poll), GET, then DELETE 202 -> Location 202 -> 200. The SDK's HEAD,
    // list, PATCH and exportTemplate calls in between are not lifeboat's.
    assert_eq!(served(&p), vec![0, 1, 9, 10, 11]);
    assert_eq!(waits(&c), vec![60, 60]);
    assert_eq!(c.stats.snapshot().poll, 2);
}

fn scripted(
    method: &str,
    target: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: Value,
) -> Entry {
    Entry {
        method: method.into(),
        target: target.into(),
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        },
    }
}

const NSG: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg";
const NSG_OP: &str = "/subscriptions/s/providers/Microsoft.Network/locations/westeurope/operations/1?api-version=2024-05-01";

/// A resource body in a provisioning state.
fn state(s: &str) -> Value {
    json!({"properties": {"provisioningState": s}})
}

/// The NSG PUT that starts operation `NSG_OP`.
fn nsg_put_started() -> Entry {
    scripted(
        "PUT",
        &format!("{NSG}?api-version=2024-05-01"),
        201,
        &[
            ("Azure-AsyncOperation", &format!("{AZURE}{NSG_OP}")),
            ("Retry-After", "1"),
        ],
        json!({}),
    )
}

#[tokio::test]
async fn throttling_server_errors_and_resets_are_retried() {
    let get = format!("{NSG}?api-version=2024-05-01");
    let err = |code: &str| json!({"error": {"code": code, "message": "m"}});
    let p = peer(
        vec![
            scripted(
                "GET",
                &get,
                429,
                &[("Retry-After", "7")],
                err("TooManyRequests"),
            ),
            scripted("GET", &get, 503, &[], err("ServiceUnavailable")),
            scripted("GET", &get, 0, &[], Value::Null),
            scripted("GET", &get, 200, &[], json!({"name": "nsg"})),
        ],
        true,
    )
    .await;
    let c = client(&p);
    let got = c.get(&id(NSG), "2024-05-01").await.unwrap().unwrap();
    assert_eq!(got["name"], "nsg");
    assert_eq!(served(&p), vec![0, 1, 2, 3]);
    let s = c.stats.snapshot();
    assert_eq!((s.throttled, s.retries), (1, 3));
    assert_eq!(waits(&c)[0], 7, "the 429's Retry-After is honoured");
}

#[tokio::test]
async fn arm_errors_are_surfaced_verbatim_with_the_resource_id() {
    let put = format!("{NSG}?api-version=2024-05-01");
    let message = "Security rule has invalid Port range. Value provided: 99999. Value should be an integer OR integer range with '-' delimiter. Valid range 0-65535.";
    let p = peer(
        vec![scripted(
            "PUT",
            &put,
            400,
            &[],
            json!({"error": {"code": "SecurityRuleInvalidPortRange", "message": message}}),
        )],
        true,
    )
    .await;
    let c = client(&p);
    let e = c.put(&id(NSG), "2024-05-01", &json!({})).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ArmError::Api { status: 400, .. }));
    assert!(
        text.contains(NSG)
            && text.contains("SecurityRuleInvalidPortRange")
            && text.contains(message),
        "{text}"
    );
    assert_eq!(c.stats.snapshot().retries, 0, "a 400 is not retried");
}

#[tokio::test]
async fn failed_and_canceled_operations_carry_the_operation_error() {
    let p = peer(
        vec![
            nsg_put_started(),
            scripted("GET", NSG_OP, 200, &[], json!({"status": "Failed", "error": {"code": "NetcfgInvalidSubnet", "message": "Subnet is not valid."}})),
        ],
        true,
    )
    .await;
    let c = client(&p);
    let e = c.put(&id(NSG), "2024-05-01", &json!({})).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("NetcfgInvalidSubnet: Subnet is not valid."),
        "{e}"
    );
    assert!(e.to_string().contains(NSG));
}

#[tokio::test]
async fn a_resource_is_never_put_again_while_its_operation_runs() {
    let put = format!("{NSG}?api-version=2024-05-01");
    // Strict order: the second PUT only after the first operation finished.
    let p = peer(
        vec![
            nsg_put_started(),
            scripted(
                "GET",
                NSG_OP,
                200,
                &[("Retry-After", "1")],
                json!({"status": "InProgress"}),
            ),
            scripted("GET", NSG_OP, 200, &[], json!({"status": "Succeeded"})),
            scripted("PUT", &put, 200, &[], state("Succeeded")),
        ],
        true,
    )
    .await;
    let c = client(&p);
    let nsg = id(NSG);
    let body = json!({});
    let (a, b) = tokio::join!(
        c.put(&nsg, "2024-05-01", &body),
        c.put(&nsg, "2024-05-01", &body)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(served(&p), vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn a_lost_put_response_waits_for_the_resource_to_settle_before_retrying() {
    let put = format!("{NSG}?api-version=2024-05-01");
    let p = peer(
        vec![
            scripted("PUT", &put, 0, &[], Value::Null),
            scripted("GET", &put, 200, &[("Retry-After", "2")], state("Updating")),
            scripted("GET", &put, 200, &[], state("Succeeded")),
            scripted("PUT", &put, 200, &[], state("Succeeded")),
        ],
        true,
    )
    .await;
    let c = client(&p);
    c.put(&id(NSG), "2024-05-01", &json!({})).await.unwrap();
    assert_eq!(served(&p), vec![0, 1, 2, 3]);
}

/// Azure's time against any endpoint that does not announce itself: a client
/// that may discover the scale keeps 1.0 against a recorded Azure session (and
/// waits the recording's Retry-After in full), while the emulator's header is
/// adopted and a broken one ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_scales_only_for_an_endpoint_that_announces_the_emulator() {
    let entries =
        python("azure-sdk-for-python/resources/test_mgmt_resource.test_resource_groups.yaml");
    let p = peer(entries, false).await;
    let mut cfg = ClientConfig::azure(&p.base);
    cfg.discover_time_scale = true;
    let c = ArmClient::new(
        cfg,
        Credential::Static {
            token: "t".into(),
            source: "test",
        },
    );
    let rg = id(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/test_mgmt_resource_test_resource_groups457f1050",
    );
    c.put(&rg, "2019-10-01", &json!({"location": "westus"}))
        .await
        .unwrap();
    assert_eq!(
        c.time_scale(),
        1.0,
        "a recorded Azure session has no header"
    );

    let (base, dir) = crate::common::emulator("scale", "scale-token", 0.01, |_| {}).await;
    let mut cfg = ClientConfig::azure(&base);
    cfg.discover_time_scale = true;
    let c = ArmClient::new(cfg, Credential::emulator("scale-token", "scale"));
    assert_eq!(c.time_scale(), 1.0);
    let rg = id("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/scale");
    c.put(&rg, "2024-03-01", &json!({"location": "westeurope"}))
        .await
        .unwrap();
    assert_eq!(c.time_scale(), 0.01, "the emulator announces its clock");

    // Without discovery (an explicit --time-scale), the configured scale stays.
    let mut cfg = ClientConfig::azure(&base);
    cfg.time_scale = 0.5;
    let c = ArmClient::new(cfg, Credential::emulator("scale-token", "scale"));
    c.get(&rg, "2024-03-01").await.unwrap();
    assert_eq!(c.time_scale(), 0.5);
    let _ = std::fs::remove_dir_all(&dir);
}
