#!/usr/bin/python3
"""Validates seccomp profiles against the OCI runtime spec's JSON schema.

Usage: validate-seccomp-profile.py SCHEMA_DIR PROFILE...
SCHEMA_DIR holds the runtime spec's schema/ (Debian: golang-github-opencontainers-specs-dev
installs it under /usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema).
A profile is what `linux.seccomp` of a runtime config holds. Exit 0 when all are valid;
else 1, naming the first error of each invalid one.
"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    schema_dir = pathlib.Path(sys.argv[1])
    linux_file = schema_dir / "config-linux.json"
    linux = json.loads(linux_file.read_text())
    schema = linux["linux"]["properties"]["seccomp"]
    # The seccomp schema refers to defs-linux.json and defs.json beside it.
    resolver = jsonschema.RefResolver(base_uri=linux_file.resolve().as_uri(), referrer=linux)
    validator = jsonschema.Draft4Validator(schema, resolver=resolver)
    bad = 0
    for name in sys.argv[2:]:
        profile = json.loads(pathlib.Path(name).read_text())
        errors = sorted(validator.iter_errors(profile), key=lambda e: list(e.path))
        if errors:
            bad += 1
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(top)"
            print(f"{name}: invalid at {where}: {e.message}", file=sys.stderr)
        else:
            print(f"{name}: valid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
