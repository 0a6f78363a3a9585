//! What this repository's probes share beyond [`ksnap_probe`] (the KTAP writer, errno and signal names,
//! [`ksnap_probe::sys`], [`ksnap_probe::child`]): the plumbing of their topics — memory and its
//! accounting ([`mem`]), other processes' memory ([`remote`]), the kernel log and the OOM killer's lines
//! ([`kmsg`]). (`fault`'s init modes, a stand-in PID 1, use `ksnap_init::pid1`, the init's own.)
//!
//! What is pure (parsers, formatting) has unit tests that run on the host: `cargo test -p ksnap-guest`.

pub mod kmsg;
pub mod mem;
pub mod remote;
