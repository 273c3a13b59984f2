//! The documentation on docs.rs is complete: every feature of Cargo.toml is
//! listed in the crate documentation (src/lib.rs), docs.rs builds with all of
//! them and the `docsrs` cfg that turns the feature badges on, and every
//! guide page (`docs/guide/*.md`) is a module of `tracing_email::guide` that
//! the README links to.

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
fn every_feature_is_listed_in_the_crate_docs() {
    let names = features();
    assert!(names.len() >= 4, "{names:?}");
    let lib = include_str!("../../src/lib.rs");
    for name in &names {
        assert!(
            lib.contains(&format!("//! | `{name}` |")),
            "src/lib.rs's feature table has no row for `{name}`"
        );
    }
}

/// A page added to `docs/guide/` is on docs.rs (included by a module of
/// `guide`) and reachable from the README; a page removed leaves no dead link.
#[test]
fn every_guide_page_is_a_module_and_the_readme_links_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide");
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(pages.len() >= 10, "{pages:?}");
    let guide = include_str!("../../src/guide/mod.rs");
    let readme = include_str!("../../README.md");
    for page in &pages {
        let module =
            format!("#[doc = include_str!(\"../../docs/guide/{page}.md\")]\npub mod {page} {{}}");
        assert!(
            guide.contains(&module),
            "src/guide/mod.rs does not include {page}.md"
        );
        assert!(
            readme.contains(&format!("/tracing_email/guide/{page}/index.html")),
            "the README does not link to the guide page {page}"
        );
    }
    let linked = readme.matches("/tracing_email/guide/").count();
    let dead: Vec<&str> = readme
        .split("/tracing_email/guide/")
        .skip(1)
        .filter_map(|rest| rest.split('/').next())
        .filter(|name| !pages.iter().any(|p| p == name))
        .collect();
    assert!(
        linked >= pages.len() && dead.is_empty(),
        "dead links: {dead:?}"
    );
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
