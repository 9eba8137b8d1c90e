//! The message a crash happened with: kept (when spans are exported) from the
//! moment a replica ends with a message in flight until its supervisor restarts
//! it, so that the restart's `warden.restart` span joins that message's trace
//! (DESIGN section 11: a restart caused by a message in flight is part of its
//! correlation's trace).

use std::sync::Arc;

use super::AgentSlot;
use crate::envelope::Envelope;

impl AgentSlot {
    /// Replica `replica` is ending: remembers its message in flight, if any.
    pub(super) fn note_crash_cause(&self, replica: usize) {
        if !crate::telemetry::trace::enabled() {
            return;
        }
        let mut inner = self.lock();
        if let Some(f) = &inner.in_flight[replica] {
            inner.crashed_with = Some(f.env.clone());
        }
    }

    /// The message in flight when a replica last crashed, once.
    pub(crate) fn take_crash_cause(&self) -> Option<Arc<Envelope>> {
        self.lock().crashed_with.take()
    }
}
