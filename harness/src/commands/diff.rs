//! `ksnap diff A B`: which observed facts differ between two columns of the matrix, from the committed
//! snapshots or from runs made now (`--fresh`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ksnap_vm::AccelChoice;

use crate::facts::column::Column;
use crate::progress::Progress;
use crate::project::kernels::LockMode;
use crate::project::matrix::{self, Selection};
use crate::session::Session;

use super::{load_config, PrintFormat};

/// The command line of `ksnap diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    pub a: String,
    pub b: String,
    /// Only this suite (repeatable).
    #[arg(long = "suite", value_name = "NAME")]
    pub suites: Vec<String>,
    /// Run both now instead of reading the committed snapshots.
    #[arg(long)]
    pub fresh: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PrintFormat,
    /// Accelerator for --fresh.
    #[arg(long, default_value = "auto", value_name = "auto|kvm|tcg")]
    pub accel: AccelChoice,
}

/// `ksnap diff`: true when the two columns agree.
pub fn diff(args: DiffArgs, config: Option<PathBuf>, lock_mode: LockMode) -> Result<bool> {
    let DiffArgs { a, b, suites, fresh, format, accel } = args;
    let (a, b, suites) = (a.as_str(), b.as_str(), suites.as_slice());
    let config = load_config(config)?;
    let (column_a, column_b) = if fresh {
        let session = Session::start(config.clone(), accel, Progress::detect(), lock_mode)?;
        (fresh_column(&session, a, suites)?, fresh_column(&session, b, suites)?)
    } else {
        let snapshots = crate::facts::snapshot::read::read_dir(&crate::facts::snapshot::dir(&config.root))?;
        let mut columns = crate::facts::snapshot::read::columns(&snapshots);
        let known: Vec<String> = columns.keys().cloned().collect();
        let mut take = |name: &str| {
            let mut column = columns.remove(name).with_context(|| {
                format!("no snapshots for `{name}` in snapshots/; columns with snapshots: {}", known.join(", "))
            })?;
            column.retain(|suite, _| suites.is_empty() || suites.contains(suite));
            anyhow::Ok(column)
        };
        let column_a = take(a)?;
        let column_b = if a == b { column_a.clone() } else { take(b)? };
        (column_a, column_b)
    };
    let diff = crate::present::diff::compare(a, &column_a, b, &column_b);
    match format {
        PrintFormat::Text => print!("{}", diff.to_text(crate::present::text::output_width())),
        PrintFormat::Markdown => print!("{}", diff.to_markdown()),
        PrintFormat::Json => println!("{}", diff.to_json()),
    }
    Ok(!diff.differs())
}

/// Run every (selected) suite that runs under the column's variant on its kernel, now.
fn fresh_column(session: &Session, column: &str, suites: &[String]) -> Result<Column> {
    let (kernel, variant) = column.split_once('+').unwrap_or((column, "default"));
    let selection = Selection { kernels: vec![kernel.into()], variants: vec![variant.into()], suites: suites.to_vec() };
    let mut facts = Column::new();
    for cell in matrix::cells(&session.config, &selection)? {
        let run = session.run_cell(&cell)?;
        if !run.report.outcome.is_completed() {
            anyhow::bail!("{cell}: {} (console log: {})", run.report.outcome, run.console_log.display());
        }
        facts.insert(cell.suite.clone(), run.facts());
    }
    Ok(facts)
}
