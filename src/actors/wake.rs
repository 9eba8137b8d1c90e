//! The one message a host actor takes: look at the mailbox. The slot sends it to
//! wake an idle host when a message arrives or a retry comes due; the host sends it
//! to itself to yield between bursts.

/// Control messages of a host.
#[derive(Debug)]
pub(crate) enum HostMsg {
    /// Look at the mailbox.
    Wake,
}
