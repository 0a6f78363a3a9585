//! The matrix: every (kernel, variant, suite) cell `ksnap.toml` declares, and selecting some of them.

use anyhow::{bail, Result};

use crate::project::config::Config;

/// One cell of the matrix: a suite, run on a kernel booted with a variant's command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub kernel: String,
    pub variant: String,
    pub suite: String,
}

impl Cell {
    /// `KERNEL::VARIANT::SUITE`, the cell's test name (`6.12::default::env`).
    pub fn id(&self) -> String {
        format!("{}::{}::{}", self.kernel, self.variant, self.suite)
    }

    /// `KERNEL` for the default variant, `KERNEL+VARIANT` otherwise: how snapshots and tables name a column.
    pub fn column(&self) -> String {
        if self.variant == "default" {
            self.kernel.clone()
        } else {
            format!("{}+{}", self.kernel, self.variant)
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id())
    }
}

/// Which cells to run; an empty list means "all" (for kernels: all but those with `default = false`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub kernels: Vec<String>,
    pub variants: Vec<String>,
    pub suites: Vec<String>,
}

/// All cells of `config` that `selection` picks, sorted (kernel, variant, suite).
pub fn cells(config: &Config, selection: &Selection) -> Result<Vec<Cell>> {
    check_known("kernel", &selection.kernels, config.kernels.keys())?;
    check_known("variant", &selection.variants, config.variants.keys())?;
    check_known("suite", &selection.suites, config.suites.keys())?;
    let picked = |wanted: &[String], name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let mut cells = Vec::new();
    // A kernel with `default = false` runs only when named.
    let kernel_picked = |name: &str| {
        if selection.kernels.is_empty() {
            !config.named_only.contains(name)
        } else {
            picked(&selection.kernels, name)
        }
    };
    for kernel in config.kernels.keys().filter(|k| kernel_picked(k)) {
        for suite in config.suites.values().filter(|s| picked(&selection.suites, &s.name)) {
            for variant in suite.variants.iter().filter(|v| picked(&selection.variants, v)) {
                cells.push(Cell { kernel: kernel.clone(), variant: variant.clone(), suite: suite.name.clone() });
            }
        }
    }
    cells.sort();
    if cells.is_empty() {
        bail!("the selection matches no cell of the matrix (no suite runs under the variants named)");
    }
    Ok(cells)
}

fn check_known<'a>(kind: &str, wanted: &[String], known: impl Iterator<Item = &'a String>) -> Result<()> {
    let known: Vec<&String> = known.collect();
    for name in wanted {
        if !known.contains(&name) {
            let list: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
            bail!("unknown {kind} `{name}`; ksnap.toml defines: {}", list.join(", "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml(
            r#"
            [kernels."6.1"]
            apt = "a"
            [kernels."6.12"]
            apt = "b"
            [variants.never]
            cmdline = ["proc_mem.force_override=never"]
            [suites.env]
            probes = [{ exe = "env" }]
            [suites.proc_mem]
            probes = [{ exe = "proc_mem" }]
            variants = ["default", "never"]
            "#,
            "/".into(),
        )
        .unwrap()
    }

    #[test]
    fn expands_suites_under_their_own_variants() {
        let ids: Vec<String> = cells(&config(), &Selection::default()).unwrap().iter().map(Cell::id).collect();
        assert_eq!(
            ids,
            [
                "6.1::default::env",
                "6.1::default::proc_mem",
                "6.1::never::proc_mem",
                "6.12::default::env",
                "6.12::default::proc_mem",
                "6.12::never::proc_mem"
            ]
        );
    }

    #[test]
    fn a_kernel_outside_the_default_run_runs_only_when_named() {
        let mut config = config();
        config.named_only.insert("6.12".into());
        let kernels = |selection: &Selection| {
            let mut kernels: Vec<String> = cells(&config, selection).unwrap().into_iter().map(|c| c.kernel).collect();
            kernels.dedup();
            kernels
        };
        assert_eq!(kernels(&Selection::default()), ["6.1"]);
        assert_eq!(kernels(&Selection { kernels: vec!["6.12".into()], ..Default::default() }), ["6.12"]);
    }

    #[test]
    fn selects_and_names_columns() {
        let selection =
            Selection { kernels: vec!["6.12".into()], variants: vec!["never".into()], ..Default::default() };
        let picked = cells(&config(), &selection).unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].column(), "6.12+never");
        let unknown = Selection { suites: vec!["nope".into()], ..Default::default() };
        let err = cells(&config(), &unknown).unwrap_err().to_string();
        assert!(err.contains("unknown suite `nope`; ksnap.toml defines: env, proc_mem"), "{err}");
    }
}
