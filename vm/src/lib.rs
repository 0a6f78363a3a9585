//! ksnap-vm: boot a Linux kernel under QEMU with an initramfs of probes, and tell what happened.
//!
//! The front door is [`Vm`]: `Vm::new(kernel).probe(name, path, timeout).run(&qemu, &cache)` boots the
//! kernel with ksnap's own init (built into this library, [`initramfs::KSNAP_INIT`]), runs each probe and
//! returns a [`RunReport`] whose [`Outcome`] says what happened in the guest. `examples/boot.rs` is a
//! whole program.
//!
//! The pieces, in the order a run uses them:
//! - [`kernel`]: kernel sources (apt package, `.deb`, bzImage, a build), pinned ([`kernel::Pin`]) and
//!   resolved into the [`cache`], through [`apt`] (the system's apt, or ksnap's own per Debian suite);
//! - [`build`] (over the private `kconfig`): kernels built from source with Kconfig fragments;
//! - [`selftests`]: the kernel's own selftests, built statically from a Debian source package;
//! - [`elf`]: telling a static x86-64 executable from what cannot run in the guest;
//! - `entry` (private): kernel cache entries, shared by [`kernel`] and [`build`];
//! - `deb` (private): unpacking a kernel `.deb` (or a kernel source package) in Rust;
//! - [`initramfs`] (over the private `cpio`): `/init` and the probes;
//! - [`qemu`]: finding QEMU, choosing the accelerator, building the command line;
//! - [`mod@run`]: booting (or restoring) and watching one VM, sending init its plan; its [`Outcome`];
//! - [`vmstate`] (over the private `qmp`): machines saved when init waits for its plan, to restore
//!   instead of booting;
//! - [`protocol`], [`ktap`], [`kselftest`], [`console`]: reading what the guest said;
//! - [`children`]: making sure no child process outlives ksnap.

#![warn(missing_docs)]

pub mod apt;
pub mod build;
pub mod cache;
pub mod children;
pub mod console;
mod cpio;
mod deb;
pub mod elf;
mod entry;
mod error;
pub mod hostcpu;
pub mod initramfs;
mod kconfig;
pub mod kernel;
pub mod kselftest;
pub mod ktap;
pub mod protocol;
pub mod qemu;
mod qmp;
pub mod run;
pub mod selftests;
mod vm;
pub mod vmstate;

pub use error::Error;
pub use qemu::{Accel, AccelChoice, PlannedProbe, Qemu, Start, Timeouts, VmSpec};
pub use run::{run, run_saving, Outcome, RunReport, WaitingFor};
pub use vm::Vm;
