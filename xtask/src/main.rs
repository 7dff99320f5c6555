//! Project automation; see `cargo xtask help`.
fn main() {
    eprintln!("xtask: not yet written");
    std::process::exit(2);
}
