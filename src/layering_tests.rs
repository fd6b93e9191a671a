//! The layering rule: the modules of `src/` form a stack, and each imports only modules
//! below it, so no two modules import each other. A new dependency that breaks the stack
//! fails here, naming the import.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules of `src/`, lowest first. A module may import only those before it.
const LAYERS: &[&str] = &[
    "vocab",
    "fnv",
    "telemetry",
    "store",
    "catalog",
    "registry",
    "health",
    "federation",
    "sync",
    "auth",
    "frontends",
    "config",
    "api",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules `text` names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, found)| {
            let rest = &text[at + found.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect()
}

#[test]
fn each_module_imports_only_the_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        let dir = src.join(module);
        let files = if dir.is_dir() {
            sources(&dir)
        } else {
            vec![src.join(format!("{module}.rs"))]
        };
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for imported in imports(&text) {
                let above = LAYERS[rank..].contains(&imported.as_str()) && imported != *module;
                if above {
                    broken.push(format!("{} imports crate::{imported}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering: {broken:#?}"
    );
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';'))
        .collect();
    for module in declared {
        assert!(
            LAYERS.contains(&module),
            "`{module}` has no place in LAYERS"
        );
    }
}
