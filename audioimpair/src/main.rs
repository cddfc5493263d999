//! audioimpair's entry point; everything is in the library ([`audioimpair::main_entry`]).

fn main() -> std::process::ExitCode {
    audioimpair::main_entry()
}
