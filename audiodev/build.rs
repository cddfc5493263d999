//! Builds the C shim that turns alsa-lib's variadic error callback into one
//! formatted string for Rust (Linux only; elsewhere there is no alsa-lib).

fn main() {
    println!("cargo:rerun-if-changed=src/alsa_quiet.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        cc::Build::new()
            .file("src/alsa_quiet.c")
            .warnings(true)
            .compile("audiodev_alsa_quiet");
    }
}
