//! ksnap-vm: boot a Linux kernel under QEMU with an initramfs of probes, and tell what happened.
//!
//! The front door is [`Vm`]: `Vm::new(kernel).probe(name, path, timeout).run(&qemu, &cache)` boots the
//! kernel with ksnap's own init (built into this library, [`machine::initramfs::KSNAP_INIT`]), runs each
//! probe and returns a [`RunReport`] whose [`Outcome`] says what happened in the guest. `examples/boot.rs`
//! is a whole program.
//!
//! Two subsystems, with no imports between them, over three shared modules:
//! - [`kernel`]: getting a kernel — sources (apt package, `.deb`, bzImage, a build) pinned
//!   ([`kernel::Pin`]) and resolved into the [`cache`]; apt, `.deb` unpacking, builds from source with
//!   Kconfig fragments, the kernel's own selftests built statically, telling a static executable apart;
//! - [`machine`]: running a guest — the [`Vm`] builder, the initramfs, QEMU's command line, booting or
//!   restoring and watching one VM, saved machines, how much CPU the host gave it;
//! - [`cache`] (verified entries, locks), [`children`] (no child outlives ksnap), [`Error`].
//!
//! What the guest says is read by [`ksnap_readers`] (the result channel, KTAP, kselftest, the console).

#![warn(missing_docs)]

pub mod cache;
pub mod children;
mod error;
pub mod kernel;
pub mod machine;

pub use error::Error;
pub use machine::qemu::{Accel, AccelChoice, Qemu, Resolved};
pub use machine::run::{run, run_saving, Outcome, RunReport, WaitingFor};
pub use machine::spec::{Format, PlanEntry, ProbeSpec, Start, Timeouts, VmSpec};
pub use machine::Vm;
