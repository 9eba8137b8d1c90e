//! A full disk: sends are refused with `store_error` (never accepted and lost), no
//! message is charged an attempt or dead-lettered for it, and the daemon exits 1 so
//! a service manager restarts it; once space is back, it resumes with everything
//! that was accepted.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{json_lines, wait_until_blocking, Sandbox};

const T: Duration = Duration::from_secs(30);

/// A small tmpfs at `dir`, unmounted on drop. None (with a note) where this
/// machine does not let the test mount one.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const CONFIG: &str = r#"
[daemon]
data_dir = "{dir}/disk/data"
socket = "{dir}/data/warden.sock"

[supervisor.root]
children = ["out"]

[agent.out]
kind = "sink"
path = "{dir}/out.jsonl"
max_attempts = 2
"#;

#[test]
fn a_full_disk_refuses_sends_charges_nothing_and_exits_for_a_restart() {
    let sb = Sandbox::new(CONFIG);
    let Some(_disk) = SmallDisk::mount(&sb.path("disk"), "24m") else {
        eprintln!(
            "disk_full: SKIPPED: this machine does not let the test mount a tmpfs (needs root)"
        );
        return;
    };
    let mut d = sb.start_ready();
    // Leave about 3 MiB free, then fill the rest with messages to a stopped agent.
    let filler = sb.path("disk/filler");
    let free = nix::sys::statvfs::statvfs(&sb.path("disk")).unwrap();
    let free = free.blocks_available() as u64 * free.fragment_size() as u64;
    std::fs::write(&filler, vec![0u8; (free - 3 * 1024 * 1024) as usize]).unwrap();
    assert!(sb.ctl(&["stop", "out"]).status.success());
    let mut accepted = HashSet::new();
    let mut refused = None;
    let mut c = sb.conn();
    let started = Instant::now();
    for i in 0..10_000u64 {
        assert!(started.elapsed() < T, "the disk never filled");
        let req = json!({"id": i, "op": "send", "to": "out", "payload": {"i": i, "pad": "x".repeat(16 * 1024)}});
        let Ok(r) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.req(req))) else {
            // the daemon left before answering: this send's fate is unknown
            break;
        };
        if r["ok"] == true {
            accepted.insert(i);
        } else {
            refused = Some(r);
            break;
        }
    }
    // Usually the refusal reaches the client before the daemon leaves.
    if let Some(refused) = &refused {
        assert_eq!(refused["error"]["code"], "store_error", "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("space"),
            "{refused}"
        );
    }
    // The daemon stops with exit 1, naming the cause.
    let status = d.wait_exit(T);
    assert_eq!(status.code(), Some(1), "{}", d.log_text());
    assert!(
        d.log_text().contains("the store cannot write"),
        "{}",
        d.log_text()
    );
    // Space comes back; a restart resumes every accepted message, none charged.
    std::fs::remove_file(&filler).unwrap();
    let _d = sb.start_ready();
    wait_until_blocking("every accepted message at the sink", T, || {
        let got: HashSet<u64> = json_lines(&sb.path("out.jsonl"))
            .iter()
            .filter_map(|l| l["payload"]["i"].as_u64())
            .collect();
        accepted.is_subset(&got)
    });
    let dlq = sb.ctl_json(&["dlq", "list"]);
    assert_eq!(dlq, json!([]), "nothing dead-lettered for a full disk");
    eprintln!(
        "disk_full: {} accepted before the disk filled, all delivered",
        accepted.len()
    );
}
