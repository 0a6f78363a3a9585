//! Empty: see `Cargo.toml` in this directory. The snapshots are the `.snap` files beside it.
