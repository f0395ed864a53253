//! `deploy/`: what an operator installs must be valid before it reaches a cluster.
//!
//! - The Kubernetes manifests validate against Kubernetes' own OpenAPI schemas (strict: unknown
//!   fields refused) with `kubernetes-validate` (PyPI; the schemas ship inside the package, so it
//!   works offline), for the oldest and the newest Kubernetes version supported; broken copies of
//!   the StatefulSet are refused (so the validator really validates).
//! - The manifests agree with the ccdc.toml of their ConfigMap (grace period longer than
//!   `shutdown_timeout`, probe port = `observability.listen`, `state_dir` on the volume, every
//!   secret reference wired to the Secret), and that ccdc.toml passes `ccdc check-config`.
//! - The Prometheus rules pass `promtool check rules` and their unit tests
//!   (`deploy/prometheus/ccdc-rules.test.yaml`); every PromQL query of the Grafana dashboard
//!   parses (through promtool too).
//! - Every metric the rules and the dashboard use is on the `/metrics` page of a running ccdc:
//!   `tests/deploy_metrics.rs`.
//!
//! `scripts/test.sh` installs kubernetes-validate (pip) and promtool (Debian's `prometheus`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `program args`; a missing tool fails the test with how to install it.
fn run(program: &str, args: &[&str], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install} (scripts/test.sh does)"))
}

const VALIDATOR: &str = "pip install kubernetes-validate==1.37.0";
const PROMTOOL: &str = "apt-get install prometheus";

/// `kubernetes-validate --strict` for Kubernetes `version` on `files`.
fn kubernetes_validate(version: &str, files: &[PathBuf]) -> Output {
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "-k", version];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    run("python3", &args, VALIDATOR)
}

/// Every document of a YAML file, as JSON (PyYAML, which kubernetes-validate brings).
fn yaml(path: &Path) -> Vec<Value> {
    let out = run(
        "python3",
        &[
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
            &path.display().to_string(),
        ],
        VALIDATOR,
    );
    assert!(out.status.success(), "{}: {}", path.display(), text(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn k8s(name: &str) -> PathBuf {
    root().join("deploy/kubernetes").join(name)
}

/// The manifests kustomization.yaml applies, plus the Secret example (validated, never applied).
fn manifests() -> Vec<PathBuf> {
    let kustomization = &yaml(&k8s("kustomization.yaml"))[0];
    let mut files: Vec<PathBuf> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| k8s(r.as_str().expect("a file name")))
        .collect();
    files.push(k8s("secret.example.yaml"));
    // Every manifest of the directory is either applied or the Secret example: none forgotten.
    let on_disk: BTreeSet<PathBuf> = std::fs::read_dir(k8s(""))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    assert_eq!(
        on_disk,
        files.iter().cloned().collect(),
        "kustomization.yaml resources"
    );
    files
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas_and_broken_ones_do_not() {
    let files = manifests();
    for version in ["1.30.0", "1.37.0"] {
        let out = kubernetes_validate(version, &files);
        let said = text(&out);
        assert!(out.status.success(), "Kubernetes {version}:\n{said}");
        assert_eq!(
            said.matches(" passed for resource ").count(),
            files.len(),
            "{said}"
        );
        for kind in [
            "statefulset/ccdc",
            "poddisruptionbudget/ccdc",
            "service/ccdc",
        ] {
            assert!(said.contains(kind), "{kind} validated:\n{said}");
        }
    }

    // A wrong type, and a misspelt security setting that a lenient client would silently drop.
    let dir = tempfile::tempdir().unwrap();
    let statefulset = std::fs::read_to_string(k8s("statefulset.yaml")).unwrap();
    for (from, to, complaint) in [
        (
            "terminationGracePeriodSeconds: 40",
            "terminationGracePeriodSeconds: \"forty\"",
            "'forty' is not of type 'integer'",
        ),
        (
            "readOnlyRootFilesystem: true",
            "readOnlyRootFileSystem: true",
            "'readOnlyRootFileSystem' was unexpected",
        ),
    ] {
        assert!(statefulset.contains(from), "{from}");
        let broken = dir.path().join("statefulset.yaml");
        std::fs::write(&broken, statefulset.replace(from, to)).unwrap();
        let out = kubernetes_validate("1.37.0", &[broken]);
        assert!(!out.status.success(), "{to} accepted:\n{}", text(&out));
        assert!(text(&out).contains(complaint), "{}", text(&out));
    }

    // The ServiceMonitor (a CRD the validator has no schema for) selects the Service's port.
    let monitor = &yaml(&k8s("optional/servicemonitor.yaml"))[0];
    let service = &yaml(&k8s("service.yaml"))[0];
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
}

/// The ccdc.toml of the ConfigMap.
fn configmap_toml() -> String {
    let cm = &yaml(&k8s("configmap.yaml"))[0];
    cm["data"]["ccdc.toml"]
        .as_str()
        .expect("ccdc.toml")
        .to_string()
}

/// The value of `key = "..."` in a TOML text (first occurrence).
fn toml_string(toml: &str, key: &str) -> String {
    toml.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("`{key}` in ccdc.toml"))
        .to_string()
}

/// Every `{ <kind> = "..." }` reference of a TOML text.
fn references(toml: &str, kind: &str) -> BTreeSet<String> {
    toml.split(&format!("{{ {kind} = \""))
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_statefulset_agrees_with_its_ccdc_toml_which_passes_check_config() {
    let toml = configmap_toml();
    let sts = &yaml(&k8s("statefulset.yaml"))[0];
    let pod = &sts["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    // Every replica knows how many share the sources, and which one it is (its pod ordinal).
    let env_value = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_string)
    };
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(
        env_value("CCDC_REPLICAS"),
        Some(replicas.to_string()),
        "CCDC_REPLICAS must equal spec.replicas"
    );
    assert_eq!(
        env_value("CCDC_REPLICA_FROM_HOSTNAME").as_deref(),
        Some("true")
    );

    // SIGKILL only after ccdc's own bounded shutdown, with a margin.
    let shutdown = humantime::parse_duration(&toml_string(&toml, "shutdown_timeout")).unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= shutdown.as_secs() + 5,
        "grace {grace}s, shutdown_timeout {shutdown:?}"
    );

    // Probes and scraping reach observability.listen, which must accept remote addresses.
    let listen = toml_string(&toml, "listen");
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(listen, format!("0.0.0.0:{port}"));
    assert!(toml.contains("allow_remote = true"));
    let annotations = &sts["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(
            container[probe]["httpGet"]["port"],
            container["ports"][0]["name"]
        );
    }

    // state_dir is on the state volume, the only writable path.
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount = |name: &str| {
        mounts.iter().find(|m| m["name"] == name).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(toml_string(&toml, "state_dir").starts_with(&format!("{}/", mount("state"))));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // Every secret reference of ccdc.toml is wired to the Secret, and the Secret example has
    // every key the StatefulSet reads.
    let env: Vec<&Value> = container["env"].as_array().unwrap().iter().collect();
    let mut keys = BTreeSet::new();
    for name in references(&toml, "env") {
        let var = env.iter().find(|e| e["name"] == name.as_str());
        let key = &var.unwrap_or_else(|| panic!("env {name}"))["valueFrom"]["secretKeyRef"];
        assert_eq!(key["name"], "ccdc-secrets", "{name}");
        keys.insert(key["key"].as_str().unwrap().to_string());
    }
    let secret_dir = mount("secrets");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets");
    let items = volume.unwrap()["secret"]["items"].as_array().unwrap();
    let files = references(&toml, "file");
    assert!(
        !files.is_empty(),
        "the example shows a {{ file }} reference too"
    );
    for file in &files {
        let item = file
            .strip_prefix(&format!("{secret_dir}/"))
            .unwrap_or_else(|| panic!("{file} is not under the Secret's mount {secret_dir}"));
        let found = items.iter().find(|i| i["path"] == item);
        keys.insert(
            found.unwrap_or_else(|| panic!("{item}"))["key"]
                .as_str()
                .unwrap()
                .into(),
        );
    }
    let example = &yaml(&k8s("secret.example.yaml"))[0];
    let given: BTreeSet<String> = example["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, given, "the Secret's keys");

    // check-config on the very text, with dummy secrets at the referenced names and files.
    let dir = tempfile::tempdir().unwrap();
    for file in &files {
        let name = Path::new(file).file_name().unwrap();
        std::fs::write(dir.path().join(name), "dummy-secret").unwrap();
    }
    let local = toml.replace(
        &format!("{secret_dir}/"),
        &format!("{}/", dir.path().display()),
    );
    let config = dir.path().join("ccdc.toml");
    std::fs::write(&config, local).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccdc"));
    cmd.args(["check-config", "--config"]).arg(&config);
    for name in references(&toml, "env") {
        cmd.env(name, "dummy-secret");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(": ok"), "{}", text(&out));
}

fn prometheus(name: &str) -> String {
    root()
        .join("deploy/prometheus")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let out = run(
        "promtool",
        &["check", "rules", &prometheus("ccdc-rules.yaml")],
        PROMTOOL,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        "promtool",
        &["test", "rules", &prometheus("ccdc-rules.test.yaml")],
        PROMTOOL,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));

    // promtool does refuse a broken expression.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(prometheus("ccdc-rules.yaml")).unwrap();
    let broken = dir.path().join("rules.yaml");
    std::fs::write(
        &broken,
        rules.replace("ccdc_feed_failed == 1", "ccdc_feed_failed =="),
    )
    .unwrap();
    let out = run(
        "promtool",
        &["check", "rules", &broken.display().to_string()],
        PROMTOOL,
    );
    assert!(!out.status.success(), "{}", text(&out));
}

fn dashboard() -> Value {
    let path = root().join("deploy/grafana/ccdc.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("dashboard JSON")
}

/// Every query of the dashboard, with Grafana's variables given plain values.
fn dashboard_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let plain = expr
                .replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
                .replace("$source", ".*");
            out.push((format!("{} / {}", p["title"], t["refId"]), plain));
        }
    }
    out
}

#[test]
fn the_dashboard_is_grafana_json_whose_queries_parse() {
    let d = dashboard();
    let panels = d["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels {
        assert!(
            p["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24),
            "{}",
            p["title"]
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{}",
                p["title"]
            );
        }
    }
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance", "source"]);

    // promtool parses every query, as the expression of a recording rule.
    let queries = dashboard_queries();
    assert!(queries.len() > 20);
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        rules += &format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules).unwrap();
    let out = run(
        "promtool",
        &["check", "rules", &file.display().to_string()],
        PROMTOOL,
    );
    assert!(out.status.success(), "{queries:#?}\n{}", text(&out));
}
