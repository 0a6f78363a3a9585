//! `ksnap history`: since which kernel each fact has its value, from the committed snapshots; with
//! `--releases LINE`, along every release of a kernel line, run now (`super::sweep`).

use std::path::PathBuf;

use anyhow::Result;

use crate::present::history::Fold;
use crate::project::kernels::LockMode;

use super::{load_config, PrintFormat};

/// The command line of `ksnap history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this suite (repeatable).
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PrintFormat,
    /// Run the suites on every release of apt kernel LINE (`ksnap releases LINE` lists them) and print
    /// each fact's timeline along them, each change with the likeliest entries of the newer release's
    /// changelog. The results go to --out, never to snapshots/.
    #[arg(long, value_name = "LINE")]
    pub releases: Option<String>,
    /// With --releases: the variant the suites run under (default: `default`).
    #[arg(long, requires = "releases")]
    pub variant: Option<String>,
    /// With --releases or --merge: the results file, JSON (default:
    /// target/ksnap/sweeps/LINE-VARIANT.json under the project's root).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// With --releases: only shard K of N, the releases whose index (from 0, oldest first) modulo N is
    /// K-1; a CI job runs each shard on a machine of its own.
    #[arg(long, value_name = "K/N", requires = "releases")]
    pub shard: Option<crate::facts::sweep::Shard>,
    /// With --releases: VMs at once (default: the number of CPUs).
    #[arg(short, long, requires = "releases")]
    pub jobs: Option<usize>,
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: ksnap_vm::AccelChoice,
    /// The results files of a sweep's shards (`--releases LINE --shard K/N`) merged into one (written to
    /// --out, default the whole sweep's file), and its timeline printed.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "releases")]
    pub merge: Vec<PathBuf>,
}

/// `ksnap history`: per suite, each fact that differs between the kernels and variants of the committed
/// snapshots, told along the kernel versions, facts with the same history on one line; a suite longer than
/// a screen summarised unless `--suite` names it.
pub fn history(args: HistoryArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let HistoryArgs { suites, format, releases, variant, out, shard, jobs, accel, merge } = args;
    if !merge.is_empty() {
        return super::sweep::merge(&merge, out, accel, config, lock_mode);
    }
    if let Some(line) = releases {
        let request = super::sweep::SweepRequest { line, suites, variant, out, shard, jobs, accel };
        return super::sweep::sweep(request, config, lock_mode);
    }
    let config = load_config(config)?;
    for suite in &suites {
        if !config.suites.contains_key(suite) {
            let known: Vec<&String> = config.suites.keys().collect();
            anyhow::bail!(
                "unknown suite `{suite}`; ksnap.toml defines: {}",
                known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let snapshots = crate::facts::snapshot::read::read_dir(&crate::facts::snapshot::dir(&config.root))?;
    let histories = crate::present::history::of_snapshots(&snapshots, &suites);
    match format {
        PrintFormat::Text => {
            let fold = match suites.is_empty() {
                true => Fold::Screen { more: &|suite| format!("`ksnap history --suite {suite}`") },
                false => Fold::Whole,
            };
            print!("{}", crate::present::history::text(&histories, fold, crate::present::text::output_width()));
        }
        PrintFormat::Markdown => print!("{}", crate::present::history::markdown(&histories)),
        PrintFormat::Json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "suites": histories }))?),
    }
    Ok(true)
}
