//! One port process: spawned in its own process group with exactly the
//! environment it is given, its stdout read as bounded protocol lines, its stderr
//! drained continuously into the log (the last lines kept for a dead letter), its
//! exit watched. Dropping a `Port` kills its whole process group.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{mpsc, watch};

use super::leftovers;

/// Longest protocol line, and longest stderr line kept (longer ones are cut).
pub(super) const MAX_LINE: usize = 1 << 20;
const MAX_LOG_LINE: usize = 4096;
/// Stderr lines kept for a dead letter.
const TAIL_LINES: usize = 20;

/// What the port's stdout gave.
#[derive(Debug)]
pub(super) enum Line {
    /// A JSON-RPC 2.0 object.
    Msg(Value),
    /// A line that is not one: the text (cut).
    NotProtocol(String),
    /// A line over [`MAX_LINE`].
    TooLong,
    /// stdout closed (the port exited or closed it).
    Eof,
}

/// How a port is started.
pub(super) struct Launch {
    pub agent: String,
    pub replica: usize,
    pub command: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// A running port.
pub(super) struct Port {
    pub(super) pid: i32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Line>,
    exit: watch::Receiver<Option<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The delivery in flight or last answered, which stderr lines are logged
    /// with: (message id, correlation, trace id).
    about: Arc<Mutex<Option<About>>>,
    /// Set while a delivery is in flight: an exit then is the delivery's crash,
    /// not an idle exit.
    pub(super) busy: Arc<AtomicBool>,
    /// Set once the port is being stopped on purpose.
    pub(super) stopping: Arc<AtomicBool>,
    record: Option<PathBuf>,
}

impl Port {
    /// Spawns the port. `on_idle_exit` is called with the exit's description when
    /// the process exits while no delivery is in flight and nobody stops it.
    pub(super) fn spawn(
        l: &Launch,
        on_idle_exit: impl FnOnce(Option<i32>, String) + Send + 'static,
    ) -> Result<Port, String> {
        let (program, args) = l.command.split_first().ok_or("command is empty")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &l.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        let pid = child.id().ok_or("the port exited at once")? as i32;
        let record = leftovers::remember(pid, &l.agent, l.replica);
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, lines) = mpsc::channel(16);
        tokio::spawn(read_lines(stdout, tx));
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let about = Arc::new(Mutex::new(None));
        tokio::spawn(drain_stderr(
            stderr,
            tail.clone(),
            about.clone(),
            l.agent.clone(),
            l.replica,
        ));
        let busy = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let (exit_tx, exit) = watch::channel(None);
        let (b, s, agent) = (busy.clone(), stopping.clone(), l.agent.clone());
        tokio::spawn(async move {
            let (code, what) = match child.wait().await {
                Ok(st) => (
                    st.code(),
                    match (
                        st.code(),
                        std::os::unix::process::ExitStatusExt::signal(&st),
                    ) {
                        (Some(c), _) => format!("exited with status {c}"),
                        (None, Some(sig)) => format!("killed by signal {sig}"),
                        _ => "exited".to_string(),
                    },
                ),
                Err(e) => (None, format!("cannot be waited for: {e}")),
            };
            let _ = exit_tx.send(Some(what.clone()));
            if !b.load(Ordering::Acquire) && !s.load(Ordering::Acquire) {
                tracing::warn!(agent = %agent, pid, "port {what} while idle");
                on_idle_exit(code, what);
            }
        });
        Ok(Port {
            pid,
            stdin,
            lines,
            exit,
            tail,
            about,
            busy,
            stopping,
            record,
        })
    }

    /// Writes one JSON line.
    pub(super) async fn send(&mut self, v: &Value) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin is closed")?;
        let mut line = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .await
            .map_err(|e| format!("cannot write to the port: {e}"))?;
        stdin
            .flush()
            .await
            .map_err(|e| format!("cannot write to the port: {e}"))
    }

    /// The next line from stdout.
    pub(super) async fn next(&mut self) -> Line {
        self.lines.recv().await.unwrap_or(Line::Eof)
    }

    /// How the process ended, once it has (waits up to `wait` for it).
    pub(super) async fn exit_reason(&mut self, wait: Duration) -> Option<String> {
        let _ = tokio::time::timeout(wait, self.exit.wait_for(Option::is_some)).await;
        self.exit.borrow().clone()
    }

    /// Names the message being delivered in the stderr lines logged from now on.
    pub(super) fn delivering(&self, about: About) {
        *self.about.lock().unwrap_or_else(|p| p.into_inner()) = Some(about);
    }

    /// The last stderr lines, oldest first.
    pub(super) fn stderr_tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Kills the process group now.
    pub(super) fn kill(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// Stops the port gracefully: stdin closed (a port must exit then), SIGTERM to
    /// the group after `patience`, SIGKILL a second after that.
    pub(super) async fn stop(&mut self, patience: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.stdin.take();
        if self.exit_reason(patience).await.is_some() {
            return;
        }
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
        if self.exit_reason(Duration::from_secs(1)).await.is_some() {
            return;
        }
        tracing::warn!(pid = self.pid, "port ignored SIGTERM; killed");
        self.kill();
        let _ = self.exit_reason(Duration::from_secs(1)).await;
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // the whole group: a port's own children go with it
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(r) = self.record.take() {
            let _ = std::fs::remove_file(r);
        }
    }
}

/// Reads stdout as lines of at most [`MAX_LINE`] bytes (tokio-util's
/// `LinesCodec`); stops at the first line that is too long, or at the end.
async fn read_lines(stdout: tokio::process::ChildStdout, tx: mpsc::Sender<Line>) {
    use futures::StreamExt;
    use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let msg = match lines.next().await {
            None => Line::Eof,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => Line::TooLong,
            Some(Err(LinesCodecError::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
                Line::NotProtocol("a line that is not UTF-8".into())
            }
            Some(Err(LinesCodecError::Io(_))) => Line::Eof,
            Some(Ok(text)) if text.trim().is_empty() => continue,
            Some(Ok(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(v)
                    if v.is_object() && v.get("jsonrpc").and_then(Value::as_str) == Some("2.0") =>
                {
                    Line::Msg(v)
                }
                _ => Line::NotProtocol(text.chars().take(200).collect()),
            },
        };
        let last = matches!(msg, Line::Eof | Line::TooLong);
        if tx.send(msg).await.is_err() || last {
            return;
        }
    }
}

/// The message a port's stderr lines are about: (message id, correlation, trace
/// id, empty without trace context).
pub(super) type About = (String, String, String);

/// Logs each stderr line (cut to 4 KiB) with the agent's name and the message
/// delivered (stderr is read apart from the answers: a line written just before
/// an answer may be read after it, so the last delivery's message stays named
/// until the next); keeps the last lines.
async fn drain_stderr(
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    about: Arc<Mutex<Option<About>>>,
    agent: String,
    replica: usize,
) {
    let mut r = BufReader::new(stderr);
    loop {
        // read_until is unbounded: take the line in pieces and keep the first 4 KiB
        let mut kept = Vec::new();
        let done = loop {
            let chunk = match r.fill_buf().await {
                Ok(c) if !c.is_empty() => c,
                _ => break true,
            };
            let (piece, end) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], Some(i + 1)),
                None => (chunk, None),
            };
            let room = MAX_LOG_LINE.saturating_sub(kept.len());
            kept.extend_from_slice(&piece[..piece.len().min(room)]);
            let n = end.unwrap_or(chunk.len());
            r.consume(n);
            if end.is_some() {
                break false;
            }
        };
        if !kept.is_empty() {
            let line = String::from_utf8_lossy(&kept).into_owned();
            let about = about.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match about {
                Some((message_id, correlation, trace_id)) if !trace_id.is_empty() => {
                    tracing::info!(agent = %agent, replica, message_id, correlation, trace_id,
                        "port: {line}")
                }
                Some((message_id, correlation, _)) => {
                    tracing::info!(agent = %agent, replica, message_id, correlation, "port: {line}")
                }
                None => tracing::info!(agent = %agent, replica, "port: {line}"),
            }
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
        if done {
            return;
        }
    }
}
