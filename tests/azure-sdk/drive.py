#!/usr/bin/env python3
"""Microsoft's Azure SDK for Python drives the embedded cloud through the calls a
user's script and lifeboat make, and judges it: each check passes only where Azure
would answer the same (status codes, synchronous vs long-running, read-only
fields, collections and paging, refusals). Run by tests/it/azure_sdk.rs:

    drive.py ENDPOINT TOKEN SUBSCRIPTION

Prints one line per check and exits 1 if any failed. Needs nothing but the SDK
packages in tests/azure-sdk/requirements.txt (ci/test installs them).
"""
import sys
import time
import traceback

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest

ENDPOINT, TOKEN, SUB = sys.argv[1], sys.argv[2], sys.argv[3]
LOC = "westeurope"
RG = "sdk-judge-rg"


class Token:
    """A TokenCredential for the emulator's bearer token."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(TOKEN, int(time.time()) + 3600)


class Bearer(SansIOHTTPPolicy):
    """The emulator listens on plain HTTP on loopback; the SDK's own bearer policy
    refuses to send a token without TLS, so this one sets the header."""

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {TOKEN}"


def client(cls, **kw):
    return cls(
        Token(),
        SUB,
        base_url=ENDPOINT,
        authentication_policy=Bearer(),
        polling_interval=0.01,
        **kw,
    )


def _emulator_time():
    """Scale the SDK's Retry-After waits by the clock the emulator announces
    (`x-lifeboat-time-scale`), as lifeboat's own client does; against Azure
    (no header) nothing changes."""
    from azure.core.polling import base_polling

    unscaled = base_polling._SansIOLROBasePolling._extract_delay

    def scaled(self):
        delay = unscaled(self)
        header = self._pipeline_response.http_response.headers.get("x-lifeboat-time-scale")
        return delay * float(header) if header else delay

    base_polling._SansIOLROBasePolling._extract_delay = scaled


_emulator_time()
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            results.append((name, detail))
            print(f"FAIL {name}: {detail}", flush=True)
        return fn

    return wrap


def expect_error(fn, code, status=None):
    try:
        fn()
    except HttpResponseError as e:
        got = e.error.code if e.error else None
        assert got == code, f"expected {code}, got {got} ({e.status_code})"
        if status is not None:
            assert e.status_code == status, f"expected HTTP {status}, got {e.status_code}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


from azure.mgmt.resource import ResourceManagementClient  # noqa: E402
from azure.mgmt.network import NetworkManagementClient  # noqa: E402
from azure.mgmt.compute import ComputeManagementClient  # noqa: E402
from azure.mgmt.storage import StorageManagementClient  # noqa: E402
from azure.mgmt.keyvault import KeyVaultManagementClient  # noqa: E402
from azure.mgmt.msi import ManagedServiceIdentityClient  # noqa: E402
from azure.mgmt.resourcegraph import ResourceGraphClient  # noqa: E402
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions  # noqa: E402

res = client(ResourceManagementClient)
net = client(NetworkManagementClient)
cmp = client(ComputeManagementClient)
sto = client(StorageManagementClient)
kvm = client(KeyVaultManagementClient)
msi = client(ManagedServiceIdentityClient)
arg = ResourceGraphClient(Token(), base_url=ENDPOINT, authentication_policy=Bearer())
rg_id = f"/subscriptions/{SUB}/resourceGroups/{RG}"


@check("resource group: create, exists (HEAD), get, ARM's id casing")
def _():
    g = res.resource_groups.create_or_update(RG, {"location": LOC})
    assert g.id == rg_id, g.id
    assert res.resource_groups.check_existence(RG) is True
    assert res.resource_groups.check_existence("sdk-judge-missing") is False
    assert res.resource_groups.get(RG).properties.provisioning_state == "Succeeded"


@check("resource group: list pages and PATCH of tags")
def _():
    for i in range(3):
        res.resource_groups.create_or_update(f"sdk-judge-extra{i}", {"location": LOC})
    names = [g.name for g in res.resource_groups.list(top=2)]
    assert RG in names and "sdk-judge-extra2" in names, names
    g = res.resource_groups.update(RG, {"tags": {"owner": "sdk"}})
    assert g.tags == {"owner": "sdk"}, g.tags
    assert res.resource_groups.get(RG).tags == {"owner": "sdk"}


@check("a read in a missing group is ResourceGroupNotFound")
def _():
    try:
        net.virtual_networks.get("sdk-judge-missing", "v")
    except ResourceNotFoundError as e:
        assert e.error.code == "ResourceGroupNotFound", e.error.code
        return
    raise AssertionError("found")


@check("an api-version Azure does not publish is refused and creates nothing")
def _():
    url = f"{rg_id}/providers/Microsoft.Network/virtualNetworks/sdk-judge-future?api-version=2099-01-01"
    r = net._client.send_request(
        HttpRequest("PUT", ENDPOINT + url, json={"location": LOC, "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}})
    )
    assert r.status_code == 400, r.status_code
    assert r.json()["error"]["code"] == "NoRegisteredProviderFound", r.text()
    try:
        net.virtual_networks.get(RG, "sdk-judge-future")
    except ResourceNotFoundError:
        return
    raise AssertionError("the refused PUT created the network")


@check("NSG: long-running create, default rules, resourceGuid, etag")
def _():
    nsg = net.network_security_groups.begin_create_or_update(
        RG,
        "sdk-nsg",
        {
            "location": LOC,
            "security_rules": [
                {"name": "allow-https", "protocol": "Tcp", "source_address_prefix": "10.0.0.0/8",
                 "source_port_range": "*", "destination_address_prefix": "*", "destination_port_range": "443",
                 "access": "Allow", "priority": 100, "direction": "Inbound"}
            ],
        },
    ).result()
    assert nsg.provisioning_state == "Succeeded"
    assert len(nsg.default_security_rules) == 6, len(nsg.default_security_rules)
    assert nsg.resource_guid and nsg.etag
    assert [r.name for r in nsg.security_rules] == ["allow-https"]


@check("NSG: a rule PUT as a child appears in the NSG's GET; a duplicate priority is refused")
def _():
    net.security_rules.begin_create_or_update(
        RG, "sdk-nsg", "deny-rdp",
        {"protocol": "Tcp", "source_address_prefix": "*", "source_port_range": "*",
         "destination_address_prefix": "*", "destination_port_range": "3389",
         "access": "Deny", "priority": 110, "direction": "Inbound"},
    ).result()
    names = sorted(r.name for r in net.network_security_groups.get(RG, "sdk-nsg").security_rules)
    assert names == ["allow-https", "deny-rdp"], names
    assert sorted(r.name for r in net.security_rules.list(RG, "sdk-nsg")) == names
    expect_error(
        lambda: net.security_rules.begin_create_or_update(
            RG, "sdk-nsg", "clash",
            {"protocol": "Tcp", "source_address_prefix": "*", "source_port_range": "*",
             "destination_address_prefix": "*", "destination_port_range": "22",
             "access": "Deny", "priority": 110, "direction": "Inbound"},
        ).result(),
        "SecurityRuleConflict",
        400,
    )


@check("VNet: subnets inline and as children, subnet list, a subnet outside the space refused")
def _():
    v = net.virtual_networks.begin_create_or_update(
        RG, "sdk-vnet",
        {"location": LOC, "address_space": {"address_prefixes": ["10.20.0.0/16"]},
         "subnets": [{"name": "a", "address_prefix": "10.20.1.0/24"}]},
    ).result()
    assert v.resource_guid and v.etag and [s.name for s in v.subnets] == ["a"]
    assert v.subnets[0].id == f"{rg_id}/providers/Microsoft.Network/virtualNetworks/sdk-vnet/subnets/a"
    net.subnets.begin_create_or_update(RG, "sdk-vnet", "b", {"address_prefix": "10.20.2.0/24"}).result()
    assert sorted(s.name for s in net.virtual_networks.get(RG, "sdk-vnet").subnets) == ["a", "b"]
    assert sorted(s.name for s in net.subnets.list(RG, "sdk-vnet")) == ["a", "b"]
    expect_error(
        lambda: net.subnets.begin_create_or_update(RG, "sdk-vnet", "far", {"address_prefix": "10.99.0.0/24"}).result(),
        "NetcfgSubnetRangeOutsideVnet",
        400,
    )


@check("VNet: peering appears inline in its VNet; tags PATCH; list and list_all")
def _():
    net.virtual_networks.begin_create_or_update(
        RG, "sdk-hub", {"location": LOC, "address_space": {"address_prefixes": ["10.30.0.0/16"]}}
    ).result()
    hub_id = f"{rg_id}/providers/Microsoft.Network/virtualNetworks/sdk-hub"
    net.virtual_network_peerings.begin_create_or_update(
        RG, "sdk-vnet", "to-hub", {"remote_virtual_network": {"id": hub_id}, "allow_virtual_network_access": True}
    ).result()
    v = net.virtual_networks.get(RG, "sdk-vnet")
    assert [p.name for p in v.virtual_network_peerings] == ["to-hub"]
    t = net.virtual_networks.update_tags(RG, "sdk-vnet", {"tags": {"k": "v"}})
    assert t.tags == {"k": "v"}
    assert sorted(x.name for x in net.virtual_networks.list(RG)) == ["sdk-hub", "sdk-vnet"]
    assert {"sdk-hub", "sdk-vnet"} <= {x.name for x in net.virtual_networks.list_all()}


@check("NIC: a dynamic private IP from its subnet")
def _():
    subnet = f"{rg_id}/providers/Microsoft.Network/virtualNetworks/sdk-vnet/subnets/a"
    nic = net.network_interfaces.begin_create_or_update(
        RG, "sdk-nic", {"location": LOC, "ip_configurations": [{"name": "ipconfig1", "subnet": {"id": subnet}}]}
    ).result()
    ip = nic.ip_configurations[0].private_ip_address
    assert ip and ip.startswith("10.20.1."), ip


@check("storage: account endpoints; blob service and containers; synchronous delete")
def _():
    acct = sto.storage_accounts.begin_create(
        RG, "sdkjudgesa", {"location": LOC, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    ).result()
    assert acct.primary_endpoints.blob == "https://sdkjudgesa.blob.core.windows.net/", acct.primary_endpoints
    sto.blob_services.set_service_properties(RG, "sdkjudgesa", {"delete_retention_policy": {"enabled": True, "days": 7}})
    sto.blob_containers.create(RG, "sdkjudgesa", "logs", {})
    assert [c.name for c in sto.blob_containers.list(RG, "sdkjudgesa")] == ["logs"]
    sto.storage_accounts.delete(RG, "sdkjudgesa")
    try:
        sto.storage_accounts.get_properties(RG, "sdkjudgesa")
    except ResourceNotFoundError:
        return
    raise AssertionError("still there after a synchronous delete")


@check("Key Vault: vaultUri, a key PUT answered 200 with keyUri, synchronous delete")
def _():
    v = kvm.vaults.begin_create_or_update(
        RG, "sdk-judge-kv",
        {"location": LOC, "properties": {"tenant_id": "00000000-0000-0000-0000-000000000000",
                                          "sku": {"family": "A", "name": "standard"}, "enable_rbac_authorization": True}},
    ).result()
    assert v.properties.vault_uri == "https://sdk-judge-kv.vault.azure.net/", v.properties.vault_uri
    k = kvm.keys.create_if_not_exist(RG, "sdk-judge-kv", "disk", {"properties": {"kty": "RSA", "key_size": 3072}})
    assert k.key_uri == "https://sdk-judge-kv.vault.azure.net/keys/disk", k.key_uri
    assert [x.name for x in kvm.keys.list(RG, "sdk-judge-kv")] == ["disk"]
    kvm.vaults.delete(RG, "sdk-judge-kv")


@check("managed identity: synchronous create with principalId, synchronous delete")
def _():
    i = msi.user_assigned_identities.create_or_update(RG, "sdk-id", {"location": LOC})
    assert i.principal_id and i.client_id
    msi.user_assigned_identities.delete(RG, "sdk-id")


@check("disks: timeCreated, uniqueId, diskState; an encryption type unlike its set's is refused")
def _():
    d = cmp.disks.begin_create_or_update(
        RG, "sdk-disk", {"location": LOC, "sku": {"name": "Premium_LRS"}, "creation_data": {"create_option": "Empty"}, "disk_size_gb": 32}
    ).result()
    assert d.time_created and d.unique_id and d.disk_state == "Unattached", (d.time_created, d.unique_id, d.disk_state)
    des = cmp.disk_encryption_sets.begin_create_or_update(
        RG, "sdk-des",
        {"location": LOC, "identity": {"type": "SystemAssigned"}, "encryption_type": "EncryptionAtRestWithPlatformAndCustomerKeys",
         "active_key": {"key_url": "https://sdk-judge-kv.vault.azure.net/keys/disk/0"}},
    ).result()
    expect_error(
        lambda: cmp.disks.begin_create_or_update(
            RG, "sdk-cmk-disk",
            {"location": LOC, "sku": {"name": "Premium_LRS"}, "creation_data": {"create_option": "Empty"}, "disk_size_gb": 32,
             "encryption": {"type": "EncryptionAtRestWithCustomerKey", "disk_encryption_set_id": des.id}},
        ).result(),
        "InvalidParameter",
        400,
    )


@check("VM: vmId, OS disk name, instance view with displayStatus, deallocate and start, list")
def _():
    nic_id = f"{rg_id}/providers/Microsoft.Network/networkInterfaces/sdk-nic"
    vm = cmp.virtual_machines.begin_create_or_update(
        RG, "sdk-vm",
        {"location": LOC, "hardware_profile": {"vm_size": "Standard_D2s_v5"},
         "storage_profile": {"image_reference": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                                                 "sku": "2022-datacenter-azure-edition", "version": "latest"},
                             "os_disk": {"create_option": "FromImage"}},
         "os_profile": {"computer_name": "sdkvm", "admin_username": "azureuser", "admin_password": "Pa55w.rd-Judge-1",
                        "windows_configuration": {}},
         "network_profile": {"network_interfaces": [{"id": nic_id}]}},
    ).result()
    assert vm.vm_id and vm.storage_profile.os_disk.name, (vm.vm_id, vm.storage_profile.os_disk.name)
    v = cmp.virtual_machines.get(RG, "sdk-vm", expand="instanceView")
    assert [s.display_status for s in v.instance_view.statuses] == ["Provisioning succeeded", "VM running"], v.instance_view.statuses
    cmp.virtual_machines.begin_deallocate(RG, "sdk-vm").result()
    iv = cmp.virtual_machines.instance_view(RG, "sdk-vm")
    assert iv.statuses[1].code == "PowerState/deallocated", iv.statuses[1].code
    cmp.virtual_machines.begin_start(RG, "sdk-vm").result()
    assert [x.name for x in cmp.virtual_machines.list(RG)] == ["sdk-vm"]
    expect_error(
        lambda: cmp.virtual_machines.begin_create_or_update(
            RG, "sdk-long-name-vm",
            {"location": LOC, "hardware_profile": {"vm_size": "Standard_D2s_v5"},
             "storage_profile": {"os_disk": {"create_option": "FromImage"}},
             "os_profile": {"computer_name": "a-name-longer-than-15", "admin_username": "azureuser",
                            "admin_password": "Pa55w.rd-Judge-1", "windows_configuration": {}},
             "network_profile": {"network_interfaces": [{"id": nic_id}]}},
        ).result(),
        "InvalidParameter",
        400,
    )


@check("compute usages: vCPUs by family, deallocated VMs counted")
def _():
    usage = {u.name.value: u for u in cmp.usage.list(LOC)}
    assert usage["cores"].current_value >= 2, usage["cores"].current_value
    ds = usage["standardDSv5Family"]
    assert ds.current_value == 2 and ds.limit >= 2 and ds.unit == "Count", (ds.current_value, ds.limit, ds.unit)


@check("resource SKUs: sizes with their capabilities, filtered by location")
def _():
    skus = list(cmp.resource_skus.list(filter=f"location eq '{LOC}'"))
    d2 = [s for s in skus if s.name == "Standard_D2s_v5"]
    assert d2 and d2[0].resource_type == "virtualMachines" and d2[0].family == "standardDSv5Family", d2
    caps = {c.name: c.value for c in d2[0].capabilities}
    assert caps["vCPUs"] == "2" and caps["MemoryGB"] == "8", caps
    assert all(LOC in s.locations for s in skus)


@check("Resource Graph: tables, types, inline children, project")
def _():
    time.sleep(0.5)  # the emulator's indexing lag, in its time
    q = lambda text: arg.resources(QueryRequest(subscriptions=[SUB], query=text, options=QueryRequestOptions(result_format="objectArray")))
    rows = q(f"resources | where resourceGroup =~ '{RG}' | project id, type").data
    assert all(set(r) == {"id", "type"} for r in rows), rows[:2]
    types = {r["type"] for r in rows}
    assert "microsoft.network/virtualnetworks" in types
    assert not any(t.endswith("/subnets") or t.endswith("/securityrules") or t.endswith("/keys") for t in types), types
    assert "microsoft.resources/subscriptions/resourcegroups" not in types
    groups = q(f"resourcecontainers | where name =~ '{RG}' | project id, type").data
    assert groups == [{"id": rg_id, "type": "microsoft.resources/subscriptions/resourcegroups"}], groups
    vnet = q(f"resources | where name =~ 'sdk-vnet' | project properties").data[0]
    assert sorted(s["name"] for s in vnet["properties"]["subnets"]) == ["a", "b"]
    try:
        q("authorizationresources | union resources")
    except HttpResponseError:
        return
    raise AssertionError("a union with authorizationresources was answered")


@check("resource group: long-running delete")
def _():
    res.resource_groups.begin_delete(RG).result()
    assert res.resource_groups.check_existence(RG) is False


failed = [n for n, d in results if d]
print(f"{len(results) - len(failed)} of {len(results)} checks passed", flush=True)
sys.exit(1 if failed else 0)
