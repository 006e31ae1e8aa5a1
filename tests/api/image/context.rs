//! What `docker build .` sends and runs, without Docker: the build context
//! (the tracked files less `.dockerignore`, by Docker's own rules) and the
//! build stage's steps, read from the Dockerfile.

use std::path::{Path, PathBuf};
use std::process::Command;

use globset::{GlobBuilder, GlobMatcher};

/// One `.dockerignore` line: a pattern, or an exception (`!pattern`).
struct Rule {
    glob: GlobMatcher,
    exception: bool,
}

/// `.dockerignore` as Docker reads it (moby's patternmatcher): each line is
/// a path pattern from the context's root (`*` and `?` stay within one path
/// element, `**` spans any number of them; a leading `/` is dropped), a
/// pattern that matches a folder matches everything under it, `!` makes an
/// exception, and the last matching line decides.
pub struct DockerIgnore(Vec<Rule>);

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let rules = (text.lines())
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, line),
                };
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .unwrap_or_else(|e| panic!(".dockerignore {line:?}: {e}"))
                    .compile_matcher();
                Rule { glob, exception }
            })
            .collect();
        DockerIgnore(rules)
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = (path.match_indices('/'))
            .map(|(i, _)| &path[..i])
            .chain([path])
            .collect();
        let mut excluded = false;
        for rule in &self.0 {
            if parents.iter().any(|p| rule.glob.is_match(p)) {
                excluded = !rule.exception;
            }
        }
        excluded
    }
}

/// The tracked files of the repository at `root` that the context keeps,
/// copied into `into`; answers their relative paths.
pub fn assemble(root: &Path, into: &Path) -> Vec<String> {
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
    let ignore = DockerIgnore::parse(&ignore);
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    let mut kept = Vec::new();
    for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let from = root.join(&path);
        if ignore.excludes(&path) || !from.is_file() {
            continue;
        }
        let to = into.join(&path);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {path}: {e}"));
        kept.push(path);
    }
    kept
}

/// One step of a Dockerfile stage.
#[derive(Debug, PartialEq)]
pub enum Step {
    Workdir(String),
    /// Sources (in the context) and destination.
    Copy(Vec<String>, String),
    Run(String),
    /// Anything else (ENV, USER, ...): not replayed.
    Other(String),
}

/// The stages of a Dockerfile: (name or base image, steps). Continuation
/// lines are joined; comments dropped.
pub fn stages(dockerfile: &str) -> Vec<(String, Vec<Step>)> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => current.push_str(&format!("{head} ")),
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<(String, Vec<Step>)> = Vec::new();
    for line in logical {
        let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let rest = rest.trim().to_owned();
        match word.to_ascii_uppercase().as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                    [image, ..] => image.to_string(),
                    [] => panic!("FROM without an image"),
                };
                stages.push((name, Vec::new()));
            }
            "WORKDIR" => push(&mut stages, Step::Workdir(rest)),
            "COPY" => {
                let mut words: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
                let dest = words.pop().expect("COPY destination");
                push(&mut stages, Step::Copy(words, dest));
            }
            "RUN" => push(&mut stages, Step::Run(rest)),
            _ => push(&mut stages, Step::Other(line.clone())),
        }
    }
    stages
}

fn push(stages: &mut [(String, Vec<Step>)], step: Step) {
    stages.last_mut().expect("a step before FROM").1.push(step);
}

/// Copies `sources` (context paths: files or folders) into `dest` under
/// `work`, as COPY does (a folder's contents go into the destination).
pub fn copy_in(context: &Path, sources: &[String], work: &Path, dest: &str) {
    let dest: PathBuf = work.join(dest);
    for source in sources {
        let from = context.join(source);
        assert!(from.exists(), "COPY {source}: not in the build context");
        if from.is_dir() {
            copy_dir(&from, &dest);
        } else {
            std::fs::create_dir_all(&dest).expect("mkdir");
            let name = from.file_name().expect("file name");
            std::fs::copy(&from, dest.join(name)).expect("copy");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn dockerignore_follows_dockers_rules() {
    // The examples of Docker's own documentation (.dockerignore file).
    let ignore = DockerIgnore::parse("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
    assert!(ignore.excludes("somedir/temporary.txt"));
    assert!(ignore.excludes("somedir/temp"));
    assert!(ignore.excludes("somedir/subdir/temporary.txt"));
    assert!(ignore.excludes("tempa"));
    assert!(
        !ignore.excludes("temporary.txt"),
        "*/temp* is one level down only"
    );
    assert!(!ignore.excludes("a/b/c/temp.txt"));
    let ignore = DockerIgnore::parse("**/*.go\n");
    assert!(ignore.excludes("main.go") && ignore.excludes("a/b/c.go"));
    // Exceptions, and the last matching line wins.
    let ignore = DockerIgnore::parse("*.md\n!README*.md\nREADME-secret.md\n");
    assert!(ignore.excludes("CHANGES.md"));
    assert!(!ignore.excludes("README.md"));
    assert!(ignore.excludes("README-secret.md"));
    assert!(
        !ignore.excludes("docs/guide.md"),
        "*.md matches at the root only"
    );
    // A folder's pattern covers what is under it; a leading / is dropped.
    let ignore = DockerIgnore::parse("/tests/\ntarget\n");
    assert!(ignore.excludes("tests/api/main.rs") && ignore.excludes("target/debug/x"));
    assert!(!ignore.excludes("src/tests.rs"));
}

#[test]
fn dockerfile_steps_are_read_with_their_continuations() {
    let stages = stages(
        "# syntax=docker/dockerfile:1\nFROM rust:1 AS build\nWORKDIR /src\n# deps\n\
         COPY a b ./\nRUN one \\\n && two\nFROM debian\nCOPY --from=build /x /y\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].0, "build");
    assert_eq!(
        stages[0].1,
        [
            Step::Workdir("/src".into()),
            Step::Copy(vec!["a".into(), "b".into()], "./".into()),
            Step::Run("one  && two".into()),
        ]
    );
    assert_eq!(stages[1].0, "debian");
}
