//! A host that maps its own data through a pool of worker processes and collects typed
//! results: the work function is script code evaluated in the runtime's session, calling a
//! native function the host registered (which works in every worker).
//!
//! ```sh
//! cargo run --release --example host_pool -- [spawn|fork|forkserver]
//! ```

use rhai_mp::rhai::{Dynamic, Map};
use rhai_mp::{Error, Runtime, StartMethod};

/// An order the host wants priced.
struct Order {
    sku: &'static str,
    quantity: i64,
}

/// The host's own pricing rule, registered as a native function.
fn unit_price(sku: &str) -> i64 {
    sku.bytes().map(|b| b as i64).sum::<i64>() % 97 + 3
}

fn main() -> Result<(), Error> {
    let rt = Runtime::new().register(|engine| {
        engine.register_fn("unit_price", |sku: &str| unit_price(sku));
    });
    rt.run_if_child();
    if let Some(m) = std::env::args().nth(1).and_then(|m| StartMethod::parse(&m)) {
        rt.set_start_method(m);
    }
    // The work function: script code, run in the workers.
    rt.eval::<()>(
        r#"
        fn price(order) {
            let total = order.quantity * unit_price(order.sku);
            #{ sku: order.sku, total: total, worker: os::getpid() }
        }
        "#,
    )?;
    let orders =
        [Order { sku: "apple", quantity: 3 }, Order { sku: "pear", quantity: 10 }, Order { sku: "fig", quantity: 7 }];
    let items: Vec<Dynamic> = orders
        .iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("sku".into(), o.sku.into());
            m.insert("quantity".into(), o.quantity.into());
            Dynamic::from_map(m)
        })
        .collect();
    let pool = rt.pool(2)?;
    let priced = pool.map("price", items)?;
    pool.close()?;
    // Typed results back in Rust.
    let mut grand_total = 0;
    for (order, r) in orders.iter().zip(priced) {
        let m = r.cast::<Map>();
        let total = m["total"].as_int().expect("an integer total");
        assert_eq!(total, order.quantity * unit_price(order.sku));
        grand_total += total;
        println!("{} x{}: {total}", order.sku, order.quantity);
    }
    println!("total {grand_total}");
    Ok(())
}
