//! Server processes: starting them on free loopback ports, signalling and
//! stopping them, and the app's own processes (instances, subcommands).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;

use super::*;

/// Generous bound for conditions that normally hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A child process killed when dropped.
pub struct Proc {
    pub(super) child: Child,
    pub(super) name: String,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap_or_else(|e| panic!("{signal} {}: {e}", self.name));
        if signal == Signal::SIGSTOP {
            // kill() only queues the stop; every thread stops when it next
            // passes through the kernel. Wait until the process is stopped
            // (state T), so a busy machine cannot answer one more request.
            let stat = format!("/proc/{}/stat", self.child.id());
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                let state = std::fs::read_to_string(&stat).unwrap_or_default();
                let stopped = state
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .is_some_and(|s| s == "T" || s == "t");
                if stopped {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("{} did not stop", self.name);
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "{} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly on some kernels.
        let _ = kill(self.pid(), Signal::SIGCONT);
        self.kill();
    }
}

/// The binary under test: this tree's, unless `REGIONDB_BIN` names another
/// (the benchmark compares two builds that way).
pub fn app_binary() -> PathBuf {
    std::env::var_os("REGIONDB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_regiondb")))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/test-output/<name>`, emptied: a test's logs and server data.
pub fn fresh_output_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target/test-output").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test output dir");
    dir
}

/// A tool from `.tools/bin` (where scripts/test installs it), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let local = repo_root().join(".tools/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// A port nothing listens on, never handed out before in this process:
/// the kernel may give the same free port to two tests starting servers at
/// once, and a test whose server lost that race would then talk to
/// another test's server (and freeze or kill the wrong one).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// Starts a server on a free port and waits until it accepts connections,
/// retrying on another port if it dies (e.g. the port was taken meanwhile).
pub async fn start_server(name: &str, dir: &Path, args: impl Fn(u16) -> Command) -> (Proc, u16) {
    for _ in 0..3 {
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        let mut cmd = args(port);
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {name} ({:?}): {e}; run scripts/test to install it",
                cmd.get_program()
            )
        });
        let mut proc = Proc {
            child,
            name: name.into(),
        };
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if port_open(port).await {
                return (proc, port);
            }
            if proc.exited() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proc.kill();
    }
    panic!("{name} did not start; see its log in {}", dir.display());
}

pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, deadline, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await
}

/// Like [`wait_until`], for a check that answers what it found: the first
/// `Some`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Another instance of the app (see [`TestApp::spawn_instance`]).
pub struct Instance {
    pub address: String,
    proc: Option<Proc>,
}

impl Instance {
    /// SIGTERM and wait: the graceful path.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate().await;
        }
    }

    /// SIGKILL.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(Signal::SIGKILL);
            p.kill();
        }
    }
}

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`), if there is one.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let have: Vec<&str> = labels_part.split(',').collect();
        labels
            .iter()
            .all(|l| have.contains(l))
            .then(|| value.trim().parse().ok())?
    })
}

impl TestApp {
    /// Starts a regiondb process (log `<name>.log`) with the app's settings
    /// and waits until it is ready; answers it and its address.
    pub async fn start_instance(&self, name: &str, extra: &[(&str, &str)]) -> (Proc, String) {
        let (proc, port) = start_server(name, &self.dir, |port| {
            let mut c = Command::new(app_binary());
            c.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("PORT", port.to_string());
            for (k, v) in &self.app_env {
                c.env(k, v);
            }
            for (k, v) in extra {
                c.env(k, v);
            }
            c
        })
        .await;
        let address = format!("http://127.0.0.1:{port}");
        let http = self.http.clone();
        let url = format!("{address}/readyz");
        wait_until(&format!("{name} to be ready"), DEADLINE, || {
            let http = http.clone();
            let url = url.clone();
            async move {
                matches!(http.get(&url).send().await, Ok(r) if r.status() == StatusCode::OK)
            }
        })
        .await;
        (proc, address)
    }

    /// Starts (or restarts) the regiondb binary and waits until it is ready.
    pub async fn start_app(&mut self) {
        self.app_runs += 1;
        let log_path = self.dir.join(format!("regiondb-{}.log", self.app_runs));
        let (proc, address) = self.start_instance("regiondb", &[]).await;
        let _ = std::fs::rename(self.dir.join("regiondb.log"), &log_path);
        self.address = address;
        self.app = Some(proc);
    }

    /// A line of the app process's `/proc/<pid>/status` (e.g. `VmRSS`,
    /// `Threads`), as its first number.
    pub fn app_proc_status(&self, key: &str) -> u64 {
        let pid = self.app.as_ref().expect("app running").pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    }

    /// SIGKILL: no graceful shutdown, no final commit.
    pub fn crash_app(&mut self) {
        if let Some(mut app) = self.app.take() {
            app.signal(Signal::SIGKILL);
            app.kill();
        }
    }

    /// Sends `signal` to the app, without waiting for anything.
    pub fn signal_app(&self, signal: Signal) {
        self.app.as_ref().expect("app running").signal(signal);
    }

    /// SIGSTOP (and SIGCONT): the app alive to the kernel, silent to all.
    pub fn freeze_app(&self) {
        self.app
            .as_ref()
            .expect("app running")
            .signal(Signal::SIGSTOP);
    }

    pub fn thaw_app(&self) {
        self.app
            .as_ref()
            .expect("app running")
            .signal(Signal::SIGCONT);
    }

    /// SIGTERM and wait: the graceful path.
    pub async fn stop_app(&mut self) -> std::process::ExitStatus {
        let mut app = self.app.take().expect("app running");
        app.terminate().await
    }

    pub fn app_log(&self) -> String {
        (1..=self.app_runs)
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("regiondb-{i}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Starts another instance of the app on the same services and waits
    /// until it is ready.
    pub async fn spawn_instance(&self, name: &str) -> Instance {
        self.spawn_instance_with(name, &[]).await
    }

    /// [`TestApp::spawn_instance`] with some settings of its own.
    pub async fn spawn_instance_with(&self, name: &str, extra: &[(&str, &str)]) -> Instance {
        let (proc, address) = self.start_instance(name, extra).await;
        Instance {
            address,
            proc: Some(proc),
        }
    }

    /// Runs another command of the binary (`regiondb repair ...`) with the
    /// app's settings.
    pub fn run_command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(app_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(args);
        for (k, v) in &self.app_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run regiondb")
    }
}

pub fn redis_command(port: u16, durable: bool) -> Command {
    let mut c = Command::new(tool("redis-server"));
    c.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ]);
    if durable {
        c.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        c.args(["--appendonly", "no"]);
    }
    c
}

pub fn tansu_command(port: u16) -> Command {
    tansu_advertising(port, port)
}

/// tansu listening on `port` and telling clients to connect to
/// `advertised` (a TLS front, say), storing in `kafka.db`.
pub fn tansu_advertising(port: u16, advertised: u16) -> Command {
    let mut c = Command::new(tool("tansu"));
    c.args([
        "broker",
        "--listener-url",
        &format!("tcp://127.0.0.1:{port}"),
    ])
    .args([
        "--advertised-listener-url",
        &format!("tcp://127.0.0.1:{advertised}"),
    ])
    .args(["--storage-engine", "sqlite://kafka.db"]);
    c
}
