//! The crate page on docs.rs is complete: every feature of Cargo.toml is
//! listed in the crate documentation (src/lib.rs) and in the README's
//! "Cargo features" table, and docs.rs builds with all of them and the
//! `docsrs` cfg that turns the feature badges on.

/// The features Cargo.toml declares, but `default`.
fn features() -> Vec<String> {
    let manifest: toml::Table = toml::from_str(include_str!("../../Cargo.toml")).unwrap();
    let mut names: Vec<String> = manifest["features"]
        .as_table()
        .unwrap()
        .keys()
        .filter(|k| *k != "default")
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn every_feature_is_listed_in_the_crate_docs_and_the_readme() {
    let names = features();
    assert!(names.len() >= 4, "{names:?}");
    let lib = include_str!("../../src/lib.rs");
    let readme = include_str!("../../README.md");
    for name in &names {
        assert!(
            lib.contains(&format!("//! | `{name}` |")),
            "src/lib.rs's feature table has no row for `{name}`"
        );
        assert!(
            readme.contains(&format!("\n| `{name}` |")),
            "the README's feature table has no row for `{name}`"
        );
    }
}

#[test]
fn docs_rs_builds_with_every_feature_and_the_badges() {
    let manifest: toml::Table = toml::from_str(include_str!("../../Cargo.toml")).unwrap();
    let docs_rs = &manifest["package"]["metadata"]["docs"]["rs"];
    assert_eq!(docs_rs["all-features"].as_bool(), Some(true));
    let args: Vec<&str> = docs_rs["rustdoc-args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args, ["--cfg", "docsrs"]);
    assert!(include_str!("../../src/lib.rs").contains("#![cfg_attr(docsrs, feature(doc_cfg))]"));
}
