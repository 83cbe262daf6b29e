#!/usr/bin/env python3
"""Validate pipeline documents (JSON, converted from YAML by tests/it/pipelines.rs)
against Microsoft's Azure Pipelines schema (draft-07). Usage:
    validate.py SCHEMA DOC.json [DOC.json ...]
Prints each violation with its path; exits 1 if there is any.

Azure Pipelines reads every YAML scalar as a string, and the schema is written for
that (`always`, `timeoutInMinutes` are strings to it; its `boolean` is a set of
string patterns). So the documents carry scalars as strings, as the VS Code
extension sees them, and a task input the schema types `boolean` or `integer`
accepts the string forms Azure Pipelines accepts for it."""
import json
import re
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
base = jsonschema.Draft7Validator.TYPE_CHECKER
checker = base.redefine_many({
    "boolean": lambda c, v: base.is_type(v, "boolean")
    or (isinstance(v, str) and v.lower() in ("true", "false", "y", "n", "yes", "no", "on", "off")),
    "integer": lambda c, v: base.is_type(v, "integer") or (isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v) is not None),
    "number": lambda c, v: base.is_type(v, "number") or (isinstance(v, str) and re.fullmatch(r"-?[0-9.]+", v) is not None),
})
Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, type_checker=checker)
validator = Validator(schema)
bad = 0
for path in sys.argv[2:]:
    doc = json.load(open(path))
    errors = list(validator.iter_errors(doc))
    for e in errors:
        # The root is a oneOf of pipeline shapes: show the deepest causes.
        leaves = []
        todo = [e]
        while todo:
            x = todo.pop()
            todo.extend(x.context)
            if not x.context:
                leaves.append(x)
        depth = max(len(x.absolute_path) for x in leaves)
        shown = sorted({("/".join(str(p) for p in x.absolute_path), x.message[:200]) for x in leaves if len(x.absolute_path) == depth})
        for where, message in shown[:5]:
            print(f"{path}: /{where}: {message}")
    bad += len(errors)
    if not errors:
        print(f"{path}: valid")
sys.exit(1 if bad else 0)
