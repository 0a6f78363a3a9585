//! `ksnap history`: since which kernel each fact has its value, from the committed snapshots.

use std::path::PathBuf;

use anyhow::Result;

use super::{load_config, PrintFormat};

/// The command line of `ksnap history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Only this suite (repeatable).
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PrintFormat,
}

/// `ksnap history`: per suite, each fact that changes along the kernel versions of the default variant,
/// and the version where each value appears (from the committed snapshots).
pub fn history(args: HistoryArgs, config: Option<PathBuf>) -> Result<bool> {
    let HistoryArgs { suites, format } = args;
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
    let (axis, histories) = crate::present::history::compute(&snapshots, &suites);
    match format {
        PrintFormat::Text => print!("{}", crate::present::history::text(&axis, &histories)),
        PrintFormat::Markdown => print!("{}", crate::present::history::markdown(&axis, &histories)),
        PrintFormat::Json => {
            let json = serde_json::json!({ "kernel_versions": axis, "facts": histories });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(true)
}
