//! Bisecting releases: between two releases whose facts differ, the adjacent pair where a watched fact
//! (or any fact of a suite) changes, found by binary search in about log2(N) boots ([`search`]), with
//! the nearest known keys for a fact no snapshot has ([`mod@suggest`]). Pure: the caller observes a candidate
//! (boots it, or reads a committed snapshot) through a closure; nothing here runs a VM or prints.
//!
//! Binary search assumes the fact changes once. When it flips back and forth, the search finds *a*
//! change, not every one: the report says so, and a sweep over every release (`ksnap history
//! --releases`) shows them all.

pub mod report;
pub mod search;
pub mod suggest;
#[cfg(test)]
mod tests;

pub use report::{BisectError, BisectReport, End, FactChange, Observation, Outcome, Skipped, Watched, ABSENT};
pub use search::{bisect, Search, Side, Step, StepSeen};
pub use suggest::suggest;
