//! The `holdfast` binary: parses the command line and calls the library.

fn main() -> std::process::ExitCode {
    holdfast::cli::main()
}
