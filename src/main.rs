//! The `warden` binary: parses arguments and hands over to the library.

fn main() {
    std::process::exit(warden::cli::main());
}
