//! The source tree keeps the shape a newcomer relies on: every module says
//! its one job in an opening comment, and no two modules import each other
//! (neither two top-level modules nor two files of one folder), so data
//! moves one way. Read from the files themselves, outside their tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `src/` (`flush::by_hand`, `policy`) with its text, from
/// the start to its tests, without comments.
fn modules() -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
            let mut name: Vec<String> = rel
                .with_extension("")
                .iter()
                .skip(1)
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if name.last().is_some_and(|last| last == "mod") {
                name.pop();
            }
            if matches!(name.as_slice(), [lib] if lib == "lib") || name.last().unwrap() == "tests" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("//! "),
                "{} does not open with a comment saying its job",
                rel.display()
            );
            let lines: Vec<&str> = text.lines().collect();
            let end = lines
                .windows(2)
                .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].contains("mod tests"))
                .unwrap_or(lines.len());
            let code: Vec<&str> = lines[..end]
                .iter()
                .copied()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            all.insert(name.join("::"), code.join("\n"));
        }
    }
    all
}

/// Who imports whom: between top-level modules, and between the files of
/// one folder (by `crate::folder::file` or `super::file`).
fn imports(modules: &BTreeMap<String, String>) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for (name, code) in modules {
        let top = name.split("::").next().unwrap();
        let mut paths: Vec<Vec<&str>> = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let path = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap();
            paths.push(path.split("::").filter(|p| !p.is_empty()).collect());
        }
        for (i, _) in code.match_indices("super::") {
            let rest = &code[i + "super::".len()..];
            let file = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap();
            paths.push(vec![top, file]);
        }
        for path in paths {
            let Some(first) = path.first() else { continue };
            if *first != top {
                if modules.contains_key(*first) {
                    edges.insert((top.to_owned(), first.to_string()));
                }
            } else if let (Some(file), Some(own)) = (path.get(1), name.split("::").nth(1)) {
                let sibling = format!("{top}::{file}");
                if *file != own && modules.contains_key(&sibling) {
                    edges.insert((name.clone(), sibling));
                }
            }
        }
    }
    edges
}

#[test]
fn every_module_says_its_job_and_no_two_import_each_other() {
    let modules = modules();
    assert!(modules.contains_key("flush::by_hand") && modules.contains_key("settings"));
    let edges = imports(&modules);
    // The reading finds what is there: the builder uses the settings.
    assert!(edges.contains(&("builder".into(), "settings".into())));
    assert!(edges.contains(&("flush::flusher".into(), "flush::outcome".into())));
    let both: Vec<_> = edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .collect();
    assert!(both.is_empty(), "modules that import each other: {both:?}");
}
