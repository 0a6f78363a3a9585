//! `ksnap report`: the whole matrix from the committed snapshots, as an HTML page or Markdown.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::load_config;
use crate::present::report::Page;

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
    /// `html`: the whole matrix as a page in --out; `markdown`: a summary of it for a CI job summary
    /// (GitHub caps those at 1 MiB), linking to the page.
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// With --format markdown: where the page is published (CI: the uploaded artifact's URL), for the
    /// summary's link. Without it, the summary names where `ksnap report` writes the page.
    #[arg(long, value_name = "URL")]
    pub page_url: Option<String>,
}

/// `ksnap report`.
pub fn report(args: ReportArgs, config: Option<PathBuf>) -> Result<bool> {
    let ReportArgs { out, format, page_url } = args;
    let out = out.as_path();
    let config = load_config(config)?;
    let snapshots_dir = crate::facts::snapshot::dir(&config.root);
    let snapshots = crate::facts::snapshot::read::read_dir(&snapshots_dir)?;
    match format {
        ReportFormat::Markdown => {
            let written = out.join("index.html");
            let page = match &page_url {
                Some(url) => Page::Url(url),
                None => Page::Written(&written),
            };
            print!("{}", crate::present::report::markdown(&snapshots, page));
        }
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
