//! `ksnap init [DIR]`: start a project of one's own.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The command line of `ksnap init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The crate's (and its suite's) name. Default: the directory's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Take ksnap's crates from this checkout of its repository (path dependencies) instead of git.
    #[arg(long, value_name = "CHECKOUT")]
    pub ksnap_path: Option<PathBuf>,
}

/// `ksnap init [DIR]`: write the project, list its files and say what comes next.
pub fn init(args: InitArgs) -> Result<bool> {
    let InitArgs { dir, name, ksnap_path } = args;
    let (dir, name) = (dir.as_path(), name.as_deref());
    use crate::project::scaffold::KsnapSource;
    let source = match ksnap_path {
        Some(path) => {
            let path = std::fs::canonicalize(&path).with_context(|| format!("--ksnap-path {}", path.display()))?;
            if !path.join("harness").join("Cargo.toml").is_file() || !path.join("probe").join("Cargo.toml").is_file() {
                bail!("--ksnap-path {}: not a checkout of ksnap's repository (no harness/ and probe/)", path.display());
            }
            KsnapSource::Checkout(path)
        }
        None => KsnapSource::upstream(),
    };
    let written = crate::project::scaffold::init(dir, name, &source)?;
    for path in &written {
        println!("  wrote {}", path.display());
    }
    println!(
        "\nnext, in {}:\n  ksnap lock          pin the kernels (ksnap.lock: commit it)\n  ksnap run           \
         boot them and print what the probe saw\n  cargo test          the same as tests, writing snapshots/*.snap.new\n  \
         cargo insta review  read and accept them, then commit snapshots/",
        dir.display()
    );
    Ok(true)
}
