//! `parley`, the Parley command-line client. Everything it does is in the `parley_cli`
//! library.

fn main() -> std::process::ExitCode {
    parley_cli::main()
}
