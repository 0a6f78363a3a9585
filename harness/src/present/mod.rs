//! What a person reads: plain-text helpers ([`text`]), the results of a run ([`results::View`] says how
//! they are laid out), `ksnap diff`, `ksnap history`, the HTML and Markdown report, curve plots, console
//! logs and the progress lines on a terminal. Each turns facts into text and decides nothing.

pub mod console_log;
pub mod diff;
pub mod history;
pub mod plot;
pub mod progress;
pub mod report;
pub mod results;
pub mod text;

pub use results::View;
