//! Key layout of the one sled tree: a prefix byte, the agent name, a NUL, then the
//! rest. Sequence numbers are big-endian so that a prefix scan yields accept order.

/// A message waiting or in flight: `M agent \0 seq`.
pub const MSG: u8 = b'M';
/// Attempts started for a message, and whether the last is still running (see
/// [`codec::encode_attempt`](super::codec::encode_attempt)): `A agent \0 seq`.
pub const ATTEMPT: u8 = b'A';
/// A suspect: a message that was in flight, with others, when the daemon died, so
/// that death was charged to none of them; it runs alone until it has finished an
/// attempt: `U agent \0 seq` (empty value).
pub const SUSPECT: u8 = b'U';
/// An agent's committed state: `S agent`.
pub const STATE: u8 = b'S';
/// One entry of an agent's keyed state (see [`super::entries`]): `E agent \0 key`.
pub const ENTRY: u8 = b'E';
/// A dead letter: `D agent \0 seq`.
pub const DEAD: u8 = b'D';
/// An idempotency key: `K agent \0 key`.
pub const IDEM: u8 = b'K';
/// An agent's next sequence number: `N agent`.
pub const NEXT: u8 = b'N';
/// A dynamic child (see [`super::children`]): `C supervisor \0 name`.
pub const CHILD: u8 = b'C';
/// A delayed send: `L id` (see [`super::delayed`]).
pub const DELAYED: u8 = b'L';
/// Spend, per correlation (`$ c correlation`) and per agent and model
/// (`$ a agent \0 model`): see [`super::spend`].
pub const SPEND: u8 = b'$';
/// A quarantined record: `Q original-key`.
pub const QUARANTINE: u8 = b'Q';
/// The number of the last group commit, written by every group: `W`.
pub const HIGH_WATER: &[u8] = b"W";
/// The store's format version: `V`.
pub const META: &[u8] = b"V";

fn with_agent(prefix: u8, agent: &str, extra: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + agent.len() + extra);
    k.push(prefix);
    k.extend_from_slice(agent.as_bytes());
    k
}

/// `prefix agent \0 seq`.
pub fn seq_key(prefix: u8, agent: &str, seq: u64) -> Vec<u8> {
    let mut k = with_agent(prefix, agent, 9);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `prefix agent` (state, next sequence).
pub fn agent_key(prefix: u8, agent: &str) -> Vec<u8> {
    with_agent(prefix, agent, 0)
}

/// `K agent \0 key`.
pub fn idem_key(agent: &str, key: &str) -> Vec<u8> {
    let mut k = with_agent(IDEM, agent, 1 + key.len());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `E agent \0 key`.
pub fn entry_key(agent: &str, key: &str) -> Vec<u8> {
    let mut k = with_agent(ENTRY, agent, 1 + key.len());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `Q original`.
pub fn quarantine_key(original: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + original.len());
    k.push(QUARANTINE);
    k.extend_from_slice(original);
    k
}

/// Splits `prefix agent \0 rest` into (agent, rest).
pub fn split(key: &[u8]) -> Option<(&str, &[u8])> {
    let body = key.get(1..)?;
    let nul = body.iter().position(|b| *b == 0)?;
    let agent = std::str::from_utf8(&body[..nul]).ok()?;
    Some((agent, &body[nul + 1..]))
}

/// Every prefix under which records of one agent are kept.
pub const AGENT_PREFIXES: [u8; 8] = [MSG, ATTEMPT, SUSPECT, STATE, ENTRY, DEAD, IDEM, NEXT];

/// The agent of a `prefix agent` key.
pub fn agent_of(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(1..)?).ok()
}

/// Parses the sequence part of a seq key.
pub fn seq_of(rest: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_keys_sort_in_accept_order() {
        let a = seq_key(MSG, "planner", 9);
        let b = seq_key(MSG, "planner", 10);
        let c = seq_key(MSG, "planner", 256);
        assert!(a < b && b < c);
        let (agent, rest) = split(&c).unwrap();
        assert_eq!((agent, seq_of(rest)), ("planner", Some(256)));
    }

    #[test]
    fn agents_do_not_share_prefixes() {
        // "plan" must not be a prefix-scan match of "planner": the NUL separates them.
        let p = seq_key(MSG, "plan", 1);
        assert!(!seq_key(MSG, "planner", 1).starts_with(&p[..5 + 1]));
    }
}
