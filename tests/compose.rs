//! The demo deployment is honest: docker-compose.yml, .env.example and the
//! Dockerfile agree with what the app really reads. (scripts/test also runs
//! `docker-compose config`, the real parser, on the same file.)

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regiondb::config::Config;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("compose YAML");
    yaml.apply_merge().expect("merge keys");
    serde_json::to_value(yaml).expect("as JSON")
}

fn env_example() -> BTreeMap<String, String> {
    dotenvy::from_path_iter(root().join(".env.example"))
        .expect(".env.example")
        .map(|item| item.expect("valid .env line"))
        .collect()
}

/// Every variable `Config` asks for when given `env` (names it reads).
fn variables_read(env: &BTreeMap<String, String>) -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let _ = Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        env.get(name).cloned()
    });
    asked.into_inner()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    &compose["services"][name]
}

/// host and port of `scheme://host:port/...` or `host:port`.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split("://").last().unwrap_or(address);
    assert!(!rest.contains('@'), "credentials in {address}");
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.parse().expect("port"))
}

fn image_of(compose: &Value, host: &str) -> String {
    service(compose, host)["image"]
        .as_str()
        .unwrap_or_else(|| panic!("{host} is not a service of docker-compose.yml"))
        .to_owned()
}

#[test]
fn the_app_container_gets_every_setting_it_needs_from_env_example() {
    let compose = compose();
    let app = service(&compose, "app");
    assert_eq!(
        app["env_file"], ".env.example",
        "the app's environment is .env.example"
    );
    let env = env_example();

    // Everything the app reads is set here or has a default: the app's own
    // parser accepts this environment.
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let read = variables_read(&env);
    // ...and nothing in .env.example is dead: every variable is read
    // (RUST_LOG by the log filter).
    for name in env.keys() {
        assert!(
            read.contains(name) || name == "RUST_LOG",
            "{name} is not read by the app"
        );
    }
    for must in [
        "MONGO_URI_REGION_1",
        "MONGO_URI_REGION_2",
        "MONGO_URI_REGION_3",
        "REDIS_HOST",
        "REDIS_PORT",
        "KAFKA_BOOTSTRAP_SERVER",
        "PORT",
        "BIND_ADDRESS",
    ] {
        assert!(read.contains(must), "the app does not read {must}");
        assert!(env.contains_key(must), ".env.example does not set {must}");
    }

    // Listening inside the container on the published port, localhost only.
    assert_eq!(config.bind.ip().to_string(), "0.0.0.0");
    let ports: Vec<&str> = app["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ports, [format!("127.0.0.1:8000:{}", config.bind.port())]);
}

#[test]
fn every_address_names_a_compose_service_of_the_right_kind_and_port() {
    let compose = compose();
    let env = env_example();
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid config");
    let mut used = BTreeSet::new();

    let mut mongo_hosts = BTreeSet::new();
    for (node, uri) in &config.mongo.uris {
        let (host, port) = host_port(uri);
        assert!(
            image_of(&compose, &host).starts_with("mongo:"),
            "{node} -> {host}"
        );
        assert_eq!(port, 27017, "{node}: mongod listens on 27017");
        mongo_hosts.insert(host.clone());
        used.insert(host);
    }
    assert_eq!(mongo_hosts.len(), 3, "one MongoDB server per region node");

    let (host, port) = host_port(&config.redis_url);
    assert!(image_of(&compose, &host).starts_with("redis:"));
    assert_eq!(port, 6379);
    used.insert(host);

    let (host, port) = host_port(&config.kafka.bootstrap);
    assert!(image_of(&compose, &host).starts_with("apache/kafka:"));
    let advertised = service(&compose, &host)["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        .as_str()
        .expect("advertised listeners");
    assert!(
        advertised.contains(&format!("://{host}:{port}")),
        "{advertised}"
    );
    used.insert(host);

    // Every other service is one the app uses, and it waits for all of them.
    let services = compose["services"].as_object().expect("services");
    let app = &services["app"];
    for (name, svc) in services {
        if name == "app" {
            continue;
        }
        assert!(used.contains(name), "{name} is not used by the app");
        assert!(
            svc.get("healthcheck").is_some(),
            "{name} has no healthcheck"
        );
        assert_eq!(
            app["depends_on"][name]["condition"], "service_healthy",
            "{name}"
        );
    }
}

#[test]
fn services_persist_what_they_promise_and_hold_no_credentials() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let command: Vec<&str> = services["redis"]["command"]
        .as_array()
        .expect("redis command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "redis AOF"
    );
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"],
        "false"
    );
    assert!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
            .as_str()
            .unwrap()
            .contains("controller")
    );
    for name in [
        "mongo-region-1",
        "mongo-region-2",
        "mongo-region-3",
        "redis",
        "kafka",
    ] {
        let volumes = services[name]["volumes"].as_array().expect("volumes");
        let named = volumes.iter().filter_map(Value::as_str).any(|v| {
            let source = v.split(':').next().unwrap_or_default();
            compose["volumes"].get(source).is_some()
        });
        assert!(named, "{name} keeps its data in a named volume");
    }

    let secret = |key: &str| {
        let k = key.to_ascii_uppercase();
        [
            "PASSWORD",
            "SECRET",
            "TOKEN",
            "CREDENTIAL",
            "API_KEY",
            "PRIVATE",
        ]
        .iter()
        .any(|s| k.contains(s))
    };
    for (key, value) in env_example() {
        assert!(!secret(&key) || value.is_empty(), ".env.example sets {key}");
        assert!(
            !value.contains('@'),
            ".env.example {key} carries credentials"
        );
    }
    for (name, svc) in services {
        if let Some(env) = svc.get("environment").and_then(Value::as_object) {
            for (key, value) in env {
                assert!(!secret(key), "{name} sets {key} in docker-compose.yml");
                assert!(
                    !value.as_str().unwrap_or_default().contains('@') || key.contains("VOTERS"),
                    "{name} {key} carries credentials"
                );
            }
        }
    }
}

#[test]
fn the_image_is_multi_stage_non_root_and_health_checked() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 2
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "));
    assert!(
        user.is_some_and(|u| u.trim() != "root" && u.trim() != "0"),
        "runs as non-root"
    );
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/healthz"));
    for dir in ["templates", "static", "src"] {
        assert!(
            dockerfile.contains(&format!("COPY {dir} ")),
            "{dir} is baked in"
        );
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    for entry in ["target/", ".tools/", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}
