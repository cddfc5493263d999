//! The impairment proxy as a separate process for the end-to-end tests
//! (which stop it with SIGTERM and read its `--summary` file); identical
//! to `audioimpair`.

fn main() -> std::process::ExitCode {
    audioimpair::main_entry()
}
