//! systemd's notify protocol (`Type=notify`): `READY=1` once the socket answers
//! and the tree runs, `STOPPING=1` when a shutdown begins, and `WATCHDOG=1` at
//! half of `WATCHDOG_USEC`, sent only while the root supervisor answers, so a
//! wedged daemon is restarted by the service manager; `RELOADING=1` then
//! `READY=1` around a config reload. Without `NOTIFY_SOCKET`
//! every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Runtime;

/// Sends `state` (`READY=1`, ...) to the service manager, if there is one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // an abstract socket, as systemd usually passes
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Tells the service manager a reload began; [`notify`] `READY=1` ends it.
pub fn reloading() {
    notify("RELOADING=1\nSTATUS=reloading the config");
}

/// The watchdog interval asked for by the service manager (half its timeout),
/// if it asked this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog until `stop`, each time only after the root supervisor
/// answered within the interval.
pub async fn watchdog(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let Some(every) = watchdog_interval() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => true,
            _ = tick.tick() => false,
        };
        if stopping || *stop.borrow() {
            return;
        }
        let root = runtime.tree().name;
        match tokio::time::timeout(every, runtime.count_children(&root)).await {
            Ok(Ok(_)) => notify("WATCHDOG=1"),
            _ => tracing::warn!("the root supervisor did not answer; no watchdog ping"),
        }
    }
}
