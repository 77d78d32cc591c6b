//! A host application that embeds rhai-mp: it registers its own native function
//! (`host_double`) and its own type (`Point`, with a codec so it can cross processes), then
//! runs the script named on its command line. Processes the script starts — spawn, fork or
//! forkserver — see the same functions, because spawn children are this binary again and
//! `run_if_child` builds their engine with the same registrations.
//!
//! ```sh
//! cargo run --release --example host -- [--start-method METHOD] script.rhai
//! ```

#[derive(Debug, Clone, Copy)]
struct Point {
    x: i64,
    y: i64,
}

fn encode_point(p: &Point) -> Vec<u8> {
    [p.x.to_le_bytes(), p.y.to_le_bytes()].concat()
}

fn decode_point(b: &[u8]) -> Option<Point> {
    Some(Point {
        x: i64::from_le_bytes(b.get(0..8)?.try_into().ok()?),
        y: i64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
    })
}

/// A host type with no codec: it cannot cross a process boundary.
#[derive(Debug, Clone)]
struct Secret;

fn main() {
    let runtime = rhai_mp::Runtime::new()
        .register(|engine| {
            engine.register_fn("host_double", |x: i64| x * 2);
            engine
                .register_type_with_name::<Point>("Point")
                .register_fn("point", |x: i64, y: i64| Point { x, y })
                .register_get("x", |p: &mut Point| p.x)
                .register_get("y", |p: &mut Point| p.y);
            engine.register_type_with_name::<Secret>("Secret").register_fn("secret", || Secret);
            // The host's own settings, read where the engine is made: a spawn or
            // forkserver child is this program with the same arguments.
            let args = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
            engine.register_fn("host_args", move || args.clone());
        })
        .register_codec(rhai_mp::DataCodec::<Point> { kind: "host.Point", encode: encode_point, decode: decode_point });
    // First thing: a spawn or forkserver child becomes its child here and never returns.
    runtime.run_if_child();

    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--start-method") && args.len() >= 2 {
        let method = args.remove(1);
        args.remove(0);
        match rhai_mp::StartMethod::parse(&method) {
            Some(m) => runtime.set_start_method(m),
            None => {
                eprintln!("host: unknown start method {method}");
                std::process::exit(2);
            }
        }
    }
    let Some(script) = args.first() else {
        eprintln!("usage: host [--start-method METHOD] script.rhai [args..]");
        std::process::exit(2);
    };
    // As the command line does: the report of an uncaught error on stderr, the exit code.
    let code = runtime.main_file(std::path::Path::new(script), args[1..].to_vec()).unwrap_or_else(|e| {
        eprintln!("host: can't open {script}: {e}");
        2
    });
    std::process::exit(code);
}
