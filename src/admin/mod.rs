//! The admin socket and `warden ctl`: operate a running daemon.
//!
//! - [`error`]: how a request is refused ([`error::ErrorCode`], [`error::AdminError`]).
//! - [`protocol`]: the newline-delimited JSON framing (request lines, replies).
//! - [`ops`]: one file per op (fields, apply, human rendering), dispatched from
//!   one table.
//! - [`server`]: the Unix socket server, the data-dir lock, socket permissions.
//! - [`client`]: a small blocking client (used by `warden ctl`).
//! - [`ctl`]: the `warden ctl` subcommands.
//! - `render`: what the ops' human renderings share (cells, tables).

pub mod client;
pub mod ctl;
pub mod error;
pub mod ops;
pub mod protocol;
mod render;
pub mod server;
