//! A host that forgets to call `run_if_child()` (the tests run it): its spawn children are
//! this program started again, which must not run `main` once more. The first `start()`
//! (or `Pool`) throws `ProcessError` naming `run_if_child()`, and the children leave at once.
//!
//! ```sh
//! cargo run --release --example forgetful
//! ```

fn main() {
    // With `exits-early`, a child stops where a host's usage error would, before anything
    // of rhai-mp runs (the children get the same arguments).
    if std::env::args().nth(1).as_deref() == Some("exits-early") && std::env::var_os("RHAI_MP_CHILD").is_some() {
        std::process::exit(3);
    }
    let rt = rhai_mp::Runtime::new();
    // (No rt.run_if_child() here: that is the mistake this program makes.)
    match rt.eval::<()>("let p = Process(|| print(\"child ran\")); p.start(); p.join();") {
        Ok(()) => println!("started"),
        Err(e) => println!("{}: {}", e.kind(), e.message()),
    }
    match rt.pool(2) {
        Ok(_) => println!("pool started"),
        Err(e) => println!("pool {}", e.kind()),
    }
}
