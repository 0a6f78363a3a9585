//! How much CPU a VM got from the host: the time its virtual CPUs' threads ran, and the time they were
//! ready to run but waited for a core.
//!
//! Under TCG a guest runs only as fast as its vCPU thread gets a core, so a guest beside other work on the
//! host sees its timeouts fire early and its timing-dependent results move: results of the host's load, not
//! of the kernel. The wait is what tells a starved VM from an idle one (a guest that sleeps uses little CPU
//! too, but never waits for a core): the scheduler counts both per thread in `/proc/PID/task/TID/schedstat`
//! (fs/proc/base.c `proc_pid_schedstat`: `se.sum_exec_runtime`, `sched_info.run_delay` in ns, and the
//! number of time slices), with `CONFIG_SCHED_INFO`, which distribution kernels have. Only the vCPU
//! threads count (QEMU names them `CPU N/TCG` or `CPU N/KVM` with `-name …,debug-threads=on`, which ksnap
//! passes): QEMU's main loop wakes for every console byte and timer, and its short waits for a core while
//! both cores run vCPUs say nothing about how fast the guest ran. Without named threads, every thread counts.

use std::time::Duration;

/// A VM's share of the host's CPUs over its run: the sum over QEMU's vCPU threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostCpu {
    /// Time the vCPU threads spent running.
    pub ran: Duration,
    /// Time the vCPU threads were runnable but waited for a CPU (another process had it).
    pub waited: Duration,
}

impl HostCpu {
    /// The part of the time the vCPU threads wanted a CPU that they spent waiting for one: near 0 on an idle
    /// host; on two cores beside two busy processes about a third for one VM, a half for two.
    pub fn waited_share(&self) -> f64 {
        let wanted = (self.ran + self.waited).as_secs_f64();
        if wanted == 0.0 {
            0.0
        } else {
            self.waited.as_secs_f64() / wanted
        }
    }

    /// Reads the counters of the vCPU threads of QEMU process `pid` now (of every thread if none is named
    /// `CPU …`). `None` without schedstat (no `CONFIG_SCHED_INFO` on the host, or the process is gone).
    pub fn of_process(pid: u32) -> Option<HostCpu> {
        let mut meter = Meter::new(pid);
        meter.sample();
        meter.latest()
    }

    fn add(&mut self, other: HostCpu) {
        self.ran += other.ran;
        self.waited += other.waited;
    }
}

impl std::fmt::Display for HostCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ran {:.1}s, waited {:.1}s for a CPU ({:.0}% of the time it wanted one)",
            self.ran.as_secs_f64(),
            self.waited.as_secs_f64(),
            self.waited_share() * 100.0
        )
    }
}

/// `/proc/PID/task/TID/schedstat`: "RUN_NS WAIT_NS SLICES".
fn parse_schedstat(text: &str) -> Option<HostCpu> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    let ran = fields.next()??;
    let waited = fields.next()??;
    Some(HostCpu { ran: Duration::from_nanos(ran), waited: Duration::from_nanos(waited) })
}

/// Samples a running process's threads' counters now and then and keeps each thread's last: the counters
/// only grow, and a thread's are gone once it ends (all of them when QEMU exits: a sample of an exiting QEMU
/// sees its main thread alone, or nothing), so each thread counts with the last values it was seen with. A
/// thread that ended between two samples loses at most the time since the last one.
#[derive(Debug)]
pub(crate) struct Meter {
    pid: u32,
    every: Duration,
    last_sample: Option<std::time::Instant>,
    /// Per thread id: whether it is a vCPU thread, and its counters when last seen.
    threads: std::collections::HashMap<u32, (bool, HostCpu)>,
}

impl Meter {
    pub(crate) fn new(pid: u32) -> Meter {
        Meter { pid, every: Duration::from_millis(200), last_sample: None, threads: Default::default() }
    }

    /// Samples if the last sample is older than the sampling interval.
    pub(crate) fn tick(&mut self) {
        if self.last_sample.is_none_or(|at| at.elapsed() >= self.every) {
            self.sample();
        }
    }

    /// Samples now.
    pub(crate) fn sample(&mut self) {
        self.last_sample = Some(std::time::Instant::now());
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else { return };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
            let Some(now) = parse_schedstat(&text) else { continue };
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            self.threads.insert(tid, (comm.starts_with("CPU "), now));
        }
    }

    /// The vCPU threads' counters (every thread's if none is a vCPU thread), `None` if nothing was seen.
    pub(crate) fn latest(&self) -> Option<HostCpu> {
        let vcpus_seen = self.threads.values().any(|(vcpu, _)| *vcpu);
        let mut total = None::<HostCpu>;
        for (vcpu, cpu) in self.threads.values() {
            if *vcpu || !vcpus_seen {
                total.get_or_insert_with(HostCpu::default).add(*cpu);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_is_run_time_wait_time_and_slices_in_ns() {
        let cpu = parse_schedstat("1071534 49915 3\n").unwrap();
        assert_eq!(cpu.ran, Duration::from_nanos(1_071_534));
        assert_eq!(cpu.waited, Duration::from_nanos(49_915));
        assert_eq!(parse_schedstat("garbage"), None);
        assert_eq!(parse_schedstat("12"), None);
    }

    #[test]
    fn the_waited_share_is_the_wait_over_all_the_time_a_cpu_was_wanted() {
        let cpu = HostCpu { ran: Duration::from_secs(3), waited: Duration::from_secs(1) };
        assert!((cpu.waited_share() - 0.25).abs() < 1e-9);
        assert_eq!(HostCpu::default().waited_share(), 0.0);
    }

    #[test]
    fn a_thread_counts_with_its_last_values_after_it_is_gone() {
        let mut meter = Meter::new(u32::MAX);
        let cpu = |ran, waited| HostCpu { ran: Duration::from_secs(ran), waited: Duration::from_secs(waited) };
        meter.threads.insert(1, (false, cpu(2, 1)));
        assert_eq!(meter.latest(), Some(cpu(2, 1)), "no vCPU thread named: every thread counts");
        meter.threads.insert(2, (true, cpu(60, 3)));
        assert_eq!(meter.latest(), Some(cpu(60, 3)), "only the vCPU thread counts");
        // A sample of a process that is gone changes nothing.
        meter.sample();
        assert_eq!(meter.latest(), Some(cpu(60, 3)));
    }

    #[test]
    fn a_busy_process_is_measured_while_it_runs() {
        // This process: its threads ran (the test harness) for some time already.
        let cpu = HostCpu::of_process(std::process::id()).expect("schedstat on the test host");
        assert!(cpu.ran > Duration::ZERO);
        assert_eq!(HostCpu::of_process(u32::MAX), None);
    }
}
