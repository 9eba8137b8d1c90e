//! The admin socket server.
//!
//! Guarantees:
//! - **One daemon per data dir.** An exclusive `flock` on `<data_dir>/warden.lock`
//!   is taken before anything else is opened; a second daemon is refused with the
//!   holder's pid. The lock dies with the process, so a crash leaves nothing to clean.
//! - **Nobody else gets in (G11).** The socket's directory is made 0700 and the
//!   socket 0600. An existing socket file is removed only after a connect to it
//!   fails (a stale socket); if a daemon answers there, start-up is refused.
//! - **Bad input is refused, never fatal (G10).** Every malformed request gets an
//!   error reply; a line over 1 MiB gets `line_too_long` and is skipped; the
//!   connection and the daemon live on. Clients beyond the cap get `busy` and are
//!   closed; a client idle past the idle timeout is closed.
//! - The server stops accepting when shutdown begins; open connections close.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch, Semaphore};

use super::ops::{apply, AdminCtx, Outcome};
use super::protocol::{err_line, ok_line, parse, AdminError, ErrorCode, MAX_LINE};

/// Limits of the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Clients served at once.
    pub max_clients: usize,
    /// A client silent this long is closed.
    pub idle_timeout: Duration,
}

/// Why the daemon could not take its data dir or socket.
#[derive(Debug, thiserror::Error)]
pub enum AdminSetupError {
    /// Another daemon holds the lock.
    #[error("another warden is running on {dir} (pid {pid} holds {lock}); stop it first, or use another data_dir")]
    Locked {
        /// Data dir.
        dir: String,
        /// The lock file.
        lock: String,
        /// Holder's pid as written in the lock file.
        pid: String,
    },
    /// A daemon answers on the socket path.
    #[error(
        "a daemon is already listening on {0}; stop it first, or set daemon.socket to another path"
    )]
    SocketInUse(String),
    /// Filesystem trouble.
    #[error("{0}")]
    Io(String),
}

/// Holds the data dir's lock for the daemon's life.
pub struct DirLock {
    _file: File,
}

/// Takes `<data_dir>/warden.lock` exclusively and writes this pid into it.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, AdminSetupError> {
    let path = dir.join("warden.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| AdminSetupError::Io(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(AdminSetupError::Locked {
                dir: dir.display().to_string(),
                lock: path.display().to_string(),
                pid: pid.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(AdminSetupError::Io(format!(
                "cannot lock {}: {e}",
                path.display()
            )))
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(DirLock { _file: file })
}

/// Binds the socket: its directory created private (0700) if missing, never
/// re-moded if it exists (it may be a shared 1777 directory or `/run`); a stale
/// socket is removed only if nobody answers on it, and anything at the path that
/// is not a socket is refused, never deleted.
pub async fn bind(path: &Path) -> Result<UnixListener, AdminSetupError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    AdminSetupError::Io(format!("cannot create {}: {e}", dir.display()))
                })?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(AdminSetupError::Io(format!(
                "{} exists and is not a socket; move it away, or set daemon.socket to another path",
                path.display()
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(AdminSetupError::SocketInUse(path.display().to_string()));
        }
        tracing::info!(socket = %path.display(), "removing a stale socket (nobody answered on it)");
        std::fs::remove_file(path).map_err(|e| {
            AdminSetupError::Io(format!(
                "cannot remove stale socket {}: {e}",
                path.display()
            ))
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| AdminSetupError::Io(format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| AdminSetupError::Io(format!("cannot chmod {}: {e}", path.display())))?;
    Ok(listener)
}

/// Serves clients until `stop` turns true; then removes the socket file.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    ctx: Arc<AdminCtx>,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_clients));
    // Accept failures (out of file descriptors, most often) back off, doubling
    // from 10 ms to 1 s, and are logged once per streak, not once per try.
    let mut failing: Option<Duration> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                if failing.take().is_some() {
                    tracing::info!("admin accept works again");
                }
                s
            }
            Err(e) => {
                let wait = match failing {
                    None => {
                        tracing::warn!(error = %e, "admin accept failed (out of file descriptors? raise the limit or lower daemon.admin_max_clients); retrying with backoff");
                        Duration::from_millis(10)
                    }
                    Some(w) => (w * 2).min(Duration::from_secs(1)),
                };
                failing = Some(wait);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let mut s = stream;
                let e = AdminError::new(
                    ErrorCode::Busy,
                    "too many admin clients at once; retry shortly",
                );
                let mut line = err_line(&Value::Null, &e);
                line.push(b'\n');
                let _ = s.write_all(&line).await;
            });
            continue;
        };
        let ctx = ctx.clone();
        let stop = stop.clone();
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            connection(stream, ctx, idle, stop).await;
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// One line read with a bound.
enum Line {
    Data(Vec<u8>),
    TooLong,
    Eof,
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Line> {
    let mut acc = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if acc.is_empty() {
                Line::Eof
            } else {
                Line::Data(acc)
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let found = done > chunk.len();
        if !too_long {
            if acc.len() + chunk.len() > MAX_LINE {
                too_long = true;
                acc = Vec::new();
            } else {
                acc.extend_from_slice(chunk);
            }
        }
        r.consume(done);
        if found {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Data(acc)
            });
        }
    }
}

async fn connection(
    stream: UnixStream,
    ctx: Arc<AdminCtx>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    // Idle means no complete request: blank lines do not keep a client slot.
    let mut idle_until = tokio::time::Instant::now() + idle;
    loop {
        let line = tokio::select! {
            l = tokio::time::timeout_at(idle_until, read_line(&mut reader)) => l,
            _ = stop.wait_for(|s| *s) => return,
        };
        let bytes = match line {
            Err(_) => {
                let e = AdminError::new(
                    ErrorCode::IdleTimeout,
                    format!("no request for {idle:?}; closing"),
                );
                let _ = write(&mut w, err_line(&Value::Null, &e)).await;
                return;
            }
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(Line::TooLong)) => {
                let e = AdminError::new(
                    ErrorCode::LineTooLong,
                    format!("request lines are limited to {MAX_LINE} bytes"),
                );
                if write(&mut w, err_line(&Value::Null, &e)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Ok(Line::Data(b))) => b,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        idle_until = tokio::time::Instant::now() + idle;
        let reply = match parse(&bytes) {
            Err((id, e)) => err_line(&id, &e),
            // A client that hangs up while its request runs (a long `call`) frees
            // its slot at once: the request is dropped, not waited out.
            Ok(req) => match tokio::select! {
                o = apply(req.op, &ctx) => o,
                _ = peer_gone(&reader) => return,
            } {
                Outcome::Reply(Ok(v)) => ok_line(&req.id, v),
                Outcome::Reply(Err(e)) => err_line(&req.id, &e),
                Outcome::Watch => {
                    watch_events(&req.id, &ctx, &mut reader, &mut w, &mut stop).await;
                    return;
                }
            },
        };
        if write(&mut w, reply).await.is_err() {
            return;
        }
    }
}

/// Resolves once the client has closed its end (without reading what it may
/// have sent ahead: pipelined requests stay in the buffer).
async fn peer_gone(reader: &BufReader<tokio::net::unix::OwnedReadHalf>) {
    loop {
        match reader.get_ref().ready(tokio::io::Interest::READABLE).await {
            Ok(r) if r.is_read_closed() => return,
            Err(_) => return,
            // readable with data pending: look again a little later
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn write(w: &mut tokio::net::unix::OwnedWriteHalf, mut line: Vec<u8>) -> std::io::Result<()> {
    line.push(b'\n');
    w.write_all(&line).await
}

/// Streams events to the client until it closes (or sends anything), or shutdown.
async fn watch_events(
    id: &Value,
    ctx: &AdminCtx,
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    w: &mut tokio::net::unix::OwnedWriteHalf,
    stop: &mut watch::Receiver<bool>,
) {
    let mut events = ctx.runtime.subscribe();
    if write(w, ok_line(id, json!({"watching": true})))
        .await
        .is_err()
    {
        return;
    }
    let mut sink = [0u8; 256];
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            n = tokio::io::AsyncReadExt::read(reader, &mut sink) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let value = match event {
            Ok(e) => serde_json::to_value(e).expect("event encodes"),
            Err(broadcast::error::RecvError::Lagged(n)) => json!({"event": "lagged", "missed": n}),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let line = serde_json::to_vec(&json!({"id": id, "ok": true, "event": value}))
            .expect("JSON encodes");
        if write(w, line).await.is_err() {
            return;
        }
    }
}
