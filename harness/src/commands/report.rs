//! `ksnap report`: the whole matrix from the committed snapshots, as an HTML page or Markdown.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::load_config;

/// What `ksnap report` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Markdown,
}

/// The command line of `ksnap report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory for index.html.
    #[arg(short, long, default_value = "target/ksnap/report")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
}

/// `ksnap report`.
pub fn report(args: ReportArgs, config: Option<PathBuf>) -> Result<bool> {
    let ReportArgs { out, format } = args;
    let out = out.as_path();
    let config = load_config(config)?;
    let snapshots_dir = crate::facts::snapshot::dir(&config.root);
    let snapshots = crate::facts::snapshot::read::read_dir(&snapshots_dir)?;
    match format {
        ReportFormat::Markdown => print!("{}", crate::present::report::markdown(&snapshots)),
        ReportFormat::Html => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            let out = out.canonicalize()?;
            let links = crate::present::report::relative_path(&out, &snapshots_dir.canonicalize()?);
            let page = out.join("index.html");
            std::fs::write(&page, crate::present::report::html(&snapshots, &links))
                .with_context(|| format!("writing {}", page.display()))?;
            println!("{}", page.display());
        }
    }
    Ok(true)
}
