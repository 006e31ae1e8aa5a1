//! The image builds: what the Dockerfile builds, built from the context the
//! Dockerfile sees (tracked files less `.dockerignore`), with the machine's
//! cargo instead of a Docker engine; then the built binary runs. Where a
//! Docker engine answers (CI's real-services job), `docker build` runs too.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;

use crate::helpers::*;

mod context;

use context::{Step, assemble, copy_in, stages};

/// Where the replayed build's `/src/target` lives: kept between runs, so a
/// second run only rebuilds what changed.
fn replay_target() -> PathBuf {
    repo_root().join("target/image-replay")
}

/// Replays the build stage's steps in `work`, answering the path of what
/// the runtime stage copies out of it (`/src/target/...`).
fn replay(context: &Path, work: &Path, dockerfile: &str) -> PathBuf {
    let stages = stages(dockerfile);
    let (runtime, build) = stages.split_last().expect("stages");
    let from_build = runtime
        .1
        .iter()
        .find_map(|s| match s {
            Step::Copy(sources, _) if sources.first().is_some_and(|f| f.starts_with("--from=")) => {
                let stage = sources[0].trim_start_matches("--from=");
                Some((stage.to_owned(), sources[1].clone()))
            }
            _ => None,
        })
        .expect("the runtime stage copies the binary from the build stage");
    let (_, steps) = (build.iter())
        .find(|(name, _)| *name == from_build.0)
        .expect("the stage the binary comes from");
    let mut workdir = "/".to_owned();
    for step in steps {
        match step {
            Step::Workdir(dir) => workdir = dir.clone(),
            Step::Copy(sources, dest) => copy_in(context, sources, work, dest),
            Step::Run(script) => run_step(work, script),
            Step::Other(_) => {}
        }
    }
    let inside = (from_build.1.strip_prefix(&format!("{workdir}/target/")))
        .expect("the binary is under the build stage's target folder");
    replay_target().join(inside)
}

/// One `RUN`, by `sh` in `work` (standing for the stage's WORKDIR): the
/// registry cache is used offline, the target folder is kept (see
/// [`replay_target`]) and the release profile builds without optimising
/// (the manifest, lock file, features and sources are the image's; only
/// the time to build differs).
fn run_step(work: &Path, script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(work)
        .env("CARGO_TARGET_DIR", replay_target())
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "off")
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    assert!(
        out.status.success(),
        "RUN {script}\nfailed in the build context:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn the_image_builds_from_its_own_context_and_its_binary_serves() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let context = tempfile::tempdir().expect("context");
    let kept = assemble(&root, context.path());
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "templates/index.html",
    ] {
        assert!(
            kept.iter().any(|k| k == needed),
            "{needed} left out of the context"
        );
    }
    assert!(
        !kept.iter().any(|k| k.starts_with("tests/")),
        "tests/ is sent to the builder"
    );
    let work = tempfile::tempdir().expect("work");
    let binary = replay(context.path(), work.path(), &dockerfile);
    assert!(binary.is_file(), "{} was not built", binary.display());

    let help = Command::new(&binary)
        .arg("--help")
        .output()
        .expect("--help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: regiondb"));

    // The image's binary, against real services, answers its health check.
    let app = TestApp::spawn("image-binary").await;
    let (mut proc, port) = start_server("image", &app.dir, |port| {
        let mut c = Command::new(&binary);
        c.env_clear().env("PORT", port.to_string());
        for (k, v) in app.app_settings() {
            c.env(k, v);
        }
        c
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let answer = app.http.get(&url).send().await.expect("healthz");
    assert_eq!(answer.status(), StatusCode::OK);
    proc.kill();

    docker_build_where_an_engine_runs(&root);
}

/// `docker build`, where a Docker engine answers; said and skipped where
/// none does (this machine, CI's main job).
fn docker_build_where_an_engine_runs(root: &Path) {
    let engine = Command::new("docker").arg("info").output();
    if !engine.is_ok_and(|o| o.status.success()) {
        eprintln!("no Docker engine here: the build was replayed without it");
        return;
    }
    let built = Command::new("docker")
        .args(["build", "--quiet", "-t", "regiondb:build-test", "."])
        .current_dir(root)
        .status()
        .expect("docker build");
    assert!(built.success(), "docker build failed");
}
