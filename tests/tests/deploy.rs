//! deploy/ checked offline: the Kubernetes manifests against the API schemas, the systemd unit
//! with systemd-analyze, and deploy/.env.example against `srs-proxy --help`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use srs_e2e::*;

/// The Kubernetes version the manifests target (the `preStop` sleep action needs 1.30).
const KUBERNETES_VERSION: &str = "1.30.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `program`, failing the test with `install` when it is not installed.
fn run_tool(program: &str, cmd: &mut Command, install: &str) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} missing: {install} (or run bash deploy/setup.sh)")
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn kubernetes_manifests_pass_the_schema_validator() {
    let dir = root().join("deploy/k8s");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .map(|e| e.expect("deploy/k8s entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        // Helm values files are chart input, not Kubernetes objects.
        .filter(|p| !p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 3, "too few manifests: {manifests:?}");

    let out = run_tool(
        "kubernetes-validate",
        // As a module: a freshly pip-installed script may not be on PATH (pyenv shims).
        Command::new("python3")
            .args([
                "-m",
                "kubernetes_validate",
                "--strict",
                "-k",
                KUBERNETES_VERSION,
            ])
            .args(&manifests),
        "pip install kubernetes-validate",
    );
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    // Every manifest was read and each of its objects passed.
    for m in &manifests {
        let name = m.to_string_lossy();
        assert!(
            report.contains(&format!("{name} passed")),
            "no pass for {name}:\n{report}"
        );
    }
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("deploy/srs-proxy.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/srs-proxy\n"),
        "{unit}"
    );
    // systemd-analyze checks that ExecStart exists: point it at the built binary.
    let dir = TempDir::new("systemd");
    let copy = dir.join("srs-proxy.service");
    let exec = format!("ExecStart={}\n", bin("srs-proxy").display());
    std::fs::write(
        &copy,
        unit.replace("ExecStart=/usr/local/bin/srs-proxy\n", &exec),
    )
    .expect("write unit");
    let out = run_tool(
        "systemd-analyze",
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy),
        "apt-get install systemd",
    );
    // It exits 0 on unknown keys and only warns, so any output is a finding.
    let report = text(&out);
    assert!(out.status.success() && report.trim().is_empty(), "{report}");
}

/// `(name, default)` of every `PROXY_*` row of `srs-proxy --help`; `(empty)` is "".
fn help_defaults() -> Vec<(String, String)> {
    let out = Command::new(bin("srs-proxy"))
        .arg("--help")
        .output()
        .expect("srs-proxy --help");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().filter(|w| w.starts_with("PROXY_"))?;
            let default = words.next().unwrap_or_default().replace("(empty)", "");
            Some((name.to_string(), default))
        })
        .collect()
}

#[test]
fn env_example_lists_every_variable_with_its_default() {
    let example = std::fs::read_to_string(root().join("deploy/.env.example")).expect("example");
    let listed: Vec<(String, String)> = example
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.trim_start().split_once('='))
        .filter(|(name, _)| name.starts_with("PROXY_"))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let help = help_defaults();
    assert!(help.len() >= 20, "too few variables in --help: {help:?}");
    assert_eq!(listed, help, "deploy/.env.example against srs-proxy --help");
}
