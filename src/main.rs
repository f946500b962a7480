//! The `ferry` binary: parse the command line and hand over to `cli`.
fn main() {
    std::process::exit(ferry::cli::main());
}
