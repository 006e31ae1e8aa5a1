//! A bad setting stops the binary at start with one line naming it.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regiondb"))
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_fail_fast_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let overlapping = dir.path().join("regions.toml");
    std::fs::write(
        &overlapping,
        "[[region]]\nid = \"a\"\nzip_min = 0\nzip_max = 10\nreplica = \"b\"\n\
         [[region]]\nid = \"b\"\nzip_min = 5\nzip_max = 20\nreplica = \"a\"\n",
    )
    .unwrap();
    let overlapping = overlapping.to_str().unwrap();
    for (env, name) in [
        (vec![("PORT", "eighty")], "PORT"),
        (vec![("FASTAPI_PORT", "0")], "FASTAPI_PORT"),
        (vec![("REGIONS_FILE", overlapping)], "REGIONS_FILE"),
        (
            vec![("MONGO_URI_REGION_1", "http://x")],
            "MONGO_URI_REGION_1",
        ),
    ] {
        let (code, stderr) = run(&env);
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}
