//! The releases of a real kernel line, from Debian's archive through ksnap's private apt configuration
//! for bullseye and its companions (the system's Debian mirror; needs the network to it).

use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::releases::compare_versions;
use ksnap_vm::kernel::KernelSource;

#[test]
#[cfg_attr(skip_vm, ignore = "needs apt and the system's Debian mirror (KSNAP_SKIP_VM=1)")]
fn the_5_10_line_has_releases_in_bullseye_and_its_security_suite() {
    let cache = Cache::user_default().unwrap();
    let archives = Archives::new(&cache, None);
    let source = KernelSource::Apt { package: "linux-image-cloud-amd64".into(), suite: Some("bullseye".into()) };
    let (family, releases) = source.releases(&archives).unwrap();
    assert_eq!(family.to_string(), "linux-image-5.10*-cloud-amd64");
    assert!(releases.len() >= 4, "{releases:#?}");
    assert!(releases.iter().any(|r| r.suites.iter().any(|s| s == "bullseye-security")), "{releases:#?}");
    assert!(releases.iter().any(|r| r.suites.iter().any(|s| s == "bullseye")), "{releases:#?}");
    assert!(releases.windows(2).all(|w| compare_versions(&w[0].version, &w[1].version).is_le()), "{releases:#?}");
    assert!(releases.iter().all(|r| family.contains(&r.package) && r.version.starts_with("5.10.")), "{releases:#?}");
    // Pinning the line itself still follows bullseye, not its companions: ksnap.lock does not move.
    let pin = source.pin(&archives).unwrap().unwrap();
    assert_eq!(pin.packages()[0].suite, "bullseye", "{pin:?}");
}
