//! A bad setting stops the binary at start with one line naming it.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), &[], env)
}

/// The binary in `dir` with `args`, only `env` set.
fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regiondb"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir)
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
        (vec![("RUST_LOG", "info,[")], "RUST_LOG"),
        (
            vec![("KAFKA_SECURITY_PROTOCOL", "tls")],
            "KAFKA_SECURITY_PROTOCOL",
        ),
        (
            vec![("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")],
            "KAFKA_SASL_USERNAME",
        ),
        (
            vec![("KAFKA_SASL_USERNAME", "alice")],
            "KAFKA_SASL_USERNAME",
        ),
        (
            vec![
                ("KAFKA_SECURITY_PROTOCOL", "SSL"),
                ("KAFKA_SSL_CA_FILE", "/nonexistent/ca.pem"),
            ],
            "KAFKA_SSL_CA_FILE",
        ),
        (vec![("KAFKA_PROPERTY_ACKS", "1")], "KAFKA_PROPERTY_ACKS"),
        (vec![("REDIS_CA_FILE", "/etc/hostname")], "REDIS_CA_FILE"),
        (
            vec![("REDIS_SENTINELS", "sentinel-without-port")],
            "REDIS_SENTINELS",
        ),
        (
            vec![("REDIS_SENTINEL_MASTER", "mymaster")],
            "REDIS_SENTINEL_MASTER",
        ),
    ] {
        let (code, stderr) = run(&env);
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn a_bad_dot_env_line_stops_the_start_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // An unquoted value with a space, and the admin token after it: dotenv
    // would stop at line 2 and leave the token unset.
    std::fs::write(
        dir.path().join(".env"),
        "PORT=8123\nLOG_FORMAT=text json\nADMIN_TOKEN=0123456789abcdef0123\n",
    )
    .unwrap();
    let (code, stderr) = run_in(dir.path(), &[], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(".env:2:"), "{stderr}");
    assert!(stderr.contains("LOG_FORMAT=text json"), "{stderr}");

    // --env-file names another file, which must exist.
    let (code, stderr) = run_in(dir.path(), &["--env-file", "missing.env"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing.env"), "{stderr}");
    let other = dir.path().join("other.env");
    std::fs::write(&other, "PORT=http\n").unwrap();
    let (code, stderr) = run_in(dir.path(), &["--env-file", "other.env"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("PORT"), "{stderr}");
}

#[test]
fn a_dot_env_in_a_parent_folder_is_not_read() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::write(parent.path().join(".env"), "PORT=not-a-port\n").unwrap();
    let child = parent.path().join("child");
    std::fs::create_dir(&child).unwrap();
    // `gen` needs no configuration; `repair --region` with a bad region
    // fails on the region only if the parent's PORT was not read.
    let (code, stderr) = run_in(&child, &["repair", "--region", "nowhere"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("PORT"), "{stderr}");
    assert!(stderr.contains("--region"), "{stderr}");
}
