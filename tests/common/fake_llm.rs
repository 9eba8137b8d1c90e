//! The real `warden fake-llm` as a child process (for the `llm` and system tests),
//! and the example files.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use super::Sandbox;

/// A running `warden fake-llm` (killed on drop), logging to `llm.jsonl`.
pub struct Fake {
    child: Child,
    pub addr: String,
}

impl Fake {
    pub fn start(sb: &Sandbox, script: &str) -> Fake {
        std::fs::write(sb.path("llm.toml"), script).unwrap();
        let mut child = Command::new(super::warden_bin())
            .args(["fake-llm", "--listen", "127.0.0.1:0", "--script"])
            .arg(sb.path("llm.toml"))
            .arg("--log")
            .arg(sb.path("llm.jsonl"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("fake-llm says where it listens")
            .to_string();
        Fake { child, addr }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of `config/examples/<name>`.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/config/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the example exists")
}
