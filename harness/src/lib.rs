//! The `ksnap` command's library: the matrix from `ksnap.toml`, sessions that run its cells, and the
//! rendering of results. `main.rs` is a thin CLI over it; the test targets use it directly.
//!
//! By layer, each folder using only those below it: [`commands`] (one per subcommand) and [`testing`] (the
//! `cargo test` entry point) over [`present`] (what a person reads) over [`session`] (running cells in
//! VMs) over [`facts`] (what a run observed, and its snapshots) over [`project`] (`ksnap.toml`,
//! `ksnap.lock`, the matrix). [`progress`] and [`signals`] are shared by all and use none.

pub mod commands;
pub mod facts;
pub mod present;
pub mod progress;
pub mod project;
pub mod session;
pub mod signals;
pub mod testing;
