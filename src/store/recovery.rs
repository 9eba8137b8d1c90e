//! Recovery: one scan of the tree at open, rebuilding every agent's queue (in
//! accept order), attempt counts, state, dead letters, idempotency keys and next
//! sequence number, and decides who is charged for a daemon death ([`super::suspects`]). Records that do not decode go to the quarantine, whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::children::ChildRecord;
use super::dead::DeadLetter;
use super::{codec, keys, IdemMap, StoreError, StoreStats};
use crate::envelope::Envelope;

/// What the store held for one agent.
#[derive(Debug, Default)]
pub struct RecoveredAgent {
    /// Unacked messages in accept order; `attempt` is the next attempt's number.
    pub queue: Vec<Envelope>,
    /// Committed state, if the agent ever committed one.
    pub state: Option<Value>,
    /// Dead letters, oldest first.
    pub dead: Vec<DeadLetter>,
    /// Next sequence number to assign.
    pub next_seq: u64,
    /// Live idempotency keys.
    pub keys: IdemMap,
    /// Committed entries of its keyed state (see [`super::entries`]).
    pub entries: super::entries::Entries,
}

/// What the store held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Per agent name.
    pub agents: HashMap<String, RecoveredAgent>,
    /// Records quarantined by this recovery.
    pub quarantined: usize,
    /// Suspects (agent, sequence): messages in flight together when the daemon
    /// died, charged to none of them; they run alone (see [`super::suspects`]).
    pub suspects: HashSet<(String, u64)>,
    /// Dynamic children, in start order (see [`super::children`]).
    pub children: Vec<ChildRecord>,
    /// Delayed sends not enqueued yet, by due time (see [`super::delayed`]).
    pub delayed: Vec<super::delayed::DelayedRecord>,
    /// Spend records (see [`super::spend`]).
    pub spend: Vec<super::spend::SpendRecord>,
}

impl Recovered {
    /// Takes what was recovered for `agent` (empty if nothing).
    pub fn take(&mut self, agent: &str) -> RecoveredAgent {
        let mut r = self.agents.remove(agent).unwrap_or_default();
        r.next_seq = r.next_seq.max(1);
        r
    }
}

pub(super) fn recover(tree: &sled::Tree, stats: &StoreStats) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    let mut queues: HashMap<String, BTreeMap<u64, Envelope>> = HashMap::new();
    let mut started: HashMap<(String, u64), (u32, bool)> = HashMap::new();
    let mut suspects: HashSet<(String, u64)> = HashSet::new();
    let mut bad: Vec<(sled::IVec, sled::IVec, String)> = Vec::new();
    let mut fix = sled::Batch::default();
    for item in tree.iter() {
        let (k, v) = item?;
        let Some(&prefix) = k.first() else {
            bad.push((k, v, "empty key".into()));
            continue;
        };
        let result: Result<(), String> = (|| {
            match prefix {
                keys::MSG | keys::ATTEMPT | keys::DEAD | keys::SUSPECT => {
                    let (agent, rest) = keys::split(&k).ok_or("malformed key")?;
                    let seq = keys::seq_of(rest).ok_or("malformed sequence in key")?;
                    let a = out.agents.entry(agent.to_string()).or_default();
                    a.next_seq = a.next_seq.max(seq + 1);
                    match prefix {
                        keys::MSG => {
                            let env = codec::decode_envelope(&v).map_err(|e| e.to_string())?;
                            if &*env.id.agent != agent || env.id.seq != seq {
                                return Err(format!(
                                    "record says {} under key {agent}:{seq}",
                                    env.id
                                ));
                            }
                            queues
                                .entry(agent.to_string())
                                .or_default()
                                .insert(seq, env);
                        }
                        keys::ATTEMPT => {
                            let m = codec::decode_attempt(&v).map_err(|e| e.to_string())?;
                            started.insert((agent.to_string(), seq), m);
                        }
                        keys::SUSPECT => {
                            suspects.insert((agent.to_string(), seq));
                        }
                        _ => a
                            .dead
                            .push(codec::decode_dead(&v).map_err(|e| e.to_string())?),
                    }
                }
                keys::IDEM => {
                    let (agent, rest) = keys::split(&k).ok_or("malformed key")?;
                    let key = std::str::from_utf8(rest).map_err(|_| "key is not UTF-8")?;
                    let (seq, expires) = codec::decode_idem(&v).map_err(|e| e.to_string())?;
                    let a = out.agents.entry(agent.to_string()).or_default();
                    a.next_seq = a.next_seq.max(seq + 1);
                    a.keys.insert(key.to_string(), (seq, expires));
                }
                keys::ENTRY => {
                    let (agent, rest) = keys::split(&k).ok_or("malformed key")?;
                    let key = std::str::from_utf8(rest).map_err(|_| "entry key is not UTF-8")?;
                    let value = codec::decode_state(&v).map_err(|e| e.to_string())?;
                    out.agents
                        .entry(agent.to_string())
                        .or_default()
                        .entries
                        .insert(key.to_string(), value);
                }
                keys::STATE | keys::NEXT => {
                    let agent = keys::agent_of(&k).ok_or("agent name is not UTF-8")?;
                    let a = out.agents.entry(agent.to_string()).or_default();
                    if prefix == keys::STATE {
                        a.state = Some(codec::decode_state(&v).map_err(|e| e.to_string())?);
                    } else {
                        a.next_seq = a
                            .next_seq
                            .max(codec::decode_u64(&v).map_err(|e| e.to_string())?);
                    }
                }
                keys::CHILD => {
                    out.children.push(super::children::decode(&k, &v)?);
                }
                keys::DELAYED => {
                    out.delayed.push(super::delayed::decode(&k, &v)?);
                }
                keys::SPEND => {
                    out.spend.push(super::spend::decode(&k, &v)?);
                }
                keys::QUARANTINE => {
                    stats.quarantined.fetch_add(1, Ordering::Relaxed);
                }
                b'V' | b'W' => {}
                other => return Err(format!("unknown record prefix {:?}", other as char)),
            }
            Ok(())
        })();
        if let Err(reason) = result {
            bad.push((k, v, reason));
        }
    }
    // G4, only the culprit is charged: a daemon death counts as an attempt of the
    // message in flight only when it was the only one; otherwise each of them is a
    // suspect, its attempt not counted, and they run alone after this start.
    let running: Vec<(String, u64)> = started
        .iter()
        .filter(|(k, (_, run))| *run && queues.get(&k.0).is_some_and(|q| q.contains_key(&k.1)))
        .map(|(k, _)| k.clone())
        .collect();
    let alone = running.len() == 1;
    if running.len() > 1 {
        tracing::warn!(
            in_flight = running.len(),
            "the daemon died with several messages in flight: none is charged; they run \
             one at a time until each has finished an attempt"
        );
    }
    for ((agent, seq), (n, run)) in started {
        let marker = keys::seq_key(keys::ATTEMPT, &agent, seq);
        let Some(env) = queues.get_mut(&agent).and_then(|q| q.get_mut(&seq)) else {
            // the message was acked or dead-lettered in the same batch that should
            // have removed the marker; nothing refers to it any more
            fix.remove(marker);
            continue;
        };
        if !run || alone {
            if run {
                tracing::warn!(message_id = %env.id, attempt = n,
                    "the daemon died while this message was the only one in flight: the attempt is charged");
                fix.insert(marker, codec::encode_attempt(n, false));
            }
            env.attempt = env.attempt.max(n.saturating_add(1));
        } else {
            env.attempt = env.attempt.max(n);
            match n.saturating_sub(1) {
                0 => fix.remove(marker),
                m => fix.insert(marker, codec::encode_attempt(m, false)),
            }
            fix.insert(keys::seq_key(keys::SUSPECT, &agent, seq), Vec::<u8>::new());
            suspects.insert((agent, seq));
        }
    }
    suspects.retain(|(agent, seq)| {
        let live = queues.get(agent).is_some_and(|q| q.contains_key(seq));
        if !live {
            fix.remove(keys::seq_key(keys::SUSPECT, agent, *seq));
        }
        live
    });
    out.suspects = suspects;
    out.children.sort_by_key(|c| c.order);
    out.delayed.sort_by_key(|d| (d.due_ms, d.id));
    for (agent, q) in queues {
        out.agents.entry(agent).or_default().queue = q.into_values().collect();
    }
    for (k, v, reason) in &bad {
        tracing::error!(key = %String::from_utf8_lossy(k), %reason, "corrupt store record quarantined");
        fix.insert(keys::quarantine_key(k), v.clone());
        fix.remove(k.clone());
    }
    out.quarantined = bad.len();
    stats
        .quarantined
        .fetch_add(bad.len() as u64, Ordering::Relaxed);
    tree.apply_batch(fix)?;
    Ok(out)
}
