//! The matrix of ksnap.toml as tests: `cargo test` boots every cell and compares it with snapshots/.
fn main() {
    ksnap::testing::main()
}
