//! The `ksnap` command's library: the matrix from `ksnap.toml`, sessions that run its cells, and the
//! rendering of results. `main.rs` is a thin CLI over it; the test targets use it directly.
//!
//! By layer: [`commands`] (one per subcommand) use [`present`] (what a person reads), [`facts`] (what a
//! run observed, and its snapshots) and [`session`] (running cells in VMs), which all stand on [`project`]
//! (`ksnap.toml`, `ksnap.lock`, the matrix). [`testing`] is the `cargo test` entry point.

pub mod commands;
pub mod facts;
pub mod present;
pub mod project;
pub mod session;
pub mod signals;
pub mod testing;
