//! The soak (issue 17): steady load through a 3-stage durable pipeline for a while,
//! agents killed every few seconds and the daemon SIGKILLed twice, while the
//! daemon's resident memory and the store's disk use are sampled.
//!
//! Size: `WARDEN_SOAK_SECS` (default 120, the CI size; the long size is, say,
//! 1800). Load: 4 producers at 100 sends/s each, each send with an idempotency key
//! (retention 10 s, so keys come and go) and retried until accepted.
//!
//! The criterion, stated: the daemon runs in three incarnations (killed at 1/3 and
//! 2/3 of the run). Resident memory: the peak over the second half of the last
//! incarnation is at most 1.25 times (+ 8 MiB) the peak over the second half of
//! the first. Disk: the store at the end is at most 1.5 times (+ 16 MiB) its size
//! at the end of the first incarnation. And nothing is lost or repeated: the last
//! stage's committed count equals the number of keys accepted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::{wait_until_blocking, Daemon, Sandbox};

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/data"
idempotency_retention = "10s"

[supervisor.root]
max_restarts = 1000
within = "1s"
children = ["intake", "stage", "tally"]

[agent.intake]
kind = "echo"
to = ["stage"]

[agent.stage]
kind = "echo"
to = ["tally"]

[agent.tally]
kind = "counter"
"#;

const PRODUCERS: u64 = 4;
const RATE: u64 = 100; // sends per second per producer
const MIB: f64 = 1024.0 * 1024.0;

/// One sample: seconds since the run began, incarnation, RSS and store bytes.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    life: usize,
    rss: f64,
    disk: f64,
}

fn rss_of(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn dir_bytes(p: &std::path::Path) -> f64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0.0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len() as f64,
            Err(_) => 0.0,
        })
        .sum()
}

/// One request on `conn`; `None` if the daemon went away meanwhile.
fn request(
    conn: &mut BufReader<UnixStream>,
    line: &serde_json::Value,
) -> Option<serde_json::Value> {
    let mut text = line.to_string();
    text.push('\n');
    conn.get_mut().write_all(text.as_bytes()).ok()?;
    let mut reply = String::new();
    match conn.read_line(&mut reply) {
        Ok(n) if n > 0 => serde_json::from_str(&reply).ok(),
        _ => None,
    }
}

/// Sends with a key until some daemon accepts it (reconnecting across kills).
fn send_until_accepted(
    socket: &std::path::Path,
    conn: &mut Option<BufReader<UnixStream>>,
    key: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = json!({"op": "send", "to": "intake", "key": key,
        "payload": {"task": key, "pad": "x".repeat(64)}});
    loop {
        assert!(Instant::now() < deadline, "no daemon accepted {key}");
        if conn.is_none() {
            match UnixStream::connect(socket) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    *conn = Some(BufReader::new(s));
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        match request(conn.as_mut().expect("connected"), &line) {
            Some(v) if v["ok"] == true => return,
            Some(v) if v["error"]["code"] == "mailbox_full" => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                *conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn start(sb: &Sandbox) -> Daemon {
    sb.start_ready()
}

#[test]
fn memory_and_disk_stay_flat_under_steady_load_with_kills() {
    let secs: u64 = std::env::var("WARDEN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
        .max(30);
    let mut rng = fastrand::Rng::with_seed(crate::seed("soak"));
    let sb = Sandbox::new(CONFIG);
    let mut daemon = start(&sb);
    let began = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (stop, accepted, socket) = (stop.clone(), accepted.clone(), sb.socket());
            std::thread::spawn(move || {
                let mut conn = None;
                let every = Duration::from_secs_f64(1.0 / RATE as f64);
                let mut next = Instant::now();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    send_until_accepted(&socket, &mut conn, &format!("p{p}-{i}"));
                    accepted.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    next += every;
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
            })
        })
        .collect();
    let mut samples: Vec<Sample> = Vec::new();
    let mut life = 0;
    let mut last_agent_kill = Instant::now();
    let store = sb.path("data/store");
    while began.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        let at = began.elapsed().as_secs_f64();
        if let Some(rss) = rss_of(daemon.child.id()) {
            samples.push(Sample {
                at,
                life,
                rss,
                disk: dir_bytes(&store),
            });
        }
        if last_agent_kill.elapsed() >= Duration::from_secs(3) {
            let victim = ["intake", "stage", "tally"][rng.usize(0..3)];
            let _ = sb.ctl(&["kill", victim]);
            last_agent_kill = Instant::now();
        }
        let due = (life + 1) as f64 * secs as f64 / 3.0;
        if life < 2 && at >= due {
            daemon.signal(Signal::SIGKILL);
            let _ = daemon.wait_exit(Duration::from_secs(10));
            life += 1;
            daemon = start(&sb);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer");
    }
    let n = accepted.load(Ordering::Relaxed);
    // every accepted task reaches the last stage exactly once
    let mut c = sb.conn();
    wait_until_blocking("the pipeline drains", Duration::from_secs(120), || {
        let t = c.req(json!({"op": "tree"}))["result"].clone();
        t["children"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["pending"] == 0 && x["in_flight"] == 0))
    });
    let r = c.req(json!({"op": "call", "to": "tally", "payload": {}}));
    assert_eq!(
        r["result"]["reply"]["count"],
        n + 1,
        "{r}: {n} accepted, each counted once (and the call)"
    );

    // the series, and the criterion
    let print = |s: &Sample| {
        eprintln!(
            "soak t={:>6.0}s life={} rss={:>7.1} MiB store={:>7.1} MiB",
            s.at,
            s.life,
            s.rss / MIB,
            s.disk / MIB
        )
    };
    eprintln!("soak: {secs} s, {n} tasks through 3 durable stages");
    for s in samples.iter().step_by((samples.len() / 12).max(1)) {
        print(s);
    }
    if let Some(s) = samples.last() {
        print(s);
    }
    let peak_late_half = |l: usize| {
        let lives: Vec<&Sample> = samples.iter().filter(|s| s.life == l).collect();
        lives[lives.len() / 2..]
            .iter()
            .map(|s| s.rss)
            .fold(0.0, f64::max)
    };
    let (first, last) = (peak_late_half(0), peak_late_half(2));
    assert!(
        last <= first * 1.25 + 8.0 * MIB,
        "resident memory grew: {:.1} MiB late in the first life, {:.1} MiB late in the last",
        first / MIB,
        last / MIB
    );
    let disk_first = samples
        .iter()
        .rev()
        .find(|s| s.life == 0)
        .expect("samples")
        .disk;
    let disk_end = samples.last().expect("samples").disk;
    assert!(
        disk_end <= disk_first * 1.5 + 16.0 * MIB,
        "the store grew: {:.1} MiB after the first life, {:.1} MiB at the end",
        disk_first / MIB,
        disk_end / MIB
    );
}
