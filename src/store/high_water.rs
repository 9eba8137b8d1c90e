//! The high-water mark: proof, kept outside sled, of how much the store had made
//! durable, so that lost commits are detected at open instead of silently missing.
//!
//! sled 0.34 recovers its log up to the first record whose checksum fails and drops
//! everything after it: a flipped byte or a truncated file leaves a smaller store
//! that opens without complaint. Warden numbers its group commits: every group's
//! batch also writes its number into the store (key `W`), and once the group is
//! durable the number is written to `<store>.hwm` beside the store directory. At
//! open, a store whose own number is below the file's has lost commits, and Warden
//! refuses to start, naming how many, unless started with `--accept-loss`.
//!
//! Guarantees: the file is written only after the group it names is durable, so it
//! never runs ahead of a healthy store (a crash between the two leaves it behind,
//! which is harmless). The file is 17 bytes, checksummed; a damaged or missing file
//! next to a store that has commits is refused the same way. In `crash` durability
//! a power loss can lose recent commits; the check then reports that loss too.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"WHWM";
const VERSION: u8 = 1;
const LEN: usize = 17;

/// Where the high-water file of the store in `dir` lives: `<dir>.hwm`.
pub fn path_for(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".hwm");
    dir.with_file_name(name)
}

fn encode(n: u64) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..4].copy_from_slice(MAGIC);
    b[4] = VERSION;
    b[5..13].copy_from_slice(&n.to_le_bytes());
    let crc = crc32fast::hash(&b[..13]);
    b[13..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Reads the file: `Ok(None)` when there is none, `Err` with the reason when it is
/// damaged.
pub fn read(path: &Path) -> Result<Option<u64>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    // created but never written (a crash right after the open that creates it, or
    // a power loss before its first write reached the disk): as good as missing,
    // which is refused too unless the store has no commits
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() != LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
        return Err(format!(
            "it is not a version-{VERSION} high-water file ({} bytes)",
            bytes.len()
        ));
    }
    let crc = u32::from_le_bytes(bytes[13..].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&bytes[..13]) {
        return Err("its checksum does not match".into());
    }
    Ok(Some(u64::from_le_bytes(
        bytes[5..13].try_into().expect("8 bytes"),
    )))
}

/// The open file the committer updates after every durable group.
pub struct HighWater {
    file: File,
}

impl HighWater {
    /// Opens (creates) the file at `path`, recording `current` (the store's own
    /// mark) at once if the file is new, so that it is never left empty.
    pub fn open(path: &Path, current: u64) -> std::io::Result<HighWater> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let h = HighWater { file };
        if h.file.metadata()?.len() == 0 {
            h.record(current)?;
            h.file.sync_all()?;
        }
        Ok(h)
    }

    /// Records that group commit `n` is durable (one 17-byte write in place).
    pub fn record(&self, n: u64) -> std::io::Result<()> {
        self.file.write_all_at(&encode(n), 0)
    }
}

/// Compares the store's own commit number with the file's; `Err` explains a loss.
pub fn check(
    store_dir: &Path,
    in_store: u64,
    in_file: Result<Option<u64>, String>,
) -> Result<(), String> {
    let file = path_for(store_dir);
    let how = "restore the store from a backup, or start with `warden run --accept-loss` \
               to run on what is left";
    match in_file {
        Ok(None) if in_store == 0 => Ok(()),
        Ok(None) => Err(format!(
            "the high-water file {} is missing, but the store at {} holds {in_store} group \
             commits: it cannot be checked for lost commits; {how}",
            file.display(),
            store_dir.display()
        )),
        Err(why) => Err(format!(
            "the high-water file {} is damaged ({why}): the store at {} cannot be checked \
             for lost commits; {how}",
            file.display(),
            store_dir.display()
        )),
        Ok(Some(made)) if made > in_store => Err(format!(
            "committed data is missing from the store at {}: {made} group commits were made \
             durable, the store holds only {in_store} ({} lost: sled's log was cut short at a \
             damaged or truncated spot, and messages accepted in those commits are gone); {how}",
            store_dir.display(),
            made - in_store
        )),
        Ok(Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.hwm");
        assert_eq!(read(&p), Ok(None));
        let h = HighWater::open(&p, 0).unwrap();
        assert_eq!(read(&p), Ok(Some(0)), "written at once when new");
        h.record(41).unwrap();
        h.record(42).unwrap();
        assert_eq!(read(&p), Ok(Some(42)));
        let mut b = std::fs::read(&p).unwrap();
        b[7] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        assert!(read(&p).unwrap_err().contains("checksum"));
        std::fs::write(&p, b"short").unwrap();
        assert!(read(&p).is_err());
        std::fs::write(&p, b"").unwrap();
        assert_eq!(read(&p), Ok(None), "an empty file counts as missing");
    }

    #[test]
    fn a_store_behind_its_mark_is_refused() {
        let d = Path::new("/x/store");
        assert_eq!(path_for(d), Path::new("/x/store.hwm"));
        assert!(check(d, 0, Ok(None)).is_ok());
        assert!(check(d, 10, Ok(Some(10))).is_ok());
        assert!(check(d, 11, Ok(Some(10))).is_ok());
        let e = check(d, 7, Ok(Some(10))).unwrap_err();
        assert!(e.contains("3 lost") && e.contains("--accept-loss"), "{e}");
        assert!(check(d, 7, Ok(None)).unwrap_err().contains("missing"));
        assert!(check(d, 7, Err("x".into()))
            .unwrap_err()
            .contains("damaged"));
    }
}
