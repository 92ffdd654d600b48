//! The dependency rule of `src/` (README, "Layout"): a layer names only the layers below it.
//! This test reads the source, so the rule holds without anyone remembering it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer and the crate modules it may name (besides itself). `model` and `wire` are the
/// vocabulary every layer shares; they name nothing of the crate.
const RULES: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("wire", &[]),
    ("modes", &["wire", "model"]),
    ("sched", &["model", "wire"]),
    ("conn", &["model", "wire", "sched"]),
    ("dataplane", &["model", "wire", "modes", "sched", "conn"]),
    ("ipvsadm", &["model", "wire"]),
    ("config", &["model", "wire"]),
    ("control", &["model", "wire", "modes", "sched", "conn", "dataplane", "ipvsadm", "config"]),
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate modules a file names (`crate::x`), outside comments.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + 7..];
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
        // A grouped import such as `use crate::{conn, dataplane}` names each.
        if let Some(i) = code.find("crate::{") {
            for part in code[i + 8..].split(['}', ',']).map(str::trim) {
                let name: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn lower_layers_never_name_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (layer, allowed) in RULES {
        let mut files = Vec::new();
        rs_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer} has no source files");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for m in named_modules(&text) {
                if m != *layer && !allowed.contains(&m.as_str()) {
                    violations.push(format!("{} names crate::{m}", f.strip_prefix(&src).unwrap().display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layer rule broken:\n{}", violations.join("\n"));
}

#[test]
fn every_module_of_the_crate_is_a_known_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines().filter(|l| l.starts_with("pub mod ") || l.starts_with("mod ")) {
        let name = line.trim_start_matches("pub ").trim_start_matches("mod ").trim_end_matches(';');
        assert!(RULES.iter().any(|(l, _)| *l == name), "src/lib.rs: module {name} has no place in the layer rule");
    }
}

#[test]
fn the_checker_sees_imports() {
    let m = named_modules("use crate::control::x; // crate::config\nuse crate::{conn, dataplane::Tables};");
    assert_eq!(m.into_iter().collect::<Vec<_>>(), ["conn", "control", "dataplane"]);
}
