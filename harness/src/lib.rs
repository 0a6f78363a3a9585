//! The `ksnap` command's library: the matrix from `ksnap.toml`, sessions that run its cells, and the
//! rendering of results. `main.rs` is a thin CLI over it; the test targets use it directly.

pub mod commands;
pub mod config;
pub mod console_log;
pub mod diff;
pub mod facts;
pub mod guest;
pub mod history;
pub mod kernels;
pub mod lock;
pub mod matrix;
pub mod plot;
pub mod progress;
pub mod repeat;
pub mod report;
pub mod results;
pub mod scaffold;
pub mod session;
pub mod signals;
pub mod snapfile;
pub mod snapshot;
pub mod testing;
