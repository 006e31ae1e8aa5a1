//! The docs stay true of the code: the module map names every file of
//! `src/`, the configuration page every variable the app reads, the API page
//! every metric, and every link between the docs points at a file that
//! exists. (`tests/api/openapi.rs` checks that the API page mentions every
//! route.)

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regiondb::config::Config;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every `.rs` file under `dir`, relative to `src/`.
fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root().join("src")).expect("under src");
            out.push(relative.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn the_module_map_names_every_source_file() {
    let map = read("docs/architecture.md");
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    assert!(files.len() > 50, "{files:?}");
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !map.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name {missing:?}"
    );
}

#[test]
fn the_configuration_page_lists_every_variable_the_app_reads() {
    let asked = RefCell::new(BTreeSet::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    })
    .expect("the defaults are valid");
    let page = read("docs/configuration.md");
    let asked = asked.into_inner();
    assert!(asked.len() > 25, "{asked:?}");
    for name in asked {
        // One row stands for every node's own URI.
        let name = if name.starts_with("MONGO_URI_") {
            "MONGO_URI_<NODE>".to_owned()
        } else {
            name
        };
        assert!(
            page.contains(&format!("`{name}`")),
            "docs/configuration.md does not list {name}"
        );
    }
}

#[test]
fn the_api_page_lists_every_metric() {
    let source = read("src/metrics.rs");
    let page = read("docs/api.md");
    let names: BTreeSet<&str> = source
        .split('"')
        .filter(|s| {
            s.starts_with("regiondb_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        assert!(page.contains(name), "docs/api.md does not list {name}");
    }
}

/// The targets of the relative Markdown links in `text`.
fn links(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or_default())
        .filter(|target| !target.is_empty() && !target.contains("://"))
        .collect()
}

#[test]
fn every_link_between_the_docs_points_at_a_file() {
    let mut pages: Vec<PathBuf> = vec![root().join("README.md"), root().join("SECURITY.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("page");
        let dir = page.parent().expect("dir");
        for target in links(&text) {
            checked += 1;
            assert!(
                dir.join(target).exists(),
                "{}: the link to {target} leads nowhere",
                page.display()
            );
        }
    }
    assert!(checked >= 10, "only {checked} links");
}

#[test]
fn security_md_states_the_policy_the_server_sends() {
    let text = std::fs::read_to_string(root().join("SECURITY.md")).expect("SECURITY.md");
    let policy = regiondb::http::security::CONTENT_SECURITY_POLICY;
    assert!(
        text.contains(&format!("`{policy}`")),
        "SECURITY.md does not quote the policy:\n{policy}"
    );
}
