//! Boot a kernel, run one static binary in it, print what happened:
//! `cargo run -p ksnap-vm --example boot -- /boot/vmlinuz-… path/to/static-probe`.

use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [kernel, probe] = <[String; 2]>::try_from(std::env::args().skip(1).collect::<Vec<_>>())
        .map_err(|_| "usage: boot KERNEL_IMAGE STATIC_EXECUTABLE")?;
    let (qemu, cache) = (ksnap_vm::Qemu::locate()?, ksnap_vm::cache::Cache::user_default()?);
    let report = ksnap_vm::Vm::new(kernel).probe("probe", probe, Duration::from_secs(60)).run(&qemu, &cache)?;
    println!("{} in {:.1}s", report.outcome, report.duration.as_secs_f64());
    if let ksnap_vm::Outcome::Completed(guest) = &report.outcome {
        for probe in &guest.probes {
            println!("probe {} {}:\n{}", probe.name, probe.end, probe.output.join("\n"));
        }
    }
    Ok(())
}
