#!/usr/bin/env python3
"""Write crates/core/src/model/resource-skus.json: the VM sizes lifeboat knows, in the
shape of Azure's Resource SKUs API (`GET /subscriptions/{s}/providers/Microsoft.Compute/skus`,
`{"value":[{"resourceType":"virtualMachines","name",...,"capabilities":[...]}]}`).

It is the offline fallback and the embedded cloud's answer, not a capture of the live
API (there is no network here): each entry follows Microsoft's published size rules,
a size's vCPUs are the number in its name and its memory is a fixed ratio per series
(D: 4 GiB per vCPU, E: 8, F: 2; the B-series sizes are listed one by one). Families
are the quota families `usages` reports. Re-run after adding a series."""
import json, pathlib

LOCATIONS = ["westeurope", "northeurope"]
SERIES = [
    # (letter, features, version, GiB per vCPU, sizes)
    ("D", f, "v5", 4, [2, 4, 8, 16, 32, 48, 64, 96]) for f in ["", "d", "s", "ds", "as", "ads"]
] + [
    ("D", f, "v6", 4, [2, 4, 8, 16, 32, 48, 64, 96, 128]) for f in ["", "d", "s", "ds", "as", "ads"]
] + [
    ("E", f, "v5", 8, [2, 4, 8, 16, 20, 32, 48, 64, 96]) for f in ["", "d", "s", "ds", "as", "ads"]
] + [
    ("E", f, "v6", 8, [2, 4, 8, 16, 20, 32, 48, 64, 96, 128]) for f in ["", "d", "s", "ds", "as", "ads"]
] + [("F", "s", "v2", 2, [2, 4, 8, 16, 32, 48, 64, 72])]
B = {"B2s": (2, 4), "B2ms": (2, 8), "B4ms": (4, 16), "B8ms": (8, 32), "B12ms": (12, 48), "B16ms": (16, 64), "B20ms": (20, 80)}


def family(letter, features, version):
    return "standard" + letter + "".join(c.upper() for c in features if c in "ads") + version + "Family"


def sku(name, size, fam, vcpus, mem, premium):
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "size": size,
        "family": fam,
        "locations": LOCATIONS,
        "locationInfo": [{"location": l, "zones": ["1", "2", "3"], "zoneDetails": []} for l in LOCATIONS],
        "capabilities": [
            {"name": "vCPUs", "value": str(vcpus)},
            {"name": "MemoryGB", "value": str(mem)},
            {"name": "PremiumIO", "value": "True" if premium else "False"},
        ],
        "restrictions": [],
    }


out = []
for letter, features, version, ratio, sizes in SERIES:
    for n in sizes:
        size = f"{letter}{n}{features}_{version}"
        out.append(sku(f"Standard_{size}", size, family(letter, features, version), n, n * ratio, "s" in features))
for size, (vcpus, mem) in B.items():
    out.append(sku(f"Standard_{size}", size, "standardBSFamily", vcpus, mem, "s" in size))
out.sort(key=lambda s: s["name"])
path = pathlib.Path(__file__).resolve().parent.parent / "crates/core/src/model/resource-skus.json"
path.write_text(json.dumps({"value": out}, indent=1) + "\n")
print(f"{path}: {len(out)} sizes")
