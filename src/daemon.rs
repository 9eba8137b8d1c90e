//! `warden run`: the daemon's lifecycle, from config to exit code.
//!
//! Order: the config is loaded and validated before anything is opened or created
//! (an invalid config exits 2 with file, key and reason); logging starts; the data
//! directory is created (mode 0700) and locked (a second daemon on it exits 1);
//! the store is opened and recovered (a newer
//! format or an unopenable store exits 1); the tree starts, children in declared
//! order, each durable agent resuming from its state and unacked messages; the admin
//! socket serves. Shutdown (SIGTERM, SIGINT or `ctl shutdown`) stops accepting admin
//! requests first, then stops the tree, flushes the store and removes the socket.
//! Then the daemon waits for SIGTERM or SIGINT (graceful shutdown: children stop in
//! reverse order within their `shutdown` timeouts, the whole tree within
//! `daemon.shutdown_timeout`; exit 0) or for root to give up past its restart
//! intensity (the reason is logged; exit 1).

use std::path::Path;

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::admin::ops::{AdminCtx, ConfigSource};
use crate::admin::server::{self, lock_data_dir, ServerLimits};

use crate::actors::Kinds;
use crate::config::Config;
use crate::policies::limits::Limits;
use crate::runtime::{Options, RootExit, Runtime};
use crate::store::{Store, StoreOptions};
use crate::supervision::tree::Durable;

/// Exit code: the daemon stopped on request.
pub const EXIT_OK: i32 = 0;
/// Exit code: the tree failed (failed to start, or root gave up).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: usage or config error.
pub const EXIT_CONFIG: i32 = 2;

/// How `warden run` was asked to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Open a store that has lost committed data instead of refusing it.
    pub accept_loss: bool,
}

/// Runs the daemon on `config_path` until it is stopped; returns the exit code.
pub async fn run(config_path: &Path, kinds: Kinds, run: RunOptions) -> i32 {
    let config = match Config::load_with(config_path, &kinds) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: invalid config: {e}");
            return EXIT_CONFIG;
        }
    };
    let t = &config.telemetry;
    let log = crate::telemetry::init(&crate::telemetry::Setup {
        log: t.log.clone(),
        json: t.log_json,
        otlp: t.otlp_endpoint.clone().map(|e| (e, t.sample)),
    });
    for w in &config.warnings {
        tracing::warn!(config = %config.file, "{w}");
    }
    if let Err(e) = create_private_dir(&config.daemon.data_dir) {
        tracing::error!(dir = %config.daemon.data_dir.display(), error = %e, "cannot create the data directory");
        return EXIT_FAILED;
    }
    let _lock = match lock_data_dir(&config.daemon.data_dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_FAILED;
        }
    };
    match crate::actors::kinds::exec::reap_leftover_ports(&config.daemon.data_dir.join("ports")) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            killed = n,
            "killed ports left over from a daemon that did not stop cleanly"
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot read or create the ports directory in the data directory");
            return EXIT_FAILED;
        }
    }
    let store_dir = config.daemon.data_dir.join("store");
    let opts = StoreOptions {
        durability: config.daemon.durability,
        max_batch: config.daemon.commit_max_batch,
        max_delay: config.daemon.commit_max_delay,
        accept_loss: run.accept_loss,
    };
    let (store, recovered) = match Store::open(&store_dir, opts) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(store = %store_dir.display(), error = %e, "cannot open the store");
            return EXIT_FAILED;
        }
    };
    let pending: usize = recovered.agents.values().map(|a| a.queue.len()).sum();
    let dynamic = crate::config::dynamic::restore_children(&config, &kinds, &recovered.children);
    tracing::info!(store = %store_dir.display(), pending, quarantined = recovered.quarantined, "store opened");
    let durable = Durable {
        store: store.clone(),
        recovered: std::sync::Mutex::new(recovered),
        retention: config.daemon.idempotency_retention,
    };
    let mut term = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return EXIT_FAILED;
        }
    };
    // SIGHUP reloads the config; installed before anything is served, so that a
    // HUP never kills the daemon (its default action)
    let hup = match signal(SignalKind::hangup()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return EXIT_FAILED;
        }
    };
    let listener = match server::bind(&config.daemon.socket).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return EXIT_FAILED;
        }
    };
    let options = Options {
        durable: Some(durable),
        limits: Limits::new(&config.limits),
        dynamic,
        prices: config.prices.clone(),
    };
    let runtime = match Runtime::start_with(config.tree.clone(), kinds, options).await {
        Ok(r) => Arc::new(r),
        Err(e) => {
            tracing::error!(error = %e, "the tree failed to start");
            let _ = std::fs::remove_file(&config.daemon.socket);
            return EXIT_FAILED;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Arc::new(AdminCtx {
        runtime: runtime.clone(),
        shutdown: stop_tx.clone(),
        config: Some(ConfigSource {
            path: config_path.to_path_buf(),
            current: std::sync::Mutex::new(config.clone()),
        }),
        log,
    });
    let limits = ServerLimits {
        max_clients: config.daemon.admin_max_clients,
        idle_timeout: config.daemon.admin_idle_timeout,
    };
    let reloader = tokio::spawn(reload_on_hup(hup, ctx.clone(), stop_rx.clone()));
    let admin = tokio::spawn(server::serve(
        listener,
        config.daemon.socket.clone(),
        ctx.clone(),
        limits,
        stop_rx.clone(),
    ));
    tracing::info!(pid = std::process::id(), config = %config.file, socket = %config.daemon.socket.display(), "warden started");
    crate::service::notify("READY=1\nSTATUS=serving");
    let watchdog = tokio::spawn(crate::service::watchdog(runtime.clone(), stop_rx.clone()));
    let metrics = config.telemetry.metrics_listen.map(|addr| {
        let (rt, stop) = (runtime.clone(), stop_rx.clone());
        let dashboard = match crate::dashboard::auth::issue(&config.daemon.data_dir) {
            Ok(token) => Some((crate::dashboard::router(ctx.clone(), token.clone()), token)),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the dashboard's token; serving metrics without the dashboard");
                None
            }
        };
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, rt, dashboard, stop).await {
                tracing::error!(listen = %addr, error = %e, "cannot serve metrics");
            }
        })
    });
    let code = serve(&runtime, &store, &config, &mut term, stop_rx, &stop_tx).await;
    let _ = watchdog.await;
    let _ = stop_tx.send(true);
    let _ = admin.await;
    let _ = reloader.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    store.close();
    code
}

/// Waits for the end of the daemon while idempotency keys expire in the background.
/// The end is one future, created once: a timer tick can never drop a shutdown that
/// is under way. The expiry task takes the shutdown signal and is awaited.
async fn serve(
    runtime: &Arc<Runtime>,
    store: &Store,
    config: &Config,
    term: &mut (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    stop: watch::Receiver<bool>,
    stop_tx: &watch::Sender<bool>,
) -> i32 {
    let every = (config.daemon.idempotency_retention / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let expiry = tokio::spawn(expire_keys(runtime.clone(), every, stop.clone()));
    let code = tokio::select! {
        code = wait_for_end(runtime, config, term, stop, stop_tx) => code,
        e = store.failed() => {
            tracing::error!(error = %e,
                "the store cannot write: stopping with exit code 1, so that a service manager \
                 restarts Warden once the cause (a full disk, a failed device) is fixed; every \
                 accepted message is on disk, and no message is charged an attempt for this");
            // Nothing more can be written, and sled, once a write failed, can wait
            // forever in a flush or a drop: leave now, as a crash would, which the
            // store is built to survive. The OS releases the data-dir lock.
            // First a moment for the refusals already decided to reach their clients.
            let _ = stop_tx.send(true);
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let _ = std::fs::remove_file(&config.daemon.socket);
            std::process::exit(EXIT_FAILED);
        }
    };
    let _ = stop_tx.send(true);
    let _ = expiry.await;
    // the spans still queued go to the collector (bounded in time)
    tokio::task::spawn_blocking(crate::telemetry::shutdown)
        .await
        .ok();
    code
}

/// Reloads the config on each SIGHUP (as `ctl reload`) until `stop` turns true;
/// the outcome is logged.
async fn reload_on_hup(
    mut hup: tokio::signal::unix::Signal,
    ctx: Arc<AdminCtx>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the config");
                if let Err(e) = crate::admin::ops::reload(&ctx, false).await {
                    tracing::error!(code = %e.code, "reload refused: {}", e.message);
                }
            }
        }
    }
}

/// Forgets expired idempotency keys every `every` (a quarter of the retention,
/// from 1 s to a minute, so a key outlives its retention by at most that) until
/// `stop` turns true.
async fn expire_keys(
    runtime: Arc<Runtime>,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {
                let n = runtime.expire_keys();
                if n > 0 {
                    tracing::debug!(expired = n, "idempotency keys expired");
                }
            }
        }
    }
}

async fn wait_for_end(
    runtime: &Runtime,
    config: &Config,
    term: &mut (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
    mut stop: watch::Receiver<bool>,
    stop_tx: &watch::Sender<bool>,
) -> i32 {
    // Whatever ends the daemon, the admin server stops accepting first.
    tokio::select! {
        _ = term.0.recv() => { let _ = stop_tx.send(true); shutdown(runtime, config, "SIGTERM").await }
        _ = term.1.recv() => { let _ = stop_tx.send(true); shutdown(runtime, config, "SIGINT").await }
        _ = stop.wait_for(|s| *s) => shutdown(runtime, config, "ctl shutdown").await,
        exit = runtime.exited() => match exit {
            RootExit::GaveUp(why) => {
                tracing::error!(reason = %why, "root supervisor gave up; stopping the daemon");
                EXIT_FAILED
            }
            RootExit::Shutdown => {
                tracing::info!("the tree stopped itself (root's auto_shutdown); stopping the daemon");
                EXIT_OK
            }
        },
    }
}

async fn shutdown(runtime: &Runtime, config: &Config, why: &str) -> i32 {
    crate::service::notify("STOPPING=1");
    tracing::info!(
        signal = why,
        "shutting down: stopping children in reverse start order"
    );
    match runtime.shutdown(config.daemon.shutdown_timeout).await {
        RootExit::Shutdown => {
            tracing::info!("stopped");
            EXIT_OK
        }
        RootExit::GaveUp(why) => {
            tracing::error!(reason = %why, "the tree failed while shutting down");
            EXIT_FAILED
        }
    }
}

/// Creates `dir` (and parents) private to this user (0700) if it is missing. An
/// existing one keeps its mode, but must be this user's and writable by nobody
/// else (another user could read the store or swap the socket); one others can
/// read is used with a warning.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let meta = std::fs::metadata(dir)?;
    let refuse = |why: String| {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            why,
        ))
    };
    if !meta.is_dir() {
        return refuse(format!("{} is not a directory", dir.display()));
    }
    if let Some(me) = effective_uid() {
        if meta.uid() != me {
            return refuse(format!(
                "{} is owned by uid {}, not by this user (uid {me}); use a directory of your own",
                dir.display(),
                meta.uid()
            ));
        }
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return refuse(format!(
            "{} is writable by other users (mode {mode:o}); chmod 700 it, or use another directory",
            dir.display()
        ));
    }
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"),
            "the data directory is readable by other users; chmod 700 it to keep payloads private");
    }
    Ok(())
}

/// This process's effective uid (from /proc; std has no call for it).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
