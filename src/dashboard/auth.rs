//! The dashboard's token: 32 random bytes (hex), new at every start, written to
//! `<data_dir>/dashboard.token` (mode 0600, replaced atomically, never followed
//! through a symlink) and printed at start as a `http://ADDR/#token=...` link.
//! Requests to the API and to `/events` show it as `Authorization: Bearer TOKEN`
//! or `?token=TOKEN`; it is compared in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A fresh token, written to `<data_dir>/dashboard.token`.
pub fn issue(data_dir: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    for b in &mut bytes {
        *b = fastrand::u8(..);
    }
    // fastrand is not a CSPRNG: mix in the OS's randomness too
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let mut os = [0u8; 32];
        if std::io::Read::read_exact(&mut f, &mut os).is_ok() {
            for (b, o) in bytes.iter_mut().zip(os) {
                *b ^= o;
            }
        }
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_dir.join(".dashboard.token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, data_dir.join("dashboard.token"))?;
    Ok(token)
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token a request shows: its bearer token, or its `token` query parameter.
pub fn shown<'a>(authorization: Option<&'a str>, query: Option<&'a str>) -> Option<&'a str> {
    if let Some(t) = authorization.and_then(|h| h.strip_prefix("Bearer ")) {
        return Some(t.trim());
    }
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_in_the_header_or_the_query_and_compared_whole() {
        assert_eq!(shown(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(shown(None, Some("x=1&token=def")), Some("def"));
        assert_eq!(shown(Some("Basic abc"), None), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
