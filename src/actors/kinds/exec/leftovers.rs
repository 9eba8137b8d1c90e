//! Ports left over from a daemon that was SIGKILLed: each running port is
//! recorded in `<data_dir>/ports/<pid>` (its pid, which is also its process
//! group, and its start time), and at the next start every recorded group whose
//! leader is still that same process is killed before the tree starts.
//!
//! A record is removed when its port is dropped. The start time (from
//! `/proc/<pid>/stat`) tells a leftover port from an unrelated process that got
//! the same pid since.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// The process's start time in clock ticks since boot (field 22 of its stat).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name is in parentheses and may hold spaces: count after it
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records a running port; `None` when no record directory is set (a library
/// runtime, not the daemon).
pub(super) fn remember(pid: i32, agent: &str, replica: usize) -> Option<PathBuf> {
    let dir = DIR.get()?;
    let path = dir.join(pid.to_string());
    let started = start_time(pid)?;
    std::fs::write(&path, format!("{pid} {started} {agent} {replica}\n")).ok()?;
    Some(path)
}

/// Kills the ports recorded in `dir` by an earlier daemon that are still running,
/// forgets every record, and records this daemon's ports there from now on.
/// Returns how many were killed.
pub fn reap(dir: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut killed = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut f = text.split_whitespace();
        let (Some(pid), Some(started)) = (
            f.next().and_then(|p| p.parse::<i32>().ok()),
            f.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            let _ = std::fs::remove_file(entry.path());
            continue;
        };
        let (agent, replica) = (f.next().unwrap_or("?"), f.next().unwrap_or("?"));
        if pid > 1 && start_time(pid) == Some(started) {
            if killpg(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
            tracing::warn!(
                pid,
                agent,
                replica,
                "killed a port left over from a daemon that did not stop cleanly"
            );
        }
        let _ = std::fs::remove_file(entry.path());
    }
    let _ = DIR.set(dir.to_path_buf());
    Ok(killed)
}
