//! `ksnap report` as a browser lays it out: the page of the committed snapshots in headless Chromium at
//! 1280 and 1920 px. Tables may be wider than the window only inside their own scroll box; no value wraps;
//! the header row and the fact column stay in view when a table scrolls.
//!
//! Chromium runs where it is installed (`apt-get install chromium`; `.ci/run` installs it). Without it the
//! test says so and passes, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// Measures the laid-out page and writes the result into the title, which `--dump-dom` prints. Added to
/// a copy of the page only: the report itself has no scripts.
const MEASURE: &str = r#"<script>
addEventListener("load", () => {
  const page = document.documentElement.scrollWidth - innerWidth;
  const boxes = [...document.querySelectorAll(".scroll")];
  const scrolling = boxes.filter(b => b.scrollWidth > b.clientWidth).length;
  const heights = [...document.querySelectorAll("td")].filter(td => td.offsetParent).map(td => td.offsetHeight);
  const tallest = Math.max(...heights), shortest = Math.min(...heights);
  // Scroll the widest table both ways: its header row and first column must stay at the box's edges.
  const box = boxes.filter(b => b.classList.contains("tall")).sort((a, b) => b.scrollWidth - a.scrollWidth)[0];
  box.scrollLeft = 400; box.scrollTop = 200;
  const edge = box.getBoundingClientRect();
  const head = box.querySelector("thead").getBoundingClientRect();
  const first = [...box.querySelectorAll("tbody th")].find(th => {
    const r = th.getBoundingClientRect(); return r.top >= head.bottom && r.bottom <= edge.bottom;
  }).getBoundingClientRect();
  const sticky = Math.abs(head.top - edge.top) <= 2 && Math.abs(first.left - edge.left) <= 2;
  document.title = `layout page_overflow=${page} scrolling_boxes=${scrolling} tallest_cell=${tallest} shortest_cell=${shortest} sticky=${sticky}`;
});
</script>"#;

fn chromium() -> Option<PathBuf> {
    let name = std::env::var_os("KSNAP_CHROMIUM").unwrap_or_else(|| "chromium".into());
    let found = Command::new(&name).arg("--version").output().is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from(name))
}

/// The measurements at a window `width` px wide, by name.
fn measure(chromium: &Path, page: &Path, width: u32) -> std::collections::BTreeMap<String, String> {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},900"))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let title = dom
        .split_once("<title>layout ")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .unwrap_or_else(|| panic!("Chromium did not measure the page: {}", String::from_utf8_lossy(&output.stderr)))
        .0;
    title.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_report_fits_the_window_with_wide_tables_scrolling_in_their_own_box() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but Chromium is missing: apt-get install chromium");
        eprintln!("skipped: Chromium is not installed (apt-get install chromium)");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let status = Command::cargo_bin("ksnap")
        .unwrap()
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .args(["report", "--out"])
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let page = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    let measured = out.path().join("measured.html");
    std::fs::write(&measured, page.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();
    for width in [1280, 1920] {
        let m = measure(&chromium, &measured, width);
        let number = |key: &str| m[key].parse::<i64>().unwrap_or_else(|_| panic!("{key}: {m:?}"));
        assert!(number("page_overflow") <= 0, "at {width} px the page is wider than the window: {m:?}");
        // The matrix is wider than either window: if no table scrolled, the check above proved nothing.
        assert!(number("scrolling_boxes") > 0, "at {width} px no table scrolls in its box: {m:?}");
        assert!(number("tallest_cell") < number("shortest_cell") * 3 / 2, "at {width} px a cell wraps: {m:?}");
        assert_eq!(m["sticky"], "true", "at {width} px the header row or fact column scrolled away: {m:?}");
    }
}
