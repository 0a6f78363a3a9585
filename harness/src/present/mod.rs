//! What a person reads: plain-text helpers ([`text`]), the results of a run ([`results::View`] says how
//! they are laid out), `ksnap diff`, `ksnap history`, `ksnap bisect`, the HTML and Markdown report and curve plots. Each turns facts into text and decides nothing.

pub mod bisect;
pub mod diff;
pub mod history;
pub mod moves;
pub mod plot;
pub mod report;
pub mod results;
pub mod snapshots;
pub mod text;

pub use results::View;
