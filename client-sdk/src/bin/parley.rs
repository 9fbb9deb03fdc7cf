//! `parley`, the Parley command-line client. Everything it does is in `parley_sdk::cli`.

fn main() -> std::process::ExitCode {
    parley_sdk::cli::main()
}
