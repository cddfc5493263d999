//! audiorecorder's entry point; everything is in the library ([`audiorecorder::main_entry`]).

fn main() -> std::process::ExitCode {
    audiorecorder::main_entry()
}
