//! The real `warden fake-llm` as a child process (for the `llm` and system tests),
//! the example files, and the real Python interpreter for ports.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::Sandbox;

/// A running `warden fake-llm` (killed on drop), logging to `<name>.jsonl`.
pub struct Fake {
    child: Child,
    pub addr: String,
}

impl Fake {
    /// The model: script `llm.toml`, log `llm.jsonl`, on a free port.
    pub fn start(sb: &Sandbox, script: &str) -> Fake {
        Fake::start_as(sb, "llm", script, "127.0.0.1:0")
    }

    /// Another instance (a webhook target, say): script `<name>.toml`, log
    /// `<name>.jsonl`, listening on `listen` (an earlier instance's address to
    /// come back where it was).
    pub fn start_as(sb: &Sandbox, name: &str, script: &str, listen: &str) -> Fake {
        std::fs::write(sb.path(&format!("{name}.toml")), script).unwrap();
        let mut child = Command::new(super::warden_bin())
            .args(["fake-llm", "--listen", listen, "--script"])
            .arg(sb.path(&format!("{name}.toml")))
            .arg("--log")
            .arg(sb.path(&format!("{name}.jsonl")))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = listening_on(&mut child);
        Fake { child, addr }
    }

    /// Stops it now: connections to its address are refused from here on.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a server child prints first (`listening on ADDR`), from its
/// piped stdout.
pub fn listening_on(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the server says where it listens, not {line:?}"))
        .to_string()
}

/// The text of `config/examples/<name>`.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/config/examples/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the example exists")
}

/// The example config `name` made to run in `sb`: its data dir (`var/<x>`) in the
/// sandbox, files under `config/examples/` by absolute path, the model at
/// `model_addr`, and ports run by the real interpreter.
pub fn example_config(sb: &Sandbox, name: &str, data_dir: &str, model_addr: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    example(name)
        .replace("127.0.0.1:8099", model_addr)
        .replace(data_dir, &format!("{}/data", sb.dir.path().display()))
        .replace("\"config/examples/", &format!("\"{root}/config/examples/"))
        .replace("\"python3\"", &format!("{:?}", python()))
}

/// The real interpreter (a pyenv shim needs more environment than a port gets).
pub fn python() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is installed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}
