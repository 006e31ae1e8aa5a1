//! Real TLS for the tests: a CA made by `openssl` for each test, a server
//! certificate it signs (for 127.0.0.1 and localhost), and `stunnel`
//! terminating TLS in front of a plaintext test server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA that signed nothing here: the wrong CA to trust.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn self_signed_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &format!("/CN=regiondb test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

impl TestCa {
    /// A CA and a server certificate in `dir` (which exists).
    pub fn make(dir: &Path) -> TestCa {
        let ca = self_signed_ca(dir, "ca");
        let other_ca = self_signed_ca(dir, "other-ca");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext file");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.pem",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa {
            ca,
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_ca,
        }
    }

    /// `stunnel` taking TLS on `accept` (127.0.0.1) and passing the
    /// plaintext on to `target`; waits until it listens.
    pub async fn front(&self, dir: &Path, name: &str, accept: u16, target: u16) -> Proc {
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "foreground = yes\npid =\ndebug = 4\n[{name}]\naccept = 127.0.0.1:{accept}\n\
                 connect = 127.0.0.1:{target}\ncert = {}\nkey = {}\n",
                self.cert.display(),
                self.key.display()
            ),
        )
        .expect("stunnel config");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
        let child = Command::new("stunnel4")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("stunnel4 (Debian package stunnel4; scripts/install-tools)");
        let proc = Proc {
            child,
            name: name.into(),
        };
        wait_until(&format!("{name} to listen"), DEADLINE, || port_open(accept)).await;
        proc
    }
}

/// tansu listening in plaintext and advertising the TLS address `stunnel`
/// serves in front of it: answers both processes and the TLS bootstrap.
pub async fn tls_kafka(dir: &Path, ca: &TestCa) -> (Proc, Proc, String) {
    let tls_port = free_port();
    let (broker, port) =
        start_server("tansu-tls", dir, |port| tansu_advertising(port, tls_port)).await;
    let front = ca.front(dir, "kafka-tls", tls_port, port).await;
    (broker, front, format!("127.0.0.1:{tls_port}"))
}
