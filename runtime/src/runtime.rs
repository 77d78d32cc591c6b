//! The embedding API: [`Runtime`] makes the engines of a process — the main script's, the
//! REPL's and every child's — the same way, with the host's own registrations.
//!
//! A host application:
//!
//! ```no_run
//! let rt = rhai_mp::Runtime::new()
//!     .register(|engine| { engine.register_fn("host_double", |x: i64| x * 2); });
//! rt.run_if_child(); // becomes a spawn/forkserver child here when started as one
//! std::process::exit(rt.run_code("main", r#"
//!     fn work(x) { print(host_double(x)) }
//!     if __name__ == "__main__" { let p = Process(work, [21]); p.start(); p.join(); }
//! "#, vec![]));
//! ```
//!
//! Caveats: create the `Runtime` before any other Rhai engine in the process (it installs
//! the fixed hashing seed closures need, see `rhai_mp_core::init`); and call
//! [`Runtime::run_if_child`] first thing in `main`, because spawn children are this same
//! binary started again.

use rhai::packages::Package;
use rhai::Engine;
use rhai_mp_core::{HandleCodec, StartMethod};
use std::rc::Rc;

type Setup = Rc<dyn Fn(&mut Engine)>;

/// Builds rhai-mp engines: Rhai's standard library, the multiprocessing package, `os::`,
/// `time::`, rhai-fs, rhai-rand, the output hooks, and the host's registrations.
#[derive(Clone)]
pub struct Runtime {
    setups: Vec<Setup>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime with the standard rhai-mp packages.
    pub fn new() -> Runtime {
        rhai_mp_core::init();
        // A forked child must not draw the same random numbers as its parent (and siblings).
        rhai_mp_core::at_fork_child(|| {
            let _ = rand::rng().reseed();
        });
        Runtime { setups: Vec::new() }
    }

    /// Adds a host registration, run on every engine this runtime makes (in every child too).
    pub fn register(mut self, setup: impl Fn(&mut Engine) + 'static) -> Runtime {
        self.setups.push(Rc::new(setup));
        self
    }

    /// Lets values of a host type cross process boundaries (see `rhai_mp_core::HandleCodec`).
    pub fn register_codec(self, codec: impl HandleCodec) -> Runtime {
        rhai_mp_core::register_codec(codec);
        self
    }

    /// Sets the default start method (as `--start-method` does).
    pub fn set_start_method(&self, method: StartMethod) {
        rhai_mp_core::with_state(|s| s.default_method = method);
    }

    /// A new engine, set up like every other engine of this runtime.
    pub fn engine(&self) -> Engine {
        // Packages are registered eagerly: lazily registered functions made every lookup
        // that missed the call cache (all calls of a closure run from a native function,
        // such as hold() or a pool task) scan the packages' manifests, ~10x slower.
        let mut engine = Engine::new();
        rhai_mp_stdlib::MultiprocessingPackage::new().register_into_engine(&mut engine);
        rhai_fs::FilesystemPackage::new().register_into_engine(&mut engine);
        rhai_rand::RandomPackage::new().register_into_engine(&mut engine);
        engine.on_print(rhai_mp_core::stdout_line);
        engine.on_debug(|text, source, pos| {
            let at = match (source, pos.is_none()) {
                (Some(src), false) => format!("{src} @ {pos:?} | "),
                (None, false) => format!("{pos:?} | "),
                _ => String::new(),
            };
            rhai_mp_core::stderr_line(&format!("{at}{text}"))
        });
        for setup in &self.setups {
            setup(&mut engine);
        }
        engine
    }

    /// If this process was started as a spawn or forkserver child, runs the child and exits;
    /// otherwise returns at once. Call it first thing in `main`.
    pub fn run_if_child(&self) {
        rhai_mp_core::run_if_child(&|| self.engine());
    }

    /// Runs a script file as the main script; `argv` becomes `ARGV`. Returns the exit code.
    pub fn run_file(&self, path: &std::path::Path, argv: Vec<String>) -> std::io::Result<i32> {
        let text = std::fs::read_to_string(path)?;
        Ok(self.run_code(&path.display().to_string(), &text, argv))
    }

    /// Runs code as the main script; `name` is used in error reports. Returns the exit code.
    pub fn run_code(&self, name: &str, code: &str, argv: Vec<String>) -> i32 {
        rhai_mp_core::with_state(|s| s.argv = argv);
        rhai_mp_core::run_main(self.engine(), name, code.to_string())
    }

    /// Runs the interactive REPL until `:quit` or end of input. Returns the exit code.
    pub fn repl(&self) -> i32 {
        crate::repl::run(self)
    }
}
