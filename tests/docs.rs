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
    let source = read("src/metrics/mod.rs") + &read("src/metrics/families.rs");
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

/// Every number range on the configuration page is the one the code
/// enforces: its ends are accepted (unless the row ties the value to
/// another variable) and one past either end is refused.
#[test]
fn the_configuration_page_gives_each_range_the_code_enforces() {
    let page = read("docs/configuration.md");
    let accepts = |name: &str, value: u64| {
        let value = value.to_string();
        Config::from_lookup(|n| (n == name).then(|| value.clone())).is_ok()
    };
    let mut checked = 0;
    for row in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let names: Vec<&str> = cells[0].split('`').skip(1).step_by(2).collect();
        if names.len() != 1 && !cells[0].contains("(alias") {
            continue;
        }
        let Some((low, rest)) = cells.get(2).and_then(|c| c.split_once(" – ")) else {
            continue;
        };
        let high: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let (Ok(low), Ok(high)) = (low.parse::<u64>(), high.parse::<u64>()) else {
            continue;
        };
        let name = names[0];
        assert!(!accepts(name, high + 1), "{name}={} is accepted", high + 1);
        if low > 0 {
            assert!(!accepts(name, low - 1), "{name}={} is accepted", low - 1);
        }
        if !rest.contains('`') {
            assert!(
                accepts(name, high),
                "{name}={high} is refused; the page allows it"
            );
            assert!(
                accepts(name, low),
                "{name}={low} is refused; the page allows it"
            );
        }
        checked += 1;
    }
    assert!(checked > 20, "only {checked} ranges found");
}
