//! The project under test, as its files say: `ksnap.toml` ([`Config`]: kernels, variants, suites and their
//! probes), `ksnap.lock` (the kernels pinned), the matrix of cells, and the scaffold
//! `ksnap init` writes. Nothing here boots a VM.

pub mod config;
pub mod kernels;
pub mod lockfile;
pub mod matrix;
pub mod scaffold;

pub use config::Config;
