//! The kernel matrix of this repository's ksnap.toml as tests, one trial per cell with its insta snapshot,
//! exactly as a user's crate gets it: see `ksnap::testing`.

fn main() {
    ksnap::testing::main()
}
