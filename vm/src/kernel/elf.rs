//! Telling a static x86-64 executable from everything else, by its ELF header: a guest has no dynamic
//! loader and no libraries, so anything else fails to exec there (`ENOENT`, confusingly).

use std::io::Read;
use std::path::Path;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;
/// More program headers than any linker writes: a header claiming more is not trusted.
const MAX_PHDRS: usize = 256;

/// `Ok` if `path` is a statically linked x86-64 ELF executable (static-pie included); otherwise why not,
/// as a phrase: "not an ELF file", "dynamically linked (it names the interpreter …)".
pub fn check_static_executable(path: &Path) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take((EHDR_LEN + MAX_PHDRS * PHDR_LEN) as u64 + 4096).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot be read: {e}"))?;
    check_static_executable_bytes(&bytes)
}

fn check_static_executable_bytes(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < EHDR_LEN || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let machine = u16_at(18);
    if machine != EM_X86_64 {
        return Err(format!("built for another architecture (ELF machine {machine}, x86-64 is {EM_X86_64})"));
    }
    if !matches!(u16_at(16), ET_EXEC | ET_DYN) {
        return Err("not an executable (an object file or core dump)".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    if phnum > MAX_PHDRS || (phnum > 0 && phentsize < PHDR_LEN) || phoff > (bytes.len() as u64) {
        return Err("its program headers are not readable".into());
    }
    for index in 0..phnum {
        let at = phoff as usize + index * phentsize;
        match u32_at(at) {
            None => return Err("its program headers are not readable".into()),
            Some(PT_INTERP) => return Err("dynamically linked (it needs a dynamic loader)".into()),
            Some(_) => {}
        }
    }
    if u16_at(16) == ET_DYN && phnum == 0 {
        return Err("a shared library, not an executable".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_binaries_and_this_test_are_told_apart() {
        // The test binary itself is dynamically linked (host build).
        let me = std::env::current_exe().unwrap();
        let why = check_static_executable(&me).unwrap_err();
        assert!(why.contains("dynamically linked"), "{why}");
        assert_eq!(check_static_executable_bytes(b"#!/bin/sh\n").unwrap_err(), "not an ELF file");
        let mut arm = vec![0u8; EHDR_LEN];
        arm[..6].copy_from_slice(b"\x7fELF\x02\x01");
        arm[16] = 2;
        arm[18] = 183;
        assert!(check_static_executable_bytes(&arm).unwrap_err().contains("another architecture"));
        let mut bare = arm.clone();
        bare[18] = 62;
        assert_eq!(check_static_executable_bytes(&bare), Ok(()));
        bare[54] = 56;
        bare[56] = 200;
        assert!(check_static_executable_bytes(&bare).unwrap_err().contains("program headers"));
    }

    #[test]
    #[cfg_attr(skip_vm, ignore = "needs gcc (KSNAP_SKIP_VM=1)")]
    fn a_static_c_program_is_static() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.c"), "int main(void) { return 0; }\n").unwrap();
        for (flags, is_static) in [(&["-static"][..], true), (&["-static-pie"][..], true), (&[][..], false)] {
            let out = dir.path().join("a");
            let status =
                std::process::Command::new("gcc").args(flags).arg("-o").arg(&out).arg(dir.path().join("a.c")).status();
            assert!(status.unwrap().success());
            assert_eq!(check_static_executable(&out).is_ok(), is_static, "{flags:?}");
        }
    }
}
