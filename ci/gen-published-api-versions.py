#!/usr/bin/env python3
"""Derive crates/emulator/src/published-api-versions.tsv from Microsoft's
published resource schemas (../shared/azure/schemas/published.json: every
type/apiVersion that azure-resource-manager-schemas or bicep-types-az publish,
MIT, provenance in tests/fixtures/azure/COPIED.md). One line per type,
lower-cased: `type<TAB>v1,v2,...`. The emulator refuses any other api-version
for these types, as ARM does."""
import json, sys, pathlib

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/azure/schemas/published.json")
out = pathlib.Path(__file__).resolve().parent.parent / "crates/emulator/src/published-api-versions.tsv"
d = json.loads(src.read_text())
types = {}
for t, versions in d["types"].items():
    types.setdefault(t.lower(), set()).update(versions)
lines = [f"# derived from published.json (arm {d['_commits']['arm']}, bicep {d['_commits']['bicep']}) by ci/gen-published-api-versions.py"]
lines += [f"{t}\t{','.join(sorted(v))}" for t, v in sorted(types.items())]
out.write_text("\n".join(lines) + "\n")
print(f"{out}: {len(types)} types")
