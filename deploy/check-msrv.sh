#!/usr/bin/env bash
# Fails when a workspace crate does not inherit the workspace's rust-version, or when a package
# in the dependency graph declares a newer one. Newer std APIs in our own code are caught by
# clippy's incompatible_msrv lint (`cargo clippy -- -D warnings`), which reads the same value.
set -euo pipefail
cd "$(dirname "$0")/.."

metadata=$(mktemp)
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 --locked >"$metadata"

python3 - "$metadata" <<'PY'
import json
import re
import sys


def version(v):
    parts = [int(x) for x in re.findall(r"\d+", v)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


with open("Cargo.toml") as f:
    declared = re.search(r'^rust-version\s*=\s*"([^"]+)"', f.read(), re.M)
if not declared:
    sys.exit("check-msrv: no rust-version in [workspace.package] of Cargo.toml")
msrv = declared.group(1)

with open(sys.argv[1]) as f:
    meta = json.load(f)
members = set(meta["workspace_members"])
problems = []
for p in meta["packages"]:
    rv = p.get("rust_version")
    name = p["name"]
    if p["id"] in members:
        if rv is None or version(rv) != version(msrv):
            problems.append(
                f"{name} declares rust-version {rv}, not the workspace's {msrv}: "
                "add rust-version.workspace = true"
            )
    elif rv is not None and version(rv) > version(msrv):
        problems.append(
            f"dependency {name} {p['version']} needs Rust {rv}, newer than the workspace's {msrv}"
        )
if problems:
    sys.exit("check-msrv:\n  " + "\n  ".join(problems))
print(f"check-msrv: rust-version {msrv} covers every workspace crate and dependency")
PY
