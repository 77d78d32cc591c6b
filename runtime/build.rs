//! Links the `rhai-mp` binary as a non-PIE executable on Linux: the dynamic loader then has
//! no relocations to apply at start-up, a large part of a spawn child's start-up time.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
