//! The admin socket and `warden ctl`: operate a running daemon.
//!
//! - [`protocol`]: the newline-delimited JSON protocol (requests, replies, errors).
//! - [`ops`]: one file per group of ops, dispatched from one enum.
//! - [`server`]: the Unix socket server, the data-dir lock, socket permissions.
//! - [`client`]: a small blocking client (used by `warden ctl`).
//! - [`ctl`]: the `warden ctl` subcommands.
//! - `render`: their human-readable output (tree drawing, tables).

pub mod client;
pub mod ctl;
pub mod ops;
pub mod protocol;
mod render;
pub mod server;
