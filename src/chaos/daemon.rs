//! The daemon under test of `warden chaos`: started, SIGKILLed and restarted
//! whenever it dies (as a service manager would), and talked to over its socket.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Plan;
use crate::admin::client::Client;

/// One request on a (re)connected client; the client is dropped on a broken connection.
pub(super) fn request(
    client: &mut Option<Client>,
    socket: &Path,
    op: &str,
    fields: Value,
) -> Result<Value, String> {
    if client.is_none() {
        let c = Client::connect(socket).map_err(|e| e.to_string())?;
        c.set_timeout(Some(Duration::from_secs(10)));
        *client = Some(c);
    }
    let c = client.as_mut().expect("connected");
    match c.request(op, fields) {
        Ok(v) => Ok(v),
        Err(crate::admin::client::ClientError::Refused(e)) => {
            Err(format!("{}: {}", e.code, e.message))
        }
        Err(e) => {
            *client = None;
            Err(e.to_string())
        }
    }
}

/// The daemon under test, restarted whenever it dies.
pub(super) struct Daemon<'a> {
    pub(super) plan: &'a Plan,
    pub(super) child: Option<Child>,
    pub(super) kills: u64,
    pub(super) max_recovery: Duration,
}

impl Daemon<'_> {
    pub(super) fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.plan.dir.join("daemon.log"))
            .map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let t = Instant::now();
        let child = Command::new(exe)
            .args(["run", "--config"])
            .arg(&self.plan.config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        self.child = Some(child);
        let deadline = t + Duration::from_secs(30);
        loop {
            if Client::connect(&self.plan.socket)
                .is_ok_and(|mut c| c.request("ping", json!({})).is_ok())
            {
                self.max_recovery = self.max_recovery.max(t.elapsed());
                return Ok(());
            }
            if self.exited() {
                return Ok(()); // died at once (an abort poison): revive() starts it again
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the daemon did not serve within 30 s; see {}",
                    self.plan.dir.join("daemon.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(super) fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Restarts the daemon if it died.
    pub(super) fn revive(&mut self, client: &mut Option<Client>) {
        if self.exited() {
            *client = None;
            let _ = self.start();
        }
    }

    pub(super) fn sigkill(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
            self.kills += 1;
        }
        let _ = self.start();
    }

    /// Sends task `n` until it is accepted: a full mailbox is back-pressure (wait
    /// and retry, as a producer would, for up to a minute); a broken connection or a
    /// dead daemon is retried a few times across restarts (the idempotency key makes
    /// a retry safe). False when it was never accepted.
    pub(super) fn send(
        &mut self,
        client: &mut Option<Client>,
        to: &str,
        payload: Value,
        n: u64,
    ) -> bool {
        let patience = Instant::now() + Duration::from_secs(60);
        let mut failures = 0;
        while failures < 50 && Instant::now() < patience {
            let fields = json!({"to": to, "payload": payload.clone(), "key": format!("chaos-{n}"),
                "correlation": super::correlation_of(n)});
            match request(client, &self.plan.socket, "send", fields) {
                Ok(_) => return true,
                Err(e) if e.starts_with("mailbox_full") => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    failures += 1;
                    self.revive(client);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        false
    }

    /// Waits until every agent has nothing pending or in flight, twice in a row,
    /// restarting the daemon when it dies. False when `limit` passed first.
    pub(super) fn drain(&mut self, client: &mut Option<Client>, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut quiet = 0;
        while Instant::now() < deadline {
            self.revive(client);
            let idle = request(client, &self.plan.socket, "stats", json!({})).is_ok_and(|s| {
                s["agents"]
                    .as_object()
                    .is_some_and(|a| a.values().all(|v| v["pending"] == 0 && v["in_flight"] == 0))
            });
            quiet = if idle { quiet + 1 } else { 0 };
            if quiet >= 3 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub(super) fn wait_exit(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
