//! A host that runs a user's script with bounds: every task the script's pool runs may take
//! at most 0.5 s (a task past it fails with `TimeoutError`, the others still run), and a
//! watchdog thread stops the whole evaluation if it takes longer than 5 s (the host gets an
//! `Error` of kind `CancelledError`, and its session goes on). A host-native function that
//! never returns is stopped too: its worker is killed and replaced.
//!
//! ```sh
//! cargo run --release --example time_limits -- [spawn|fork|forkserver]
//! ```

use rhai_mp::{Error, PoolOptions, Runtime, StartMethod};
use std::time::Duration;

/// The user's script: one task loops forever, one waits forever in a native call.
const USER_SCRIPT: &str = r#"
    fn work(x) {
        if x == 3 { loop {} }               // a runaway Rhai loop: stopped at its deadline
        if x == 5 { host_block() }          // a native call that never returns: killed
        x * 10
    }
    // Each task may run 0.5 s once a worker starts it.
    let it = Pool(#{processes: 2, task_timeout: 0.5}).imap(work, 0..8);
    let out = [];
    loop {
        try { out.push(it.next()) } catch (e) { if e.type == "StopIteration" { break } out.push(e.type) }
    }
    out
"#;

fn main() -> Result<(), Error> {
    let rt = Runtime::new().register(|engine| {
        // A host function that never returns (stands for a stuck library call).
        engine.register_fn("host_block", || -> i64 {
            loop {
                std::thread::park();
            }
        });
    });
    rt.run_if_child();
    if let Some(m) = std::env::args().nth(1).and_then(|m| StartMethod::parse(&m)) {
        rt.set_start_method(m);
    }
    // The watchdog: stops the evaluation if it runs longer than 5 s.
    let stop = rt.stop_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            stop.stop();
        }
    });
    let got = rt.eval::<rhai_mp::rhai::Dynamic>(USER_SCRIPT);
    let _ = done_tx.send(());
    let _ = watchdog.join();
    match got {
        Ok(v) => println!("results: {v}"),
        Err(e) => println!("stopped: {} ({})", e.kind(), e.message()),
    }
    // Per item, with the errors in place.
    let items: Vec<_> = (0..8).map(|i: i64| i.into()).collect();
    let bounded = rt.pool_with(PoolOptions { processes: 2, ..PoolOptions::default() })?;
    for (i, item) in items.into_iter().enumerate() {
        match bounded.apply_timeout("work", vec![item], Duration::from_millis(300)) {
            Ok(v) => println!("task {i}: {v}"),
            Err(e) => println!("task {i}: {}", e.kind()),
        }
    }
    // The watchdog's stop, on an evaluation that would never end; the session goes on.
    let stop = rt.stop_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.stop();
    });
    let e = rt.eval::<()>("loop {}").unwrap_err();
    let _ = t.join();
    println!("loop {{}}: {}", e.kind());
    println!("after the stop: {}", rt.eval::<i64>("40 + 2")?);
    Ok(())
}
