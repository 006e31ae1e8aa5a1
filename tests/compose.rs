//! The demo deployment is honest: docker-compose.yml, .env.example and the
//! Dockerfile agree with what the app really reads, and every value an image
//! checks when it starts (Kafka's cluster id, listeners and quorum, mongod's
//! and redis-server's options) is checked here against the images' rules,
//! since nothing here can start the containers. (scripts/test also runs
//! `docker-compose config`, the real parser, on the same file.)

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regiondb::config::Config;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// YAML (compose file, its resolved form, a workflow) as JSON, with merge
/// keys (`<<: *anchor`) applied.
fn yaml_as_json(text: &[u8], what: &str) -> Value {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    yaml.apply_merge().expect("merge keys");
    serde_json::to_value(yaml).expect("as JSON")
}

fn compose() -> Value {
    let text = std::fs::read(root().join("docker-compose.yml")).expect("compose file");
    yaml_as_json(&text, "docker-compose.yml")
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

/// `${NAME:-default}` -> (NAME, default): how the app's `environment:`
/// entries pass a project-level `.env` through.
fn interpolation(value: &str) -> Option<(&str, &str)> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    inner.split_once(":-")
}

/// Set for the container itself, not from `.env`: listening on every
/// interface inside it.
const FIXED: [(&str, &str); 1] = [("BIND_ADDRESS", "0.0.0.0")];

/// The app's environment as the container sees it without a `.env`: each
/// entry's default (or its fixed value).
fn app_defaults(compose: &Value) -> BTreeMap<String, String> {
    let env = service(compose, "app")["environment"]
        .as_object()
        .expect("the app's environment is a mapping");
    env.iter()
        .map(|(key, value)| {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("{key} is not a string"));
            if FIXED.contains(&(key.as_str(), value)) {
                return (key.clone(), value.to_owned());
            }
            let (name, default) = interpolation(value)
                .unwrap_or_else(|| panic!("{key}: {value} is not ${{{key}:-default}}"));
            assert_eq!(name, key, "{key} is filled from another variable");
            (key.clone(), default.to_owned())
        })
        .collect()
}

/// `.env.example` gives each variable passed through `.env` the demo's
/// value, and names none that does not reach the app.
fn example_matches(defaults: &BTreeMap<String, String>, example: &BTreeMap<String, String>) {
    for (name, default) in defaults {
        if FIXED.iter().any(|(fixed, _)| fixed == name) {
            assert!(
                !example.contains_key(name),
                "{name} is the container's, not .env's"
            );
            continue;
        }
        assert_eq!(
            example.get(name).map_or("", String::as_str),
            default,
            "{name}: .env.example and docker-compose.yml disagree"
        );
    }
    for name in example.keys() {
        assert!(defaults.contains_key(name), "{name} does not reach the app");
    }
}

#[test]
fn every_setting_the_app_reads_can_be_changed_through_dot_env() {
    let compose = compose();
    let app = service(&compose, "app");
    assert!(
        app.get("env_file").is_none(),
        "no env_file: .env.example is documentation, .env the user's copy"
    );
    let defaults = app_defaults(&compose);
    let example = env_example();

    // Every variable the app reads reaches the container from .env (RUST_LOG
    // is read by the log filter)...
    let mut read = variables_read(&defaults);
    read.insert("RUST_LOG".into());
    // (some are read only along with others: min ISR with replication)
    let mut replicated = defaults.clone();
    replicated.insert("KAFKA_REPLICATION_FACTOR".into(), "3".into());
    read.extend(variables_read(&replicated));
    let passed: BTreeSet<String> = defaults.keys().cloned().collect();
    assert_eq!(passed, read, "variables passed through vs read by the app");
    // ...and .env.example documents each with the demo's value.
    example_matches(&defaults, &example);

    // The app's own parser accepts the demo's environment.
    let config = Config::from_lookup(|k| defaults.get(k).cloned()).expect("valid config");
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
        assert!(!defaults[must].is_empty(), "the demo does not set {must}");
    }

    // Listening inside the container on the published port, localhost only.
    assert_eq!(config.bind.ip().to_string(), "0.0.0.0");
    let ports: Vec<&str> = app["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ports, ["127.0.0.1:8000:${PORT:-8000}"]);
    assert_eq!(config.bind.port(), 8000);
}

#[test]
fn a_binary_run_by_hand_from_the_template_stays_on_loopback() {
    let example = env_example();
    assert!(
        !example.contains_key("BIND_ADDRESS"),
        "the container's value"
    );
    let by_hand = Config::from_lookup(|k| example.get(k).cloned()).expect("template config");
    assert!(by_hand.bind.ip().is_loopback(), "{}", by_hand.bind);
}

/// What `docker-compose config` makes of the file with `dot_env` as the
/// project's `.env`: the app's resolved environment.
fn resolved_app_env(dot_env: &str) -> serde_json::Map<String, Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root().join("docker-compose.yml"),
        dir.path().join("docker-compose.yml"),
    )
    .expect("copy compose file");
    std::fs::write(dir.path().join(".env"), dot_env).expect(".env");
    let out = std::process::Command::new("docker-compose")
        .current_dir(dir.path())
        .args(["config"])
        .output()
        .expect("docker-compose (scripts/install-tools installs it)");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = yaml_as_json(&out.stdout, "resolved compose file");
    resolved["services"]["app"]["environment"]
        .as_object()
        .cloned()
        .expect("environment")
}

#[test]
fn a_project_dot_env_changes_the_demo_and_an_absent_one_keeps_its_values() {
    let changed = resolved_app_env("MONGO_TIMEOUT_MS=750\nREDIS_URL=redis://redis:6379/3\n");
    assert_eq!(changed["MONGO_TIMEOUT_MS"], "750");
    assert_eq!(changed["REDIS_URL"], "redis://redis:6379/3");
    let unchanged = resolved_app_env("");
    let example = env_example();
    for (name, value) in &unchanged {
        let fixed = FIXED.iter().find(|(fixed, _)| fixed == name);
        let expected = fixed.map_or_else(|| example.get(name).map_or("", String::as_str), |f| f.1);
        assert_eq!(value.as_str(), Some(expected), "{name}");
    }
}

#[test]
fn every_address_names_a_compose_service_of_the_right_kind_and_port() {
    let compose = compose();
    let env = app_defaults(&compose);
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

    let (host, port) = host_port(&config.redis.url);
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

    // Every other service is one the app uses, and it waits for all of
    // them; those of a profile (monitoring: they use the app, not it them)
    // are checked in tests/monitoring.rs.
    let services = compose["services"].as_object().expect("services");
    let app = &services["app"];
    for (name, svc) in services {
        if name == "app" || svc.get("profiles").is_some() {
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
                // A secret only passes through from .env, never with a value.
                let passed_through = value.as_str() == Some(&format!("${{{key}:-}}"));
                assert!(
                    !secret(key) || passed_through,
                    "{name} sets {key} in docker-compose.yml"
                );
                assert!(
                    !value.as_str().unwrap_or_default().contains('@') || key.contains("VOTERS"),
                    "{name} {key} carries credentials"
                );
            }
        }
    }
}

#[test]
fn a_graceful_shutdown_fits_in_the_stop_grace_period() {
    let compose = compose();
    let grace = service(&compose, "app")["stop_grace_period"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("app: stop_grace_period in seconds");
    let budget = regiondb::startup::SHUTDOWN_BUDGET;
    // A second of slack for the process to exit once its budget is spent.
    assert!(
        budget + std::time::Duration::from_secs(1) < std::time::Duration::from_secs(grace),
        "the shutdown takes up to {budget:?}; compose kills the app after {grace} s"
    );
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

/// A Kafka `Uuid` as the image's `kafka-storage format` parses a cluster id
/// (`Uuid.fromString`): at most 24 characters of URL-safe base64 decoding
/// to exactly 16 bytes.
fn kafka_uuid(text: &str) -> Result<[u8; 16], String> {
    if text.len() > 24 {
        return Err(format!("{text} is too long for a base64 UUID"));
    }
    // Java's URL decoder, like this one, ignores the unused bits of the
    // last character and accepts missing padding.
    let java_url_decoder = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = base64::Engine::decode(&java_url_decoder, text)
        .map_err(|e| format!("{text} is not URL-safe base64: {e}"))?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{text} decodes to {} bytes, not 16", bytes.len()))
}

/// `NAME://host:port,...` -> [(NAME, host, port)].
fn listeners(list: &str) -> Vec<(String, String, u16)> {
    list.split(',')
        .map(|l| {
            let (name, rest) = l.trim().split_once("://").expect("NAME://host:port");
            let (host, port) = rest.rsplit_once(':').expect("host:port");
            (
                name.to_owned(),
                host.to_owned(),
                port.parse().expect("port"),
            )
        })
        .collect()
}

/// The rules a single-node KRaft Kafka (broker and controller in one
/// process) checks at start, for the `apache/kafka` image's environment
/// (`KAFKA_X_Y` is the property `x.y`). `own_host` is the name other
/// containers reach this one by.
fn check_kraft(env: &serde_json::Map<String, Value>, own_host: &str) {
    let get = |key: &str| setting(env, key);
    // The image's configure script: KRaft mode needs CLUSTER_ID, and
    // kafka-storage format needs it to be a Uuid (not the zero one).
    let id = kafka_uuid(get("CLUSTER_ID")).unwrap_or_else(|e| panic!("CLUSTER_ID: {e}"));
    assert_ne!(id, [0; 16], "CLUSTER_ID: the zero Uuid is reserved");
    let roles: BTreeSet<&str> = get("KAFKA_PROCESS_ROLES")
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["broker", "controller"]),
        "combined mode"
    );
    let controller_port = check_listeners(env);
    check_quorum(env, own_host, controller_port);
    // One broker: internal topics cannot have more replicas than that.
    for key in [
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ] {
        assert_eq!(get(key), "1", "{key} on a one-broker cluster");
    }
}

/// A setting of the Kafka container's environment, which must be set.
fn setting<'a>(env: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    env.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} is not set"))
}

/// Listeners, advertised listeners, the protocol map, the controller and
/// inter-broker listener names agree; answers the port of the first
/// controller listener.
fn check_listeners(env: &serde_json::Map<String, Value>) -> u16 {
    let get = |key: &str| setting(env, key);
    let protocol_map: BTreeMap<&str, &str> = get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")
        .split(',')
        .map(|p| p.trim().split_once(':').expect("NAME:PROTOCOL"))
        .collect();
    for protocol in protocol_map.values() {
        assert!(
            ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(protocol),
            "unknown security protocol {protocol}"
        );
    }
    let bound = listeners(get("KAFKA_LISTENERS"));
    let advertised = listeners(get("KAFKA_ADVERTISED_LISTENERS"));
    let names: BTreeSet<&str> = bound.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.len(), bound.len(), "listener names are unique");
    let ports: BTreeSet<u16> = bound.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(ports.len(), bound.len(), "listener ports are unique");
    for (name, _, _) in bound.iter().chain(&advertised) {
        assert!(
            protocol_map.contains_key(name.as_str()),
            "listener {name} is not in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"
        );
    }
    let controller_names: Vec<&str> = get("KAFKA_CONTROLLER_LISTENER_NAMES").split(',').collect();
    for name in &controller_names {
        assert!(
            names.contains(name),
            "controller listener {name} is not bound"
        );
        assert!(
            advertised.iter().all(|(n, _, _)| n != name),
            "a broker may not advertise its controller listener {name}"
        );
    }
    for (name, host, port) in &advertised {
        let bound_port = bound.iter().find(|(n, _, _)| n == name).map(|(_, _, p)| *p);
        assert_eq!(
            bound_port,
            Some(*port),
            "advertised {name} is not bound on {port}"
        );
        assert!(
            !host.is_empty() && host != "0.0.0.0",
            "advertised {name} has no host"
        );
    }
    let inter_broker = get("KAFKA_INTER_BROKER_LISTENER_NAME");
    assert!(
        advertised.iter().any(|(n, _, _)| n == inter_broker)
            && !controller_names.contains(&inter_broker),
        "KAFKA_INTER_BROKER_LISTENER_NAME {inter_broker} must be an advertised broker listener"
    );

    bound
        .iter()
        .find(|(n, _, _)| n == controller_names[0])
        .map(|(_, _, p)| *p)
        .expect("controller listener")
}

/// The quorum: this node votes, reached on its first controller listener.
fn check_quorum(env: &serde_json::Map<String, Value>, own_host: &str, controller_port: u16) {
    let get = |key: &str| setting(env, key);
    let node_id: u32 = get("KAFKA_NODE_ID")
        .parse()
        .expect("KAFKA_NODE_ID is a number");
    let voters: Vec<(u32, String, u16)> = get("KAFKA_CONTROLLER_QUORUM_VOTERS")
        .split(',')
        .map(|v| {
            let (id, address) = v.trim().split_once('@').expect("id@host:port");
            let (host, port) = address.rsplit_once(':').expect("host:port");
            (
                id.parse().expect("voter id"),
                host.to_owned(),
                port.parse().expect("port"),
            )
        })
        .collect();
    assert_eq!(
        voters,
        [(node_id, own_host.to_owned(), controller_port)],
        "the single voter is this node, on its controller listener"
    );
}

#[test]
fn kafka_starts_the_cluster_id_listeners_and_quorum_are_valid() {
    let compose = compose();
    let kafka = service(&compose, "kafka");
    let env = kafka["environment"].as_object().expect("kafka environment");
    check_kraft(env, "kafka");

    // The CI workflow's Kafka service container is started the same way.
    let text = std::fs::read(root().join(".github/workflows/ci.yml")).expect("ci.yml");
    let workflow = yaml_as_json(&text, ".github/workflows/ci.yml");
    let env = workflow["jobs"]["real-services"]["services"]["kafka"]["env"]
        .as_object()
        .expect("the real-services job's kafka env");
    check_kraft(env, "localhost");

    // The checks catch the demo's old mistake.
    assert!(kafka_uuid("regiondb-demo-kraft01").is_err());
    assert!(kafka_uuid("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
}

#[test]
fn mongod_and_redis_options_are_ones_they_accept() {
    let compose = compose();
    let args = |name: &str| -> Vec<String> {
        service(&compose, name)["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has a command"))
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    let option = |args: &[String], flag: &str| -> Option<String> {
        args.windows(2).find(|w| w[0] == flag).map(|w| w[1].clone())
    };
    for name in ["mongo-region-1", "mongo-region-2", "mongo-region-3"] {
        let command = args(name);
        assert_eq!(command[0], "mongod", "{name} runs mongod itself");
        let cache: f64 = option(&command, "--wiredTigerCacheSizeGB")
            .unwrap_or_else(|| panic!("{name} caps its cache"))
            .parse()
            .expect("a number of GB");
        // mongod refuses values outside 0.25..=10000.
        assert!((0.25..=1.0).contains(&cache), "{name}: {cache} GB");
    }
    let redis = args("redis");
    assert_eq!(redis[0], "redis-server");
    let fsync = option(&redis, "--appendfsync").expect("appendfsync");
    assert!(["always", "everysec", "no"].contains(&fsync.as_str()));
    let events = option(&redis, "--notify-keyspace-events").expect("keyspace events");
    assert!(
        events.chars().all(|c| "KEg$lshzxetdmnA".contains(c)),
        "{events}"
    );
    assert!(events.contains('K') && (events.contains('h') || events.contains('A')));
}
