//! Opening sled: waiting out its file lock on an in-process reopen, and telling a
//! damaged settings file from other failures.

use std::path::Path;
use std::time::Duration;

use super::StoreError;

/// Opens sled in `dir`. sled releases its file lock only after its background
/// writers finish, a moment after the last handle is dropped; an in-process reopen
/// (tests, benchmarks) waits for that, up to 5 s. Two daemons never get here: the
/// data directory's own lock refuses the second one first.
pub(super) fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                let conf = dir.join("conf");
                if conf.exists() && conf_is_damaged(&conf) {
                    return Err(StoreError::Damaged(format!(
                        "sled's settings file {} is damaged ({e}); the messages are in {}/db, \
                         which Warden cannot open without it: restore the store from a backup",
                        conf.display(),
                        dir.display()
                    )));
                }
                return Err(StoreError::sled(
                    format!("cannot open {}", dir.display()),
                    e,
                ));
            }
        }
    }
}

/// sled's `conf` is a few `key: value` lines followed by a 4-byte CRC; a file that
/// does not read as such is damaged (sled itself reports it as an old format or as
/// corrupted data at no offset).
fn conf_is_damaged(conf: &Path) -> bool {
    let Ok(bytes) = std::fs::read(conf) else {
        return true;
    };
    if bytes.len() < 5 {
        return true;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let text_ok = std::str::from_utf8(body).is_ok_and(|t| t.contains("segment_size"));
    let crc_ok = crc32fast::hash(body).to_le_bytes() == crc;
    !(text_ok && crc_ok)
}
