//! A real selftests build: Debian's linux-source-7.2 from sid, fetched through apt into the user's cache
//! (shared with kernel builds of that source and with `ksnap run`, which builds the same collections), its
//! mm and proc selftests built statically. The first run downloads 164 MB, unpacks 1.5 GB and builds for
//! about half a minute; later runs verify the cache entry.

use std::time::Instant;

use ksnap_vm::cache::Cache;
use ksnap_vm::kernel::apt::Archives;
use ksnap_vm::kernel::selftests::SelftestsRecipe;
use ksnap_vm::Error;

#[test]
#[cfg_attr(skip_vm, ignore = "fetches a kernel source package through apt and builds it with gcc (KSNAP_SKIP_VM=1)")]
fn mm_and_proc_selftests_build_statically_from_a_debian_source_package() {
    let cache = Cache::user_default().unwrap();
    let archives = Archives::new(&cache, None);
    let apt = archives.apt(Some("sid")).unwrap();
    let recipe = SelftestsRecipe { collections: vec!["proc".into(), "mm".into()] };
    let start = Instant::now();
    let mut report = |step: &str| eprintln!("[{:6.1} s] {step}", start.elapsed().as_secs_f64());
    let mut source = apt.pin("linux-source-7.2").unwrap().remove(0);
    let selftests = match recipe.resolve(&source, Some("sid"), &cache, &archives, &mut report) {
        // ksnap's lists of sid are updated once, when first used: sid may have moved on since.
        Err(Error::PackageGone { .. }) => {
            apt.update().unwrap();
            source = apt.pin("linux-source-7.2").unwrap().remove(0);
            recipe.resolve(&source, Some("sid"), &cache, &archives, &mut report)
        }
        other => other,
    }
    .unwrap();
    eprintln!("[{:6.1} s] done: {}", start.elapsed().as_secs_f64(), selftests.dir.display());
    eprintln!("built: {}", selftests.built.keys().cloned().collect::<Vec<_>>().join(" "));
    for (test, why) in selftests.not_built() {
        eprintln!("not built: {test}: {why}");
    }

    assert_eq!(selftests.source, source.package());
    assert_eq!(selftests.collections, ["mm", "proc"]);
    assert!(selftests.toolchain.starts_with("gcc "), "{}", selftests.toolchain);
    for test in ["mm/cow", "mm/uffd-unit-tests", "mm/migration", "mm/mlock-random-test", "proc/proc-pid-vm"] {
        let binary = selftests.binary(test).unwrap();
        assert!(binary.starts_with(&selftests.dir), "{}", binary.display());
        let elf = std::fs::read(&binary).unwrap();
        assert_eq!(&elf[..4], b"\x7fELF", "{test}");
    }
    assert!(selftests.built.len() > 70, "mm and proc have about 80 programs: {:?}", selftests.built.keys());
    // These two ignore USERLDFLAGS (mm/Makefile links them with its own flags).
    for test in ["mm/protection_keys_64", "mm/pkey_sighandler_tests_64"] {
        let err = selftests.binary(test).unwrap_err().to_string();
        assert!(err.contains("was not built: not a static x86-64 executable: dynamically linked"), "{err}");
    }
    assert!(selftests.built.keys().all(|name| !name.ends_with(".sh")), "scripts are not kept");

    // The source entry the build used (and kernel builds use) is as unpacked.
    // The tarball's one directory is named after the package.
    let tree = cache.entry("sources", &format!("{}_{}", source.name, source.version)).join(&source.name);
    assert!(tree.join("Makefile").is_file(), "{}", tree.display());
    for written in ["tools/testing/selftests/mm/local_config.mk", "usr/include/linux", ".config", "include/config"] {
        assert!(!tree.join(written).exists(), "the build wrote {written} into {}", tree.display());
    }
    assert_eq!(recipe.cached(&source.package(), &cache).unwrap(), Some(selftests));
}
