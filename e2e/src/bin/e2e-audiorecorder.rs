//! The recorder as a separate process for the end-to-end tests (which kill
//! it); identical to `audiorecorder`.

fn main() -> std::process::ExitCode {
    audiorecorder::main_entry()
}
