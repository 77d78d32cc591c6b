//! The `rhai-mp` binary: become a child if started as one, else run the command line.

fn main() {
    let runtime = rhai_mp::Runtime::new().catch_signals();
    runtime.run_if_child();
    std::process::exit(rhai_mp::cli_main(&runtime));
}
