//! Faults: freezing, killing and restarting the servers a test started
//! (never external ones: see `controls_processes`).

use nix::sys::signal::Signal;

use super::*;

impl TestApp {
    /// Whether the servers are ours to freeze and kill.
    pub fn controls_processes(&self) -> bool {
        let ours = self.redis.is_some()
            && self.kafka.proc.is_some()
            && self.mongo.iter().all(Option::is_some);
        if !ours {
            eprintln!(
                "skipped: this test freezes or kills servers, which external services do not allow"
            );
        }
        ours
    }

    pub fn freeze_mongo(&self, node: &str) {
        self.mongo_proc(node).signal(Signal::SIGSTOP);
    }

    pub fn thaw_mongo(&self, node: &str) {
        self.mongo_proc(node).signal(Signal::SIGCONT);
    }

    pub fn mongo_proc(&self, node: &str) -> &Proc {
        self.mongo[node_index(node)]
            .as_ref()
            .expect("local mongo process")
    }

    /// SIGKILL: the node's in-memory data is gone with it.
    pub fn kill_mongo(&mut self, node: &str) {
        self.mongo[node_index(node)]
            .as_mut()
            .expect("local mongo process")
            .kill();
    }

    /// Starts a node's MongoDB again on its port: empty (jongodb keeps
    /// nothing on disk), like a node rebuilt after losing its disk.
    pub async fn restart_mongo(&mut self, node: &str) {
        let i = node_index(node);
        let port: u16 = self.mongo_uris[i]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the mongo uri");
        let log =
            std::fs::File::create(self.dir.join(format!("jongodb-{node}-2.log"))).expect("log");
        let child = Command::new(tool("jongodb"))
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart jongodb");
        self.mongo[i] = Some(Proc {
            child,
            name: format!("jongodb-{node}"),
        });
        wait_until("mongo to restart", DEADLINE, || port_open(port)).await;
    }

    /// Kills Redis: status changes can no longer be saved.
    pub fn kill_redis(&mut self) {
        self.redis.as_mut().expect("local redis").kill();
    }

    /// Restarts Redis on the same port (with `durable_redis`, on the same
    /// append-only file).
    pub async fn restart_redis(&mut self) {
        self.kill_redis();
        let port = self.redis_port;
        let log = std::fs::File::create(self.dir.join("redis-2.log")).expect("log");
        let child = redis_command(port, true)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart redis");
        self.redis = Some(Proc {
            child,
            name: "redis".into(),
        });
        // Redis listens before it has loaded its append-only file, and
        // answers LOADING until then: a command sent in between is lost.
        wait_until("redis to load its data", DEADLINE, || async move {
            let answer = std::process::Command::new(tool("redis-cli"))
                .args(["-p", &port.to_string(), "PING"])
                .output();
            answer.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
        })
        .await;
    }

    pub fn redis_port(&self) -> u16 {
        self.redis_port
    }

    /// Kills the broker: connections are refused from now on.
    pub fn kill_kafka(&mut self) {
        self.kafka.proc.as_mut().expect("local kafka").kill();
    }

    /// Restarts the broker on the same port and storage.
    ///
    /// Harness workaround for a tansu 0.6 bug (real Kafka does not have
    /// it): tansu cannot read back the consumer-group state it stored before
    /// a restart ("invalid type: string" in its log), and every group that
    /// existed then stays wedged: new members get no partitions, ever. So
    /// while the broker is down the stored group *membership* is deleted
    /// (table `consumer_group_detail`); committed offsets (`consumer_offset`)
    /// are kept, and the groups form again from them, as after a real
    /// broker's coordinator failover.
    pub async fn restart_kafka(&mut self) {
        if let Some(mut old) = self.kafka.proc.take() {
            old.kill();
        }
        let forgot = Command::new("python3")
            .current_dir(&self.dir)
            .args([
                "-c",
                "import sqlite3; c = sqlite3.connect('kafka.db'); \
                 c.execute('delete from consumer_group_detail'); c.commit()",
            ])
            .status()
            .expect("python3 for the tansu workaround");
        assert!(forgot.success(), "could not reset tansu's group state");
        let port = self.kafka.port;
        let log = std::fs::File::create(self.dir.join("tansu-2.log")).expect("log");
        let child = tansu_command(port)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart tansu");
        self.kafka.proc = Some(Proc {
            child,
            name: "tansu".into(),
        });
        wait_until("kafka to restart", DEADLINE, || port_open(port)).await;
    }
}

/// Debian's libfaketime (package `libfaketime`, installed by
/// `scripts/install-tools`), or `LIBFAKETIME` if set.
pub fn faketime_library() -> String {
    if let Ok(path) = std::env::var("LIBFAKETIME") {
        return path;
    }
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ];
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
        .expect("libfaketime (Debian package libfaketime; scripts/install-tools)")
}

/// The settings that start a process whose wall clock runs `offset`
/// (`+2`, `-1.5`, in seconds) from the host's; its monotonic clock is left
/// alone, like a host whose NTP sync broke.
pub fn skewed_clock(offset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", faketime_library()),
        ("FAKETIME", offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
}

/// `settings` as `TestApp::spawn_instance_with` takes them.
pub fn as_settings<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
