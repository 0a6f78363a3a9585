//! A column of the matrix: one kernel, or kernel+variant (`6.1`, `6.12+force-never`), the unit `ksnap diff`
//! compares and the report lays out side by side.

use std::collections::BTreeMap;

use crate::facts::Facts;

/// The facts of one column (a kernel, or kernel+variant), by suite.
pub type Column = BTreeMap<String, Facts>;
