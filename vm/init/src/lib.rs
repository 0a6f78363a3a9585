//! The parts of ksnap's init that other guest programs share: [`pid1`] (what a PID 1 must do: mount,
//! open the serial result channel, power off) and [`relay`] (cutting a probe's output into protocol
//! lines). The init itself is `src/main.rs`; `ksnap-vm` builds it static and embeds it.

pub mod pid1;
pub mod relay;
