//! scripts/setup.sh never removes what the user installed: an install whose plan (apt's simulation)
//! removes a package is refused with the reason, and nothing is installed. Run against a fake apt.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A fake command in `dir` that appends its arguments to `dir/calls` and then runs `body`.
fn fake(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    let script = format!("#!/bin/sh\necho \"{name} $*\" >> \"{}\"\n{body}\n", dir.join("calls").display());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_install_that_would_remove_a_package_is_refused_and_nothing_is_installed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let fakes = tempfile::tempdir().unwrap();
    // As root; busybox-static is missing (everything else is found on this PATH or by file checks that
    // this machine may or may not pass: whatever else is missing joins the same refused plan).
    fake(fakes.path(), "id", "echo 0");
    fake(fakes.path(), "dpkg-query", "exit 1");
    fake(fakes.path(), "apt-cache", "exit 0");
    fake(
        fakes.path(),
        "apt-get",
        r#"case " $* " in *" -s "*) echo "Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]"; echo "Inst busybox-static";; esac"#,
    );
    let path = format!("{}:{}", fakes.path().display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash").arg(root.join("scripts/setup.sh")).env("PATH", path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would remove qemu-utils, which this machine has; nothing was"), "{stderr}");
    let calls = std::fs::read_to_string(fakes.path().join("calls")).unwrap();
    let installs: Vec<&str> = calls.lines().filter(|l| l.starts_with("apt-get") && l.contains(" install ")).collect();
    assert!(!installs.is_empty(), "the plan was never simulated: {calls}");
    assert!(installs.iter().all(|l| l.contains(" -s ")), "something was installed for real: {calls}");
}
