//! ksnap-readers: what a ksnap guest says, read. Pure functions over text: no I/O, no processes, no
//! kernels; a guest is untrusted input, so every reader is lenient, bounded and never panics (each has a
//! fuzz target under `fuzz/`).
//!
//! - [`channel`]: the host's side of the result channel ([`ksnap_protocol`]'s lines) → a [`channel::GuestReport`],
//!   each probe's stdout read once, when it ends, in its [`channel::Format`] into its [`channel::Reading`];
//! - [`ktap`]: a probe's stdout as KTAP (what ksnap's own probes write);
//! - [`kselftest`]: a kernel selftest's stdout as kselftest's looser TAP, per test case;
//! - `tap` (private): the one TAP line lexer under both, strict for [`ktap`], lenient for [`kselftest`];
//! - [`console`]: the kernel's console: panics, oopses, BUGs and warnings.

#![warn(missing_docs)]

pub mod channel;
pub mod console;
pub mod kselftest;
pub mod ktap;
mod tap;
