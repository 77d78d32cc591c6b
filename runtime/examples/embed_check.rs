//! The embedding API exercised exactly as a host uses it (the tests run this program under
//! each start method): values back from `eval`, the session, a closure over a session
//! variable, a pool driven from Rust, errors from workers with their types, and bad input.
//! Each check prints one line; the test compares them.
//!
//! ```sh
//! cargo run --release --example embed_check -- spawn
//! ```

use rhai_mp::{rhai, Error, Runtime};

fn main() -> Result<(), Error> {
    let rt = Runtime::new().register(|engine| {
        engine.register_fn("host_triple", |x: i64| x * 3);
    });
    rt.run_if_child();
    if let Some(m) = std::env::args().nth(1).and_then(|m| rhai_mp::StartMethod::parse(&m)) {
        rt.set_start_method(m);
    }
    let n: i64 = rt.eval("fn w(x) { host_triple(x) + 1 } let p = Pool(2); p.map(w, 0..5)[4]")?;
    println!("eval {n}");
    let a: rhai::Array = rt.eval("let k = 100; Pool(2).map(|x| w(x) + k, [1, 2])")?;
    println!("closure {a:?}");
    let pool = rt.pool(2)?;
    let items: Vec<rhai::Dynamic> = (0..4_i64).map(rhai::Dynamic::from).collect();
    let out: Vec<rhai::Dynamic> = pool.map("w", items.clone())?;
    println!("pool {:?}", out.iter().map(|v| v.as_int().unwrap()).collect::<Vec<_>>());
    let native = pool.map("host_triple", items)?;
    println!("native {:?}", native.iter().map(|v| v.as_int().unwrap()).collect::<Vec<_>>());
    rt.eval::<()>("fn picky(x) { if x > 1 { throw #{type: \"ValueError\", message: `too big: ${x}`} } x }")?;
    let e = pool.map("picky", vec![1_i64.into(), 5_i64.into()]).unwrap_err();
    println!(
        "worker error {} {} {}",
        e.kind(),
        e.message(),
        e.process().is_some_and(|(name, _)| name.contains("PoolWorker"))
    );
    let e = pool.map("missing", vec![1_i64.into()]).unwrap_err();
    println!("missing {}", e.kind());
    let e: Error = rt.eval::<i64>(r#"throw #{type: "ValueError", message: "nope"}"#).unwrap_err();
    println!("thrown {} {}", e.kind(), e.message());
    let e = rt.eval::<String>("k + 1").unwrap_err();
    println!("wrong type {} {}", e.kind(), e.message());
    let e = rt.eval::<i64>("no_such_variable").unwrap_err();
    println!("name {} {}", e.kind(), e.to_string().contains("<eval>") || e.to_string().contains("1:1"));
    pool.terminate();
    println!("session {}", rt.eval::<i64>("k")?);
    Ok(())
}
