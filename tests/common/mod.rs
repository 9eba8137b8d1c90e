//! Helpers shared by the integration tests: polling waits (never sleeps), and a
//! handle on the real `warden` binary started on a temporary directory.
#![allow(dead_code)]

pub mod fake_llm;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Polls `check` until it is true or `timeout` passes; panics with `what` on timeout.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Blocking variant of [`wait_until`] for tests that drive processes.
pub fn wait_until_blocking(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `warden` binary under test.
pub fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// A temp dir with a config file written into it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// Writes `config` (with `{dir}` replaced by the sandbox path) as `warden.toml`.
    pub fn new(config: &str) -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config.replace("{dir}", dir.path().to_str().expect("utf-8 path"));
        std::fs::write(dir.path().join("warden.toml"), text).expect("write config");
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("warden.toml")
    }

    /// `warden <args>` run to completion in the sandbox.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(warden_bin())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("run warden")
    }

    /// Starts `warden run --config warden.toml` in the background.
    pub fn start(&self) -> Daemon {
        let log = self.path("daemon.log");
        let child = Command::new(warden_bin())
            .args(["run", "--config"])
            .arg(self.config())
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn warden");
        Daemon { child, log }
    }
}

/// The smallest useful tree: root and one sink agent `out` writing to
/// `{dir}/out.jsonl`, taking fault directives, durable by default.
pub const SINK_TREE: &str = r#"
[daemon]
data_dir = "{dir}/data"

[supervisor.root]
children = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
accept_faults = true
"#;

/// `warden check` on `config` (written to a sandbox): exit code and stderr.
pub fn check(config: &str) -> (i32, String) {
    let sb = Sandbox::new(config);
    let out = sb.run(&["check", "--config", "warden.toml"]);
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        wait_until_blocking(
            &format!("daemon log to contain {needle:?}"),
            timeout,
            || self.log_text().contains(needle),
        );
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal daemon");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Complete lines of a JSON-lines file (missing file: none). A last line without its
/// newline is a write still under way, read mid-way: it is left for the next look.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// A sink file's lines, each message once: a sink writes at least once (a kill
/// between its write and its ack repeats the line, under the same message id).
pub fn sink_messages(path: &Path) -> Vec<serde_json::Value> {
    let mut seen = std::collections::HashSet::new();
    json_lines(path)
        .into_iter()
        .filter(|l| seen.insert(l["message_id"].as_str().unwrap_or("").to_string()))
        .collect()
}

impl Sandbox {
    /// The admin socket of the standard test config (`data_dir = "{dir}/data"`).
    pub fn socket(&self) -> PathBuf {
        self.path("data/warden.sock")
    }

    /// Starts the daemon and waits until it serves.
    pub fn start_ready(&self) -> Daemon {
        let d = self.start();
        d.wait_for_log("warden started", Duration::from_secs(20));
        d
    }

    /// Starts the daemon and expects it to refuse to run: exit 1 within 10 s with
    /// `needle` in its log. Returns the log.
    pub fn start_fails(&self, needle: &str) -> String {
        let mut d = self.start();
        let status = d.wait_exit(Duration::from_secs(10));
        let log = d.log_text();
        assert_eq!(status.code(), Some(1), "log:\n{log}");
        assert!(
            log.contains(needle),
            "expected {needle:?} in the log:\n{log}"
        );
        log
    }

    /// `warden ctl --socket <socket> <args>`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["ctl", "--socket"];
        let sock = self.socket();
        all.push(sock.to_str().unwrap());
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `warden ctl --json ...`, parsed; panics unless it exits 0.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("ctl --json prints JSON")
    }

    /// A raw connection to the admin socket.
    pub fn conn(&self) -> Conn {
        Conn::open(&self.socket())
    }
}

/// A raw admin-socket connection (newline-delimited JSON).
pub struct Conn {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl Conn {
    pub fn open(socket: &Path) -> Conn {
        let s =
            std::os::unix::net::UnixStream::connect(socket).expect("connect to the admin socket");
        Conn::from_stream(s)
    }

    /// A connection over a stream already connected.
    pub fn from_stream(s: std::os::unix::net::UnixStream) -> Conn {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            reader: std::io::BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.writer.write_all(bytes).expect("write to the socket");
    }

    pub fn read(&mut self) -> serde_json::Value {
        use std::io::BufRead;
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a reply line");
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&line).expect("reply is JSON")
    }

    /// Sends one request object and returns the reply.
    pub fn req(&mut self, v: serde_json::Value) -> serde_json::Value {
        let mut line = serde_json::to_vec(&v).unwrap();
        line.push(b'\n');
        self.write_raw(&line);
        self.read()
    }
}

/// POSTs `body` (JSON) to `http://<addr><path>` over a plain TCP connection and
/// returns the status and the body (HTTP/1.1, `Connection: close`).
pub fn http_post(addr: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(addr).expect("the server listens");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A port on 127.0.0.1 free a moment ago (for a server a test configures).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on 127.0.0.1:`port`: the whole answer, headers and text.
pub fn scrape_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// `agent`'s dead letters (`dlq_list`), oldest first.
pub fn dead_letters(c: &mut Conn, agent: &str) -> Vec<serde_json::Value> {
    c.req(serde_json::json!({"op": "dlq_list", "agent": agent}))["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
