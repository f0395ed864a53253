//! The layering of `src/` (documented in `src/lib.rs`): every `crate::<module>` path in code (not in
//! comments) names a module of the same layer listed earlier, or of a lower layer. This is the check
//! that keeps the import graph free of cycles.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules, bottom to top, as `src/lib.rs` declares them. Within a layer, a module may use
/// the ones before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "secret",
            "retry",
            "vendor_time",
            "window",
            "event",
            "config",
        ],
    ),
    ("logic and storage", &["diff", "store", "shard"]),
    ("vendors", &["sources"]),
    (
        "pipeline",
        &[
            "observability",
            "avro",
            "registry",
            "sink",
            "encode",
            "kafka",
            "topics",
            "feed",
            "reports",
            "poller",
            "publisher",
            "checkpoint",
        ],
    ),
    (
        "wiring",
        &["alloc", "simulator", "cli", "app", "commands", "main"],
    ),
];

fn rank() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .flat_map(|(_, mods)| mods.iter())
        .enumerate()
        .map(|(i, m)| (*m, i))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::<module>` paths of `text`, leaving out comments.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
            rest = after;
        }
    }
    out
}

#[test]
fn no_module_imports_one_above_it() {
    let rank = rank();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let own = *rank
            .get(top.as_str())
            .unwrap_or_else(|| panic!("module `{top}` ({rel:?}) is missing from LAYERS"));
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(&text) {
            let Some(&r) = rank.get(used.as_str()) else {
                panic!("{rel:?} uses `crate::{used}`, which is not a module in LAYERS");
            };
            if r > own {
                violations.push(format!("{} imports crate::{used}", rel.display()));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "modules importing a module above them:\n{}",
        violations.join("\n")
    );
}

#[test]
fn every_module_of_lib_rs_is_in_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let rank = rank();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 20, "{declared:?}");
    for m in &declared {
        assert!(rank.contains_key(m), "`{m}` is not in LAYERS");
    }
    assert_eq!(
        declared.len() + 1,
        rank.len(),
        "LAYERS names a module lib.rs does not declare (besides main)"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let paths = crate_paths("use crate::app::run; // crate::poller in a comment\n/// crate::x");
    assert_eq!(paths, vec!["app".to_string()]);
}
