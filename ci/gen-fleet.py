#!/usr/bin/env python3
"""Write a lifeboat project with N generated hospitals (for benchmarks).

usage: ci/gen-fleet.py DIR N [FRONTENDS]

Each hospital has an HR export (hr/<id>.csv, STAFF rows, default 30) and a
roster admitting its SEH doctors and nurses: as many as it has front-ends (its
default maxUsers), the rest of the staff in departments no rule admits.

Tenants get disjoint /24 address spaces in 10.64.0.0/10, 8-40 front-ends each
(mean 24, like the example hospitals), and varied HiX versions and windows.
"""
import hashlib
import os
import sys

PLATFORM = """apiVersion: lifeboat/v1
kind: Platform
metadata: {{ name: Benchmark fleet }}
spec:
  subscriptionId: 3f2a9c1e-7b4d-4e8a-9c6f-2d1b0a8e5f71
  region: westeurope
  secondaryRegion: northeurope
  prefix: lb
  hub: {{ addressSpace: 10.0.0.0/22 }}
  domainControllers: {{ count: 2, size: Standard_D2s_v5 }}
  citrix:
    cloudConnectors: {{ count: 2, size: Standard_D2s_v5 }}
    storefront: {{ count: 2, size: Standard_D2s_v5 }}
    gateway: {{ count: 2, size: Standard_D4s_v5, mfa: required }}
  gallery: {{ name: lbgallery, hardeningScriptSha256: e4e47f5b6836687d37013d0f2f41d340fd3f8a5f4858ff58f83206372bea8d59 }}
  logRetentionDays: 90
  alerts: {{ email: [oncall@example.org] }}
  exceptions:
    - {{ rule: CIS-7.9, reason: "NetScaler VPX 14.1 marketplace image is Generation 1: no Trusted Launch", expires: 2099-12-31 }}
"""

TENANT = """apiVersion: lifeboat/v1
kind: Tenant
metadata:
  id: {id}
  name: Ziekenhuis {n}
spec:
  addressSpace: {cidr}
  hix: {{ version: "6.{minor}", hotfix: {hotfix}, clientSha256: {client}, hotfixSha256: {fix} }}
  frontends: {{ count: {fe}, size: Standard_D4s_v5 }}
  sql:
    size: Standard_E8ds_v5
    dataDiskGb: 1024
    restoreMode: norecovery
    restoreDelay: 30m
    rpoTargetMinutes: 15
  access:
    roster:
      hr: hr/{id}.csv
      include:
        - {{ department: [SEH], function: [arts, verpleegkundige] }}
  maintenanceWindow: {{ day: {day}, start: "22:00", hours: 6, timezone: Europe/Amsterdam }}
  costCenter: ZH-{n:04d}
  contacts:
    - {{ name: Dienstdoende ICT, email: ict{n}@example.org, phone: "+31 20 555 {n:04d}" }}
"""

DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def main():
    root, count = sys.argv[1], int(sys.argv[2])
    fixed_fe = int(sys.argv[3]) if len(sys.argv) > 3 else None
    os.makedirs(os.path.join(root, "tenants"), exist_ok=True)
    os.makedirs(os.path.join(root, "hr"), exist_ok=True)
    staff = int(os.environ.get("STAFF", "30"))
    with open(os.path.join(root, "platform.yaml"), "w") as f:
        f.write(PLATFORM.format())
    for n in range(count):
        tid = "h%03d" % n
        cidr = "10.%d.%d.0/24" % (64 + n // 256, n % 256)
        fe = fixed_fe or 8 + (n * 7) % 33
        with open(os.path.join(root, "hr", tid + ".csv"), "w") as f:
            f.write("employeeId,upn,displayName,department,function,startDate,endDate\n")
            for i in range(staff):
                dept, fn = ("SEH", ["arts", "verpleegkundige"][i % 2]) if i < fe else ("Finance", "controller")
                f.write(f"{i},p{i:03d}@{tid}.example.nl,Medewerker {i},{dept},{fn},2020-01-01,\n")
        with open(os.path.join(root, "tenants", tid + ".yaml"), "w") as f:
            f.write(TENANT.format(id=tid, n=n, cidr=cidr, minor=2 + n % 2, hotfix=40 + n % 17,
                client=hashlib.sha256(f"client-6.{2 + n % 2}".encode()).hexdigest(),
                fix=hashlib.sha256(f"hotfix-{40 + n % 17}".encode()).hexdigest(),
                                  fe=fe, day=DAYS[n % 7]))


if __name__ == "__main__":
    main()
