//! Helpers shared by the integration tests.

#![allow(dead_code)] // Each test binary uses its own subset.

/// QEMU processes whose parent is `parent`.
pub fn qemu_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // comm is in parentheses and may contain spaces; fields after it are space-separated.
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") ")) else { continue };
        let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.starts_with("qemu-system") && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}
