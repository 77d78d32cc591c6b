//! The embedding API: [`Runtime`] makes the engines of a process — the main script's, the
//! REPL's and every child's — the same way, with the host's own registrations, and is a
//! session a host evaluates code in ([`Runtime::eval`]), as at the REPL.
//!
//! ```no_run
//! use rhai_mp::{rhai, Runtime};
//!
//! let rt = Runtime::new().register(|engine| {
//!     engine.register_fn("host_triple", |x: i64| x * 3);
//! });
//! rt.run_if_child(); // a spawn or forkserver child becomes the child here
//!
//! let n: i64 = rt.eval("fn w(x) { host_triple(x) + 1 } let p = Pool(2); p.map(w, 0..5)[4]")?;
//! let a: rhai::Array = rt.eval("let k = 100; Pool(2).map(|x| w(x) + k, [1, 2])")?;
//! # Ok::<(), rhai_mp::Error>(())
//! ```
//!
//! Caveats: create the `Runtime` before any other Rhai engine in the process (it installs
//! the fixed hashing seed closures need); call [`Runtime::run_if_child`] first thing in
//! `main`, because spawn children are this same program started again (a program that
//! forgets is told so: the first `start()` throws `ProcessError`); a spawn or forkserver
//! child gets this program's arguments and environment (so what a `register` closure reads
//! from `std::env::args()` or `std::env::var` is the same in the children); and do not call
//! [`Runtime::eval`] from inside a function the session's script calls.

use crate::{Error, Pool, PoolOptions};
use rhai::packages::Package;
use rhai::{Dynamic, Engine, Scope, AST};
use rhai_mp_core::base::vm::Interpreter;
use rhai_mp_core::tree::state::{Script, StartMethod};
use rhai_mp_core::wire::HandleCodec;
use std::cell::RefCell;
use std::rc::Rc;

type Setup = Rc<dyn Fn(&mut Engine)>;

/// The state a runtime's evaluations share: the engine, the top-level variables, and the
/// functions defined so far.
struct Session {
    engine: Engine,
    scope: Scope<'static>,
    program: AST,
}

impl Drop for Session {
    /// The end of the session is the end of its main script: children are joined (daemon
    /// ones and pool workers terminated).
    fn drop(&mut self) {
        rhai_mp_core::tree::process::at_exit();
    }
}

/// Builds rhai-mp engines — Rhai's standard library, the multiprocessing package, `os::`,
/// `time::`, rhai-fs, rhai-rand, output hooks and the host's registrations — and holds
/// the session [`Runtime::eval`] runs code in. Copies share the session.
///
/// ```
/// let rt = rhai_mp::Runtime::new().register(|e| { e.register_fn("twice", |x: i64| 2 * x); });
/// rt.run_if_child();
/// rt.eval::<()>("let base = 20;").unwrap();
/// assert_eq!(rt.eval::<i64>("twice(base) + 2").unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Runtime {
    setups: Vec<Setup>,
    session: Rc<RefCell<Option<Session>>>,
    /// Whether an evaluation runs now (what a [`StopHandle`] may stop).
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether the host asked for Ctrl-C, SIGTERM and SIGHUP handlers ([`Runtime::catch_signals`]).
    signals: bool,
}

/// A handle that stops, from any thread, the evaluation or pool call a [`Runtime`] runs
/// now ([`Runtime::stop_handle`]). The call returns an [`Error`] of kind
/// `"CancelledError"`; a pool call it stops is cancelled (its tasks stopped); the session
/// stays usable. With nothing running, `stop()` does nothing.
///
/// ```no_run
/// let rt = rhai_mp::Runtime::new();
/// rt.run_if_child();
/// let stop = rt.stop_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     stop.stop();
/// });
/// let e = rt.eval::<()>("loop {}").unwrap_err();
/// assert_eq!(e.kind(), "CancelledError");
/// ```
#[derive(Clone, Debug)]
pub struct StopHandle {
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopHandle {
    /// Stops the evaluation (or pool call) that runs now; returns whether one ran.
    pub fn stop(&self) -> bool {
        let running = self.busy.load(std::sync::atomic::Ordering::SeqCst);
        if running {
            rhai_mp_core::base::interrupt::abort_call(rhai_mp_core::base::interrupt::HOST_STOP);
        }
        running
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime with the standard rhai-mp packages.
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new();
    /// ```
    pub fn new() -> Runtime {
        rhai_mp_core::run::setup::init();
        #[cfg(feature = "mpi")]
        rhai_mp_core::tree::place::set_supported();
        // A forked child must not draw the same random numbers as its parent (and siblings).
        rhai_mp_core::run::child::at_fork_child(|| {
            let _ = rand::rng().reseed();
        });
        Runtime {
            setups: Vec::new(),
            session: Rc::new(RefCell::new(None)),
            busy: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            signals: false,
        }
    }

    /// Makes Ctrl-C (SIGINT) stop the running evaluation with `KeyboardInterrupt` (the
    /// session goes on), and SIGTERM / SIGHUP end it, as at the REPL. Without this call an
    /// embedding runtime installs no signal handler: the host's own (or the default
    /// actions) stay. The command line asks for it.
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new().catch_signals();
    /// ```
    pub fn catch_signals(mut self) -> Runtime {
        self.signals = true;
        self
    }

    /// A handle that stops the running evaluation or pool call from another thread (see
    /// [`StopHandle`]).
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new();
    /// let stop = rt.stop_handle();
    /// assert!(!stop.stop()); // nothing runs
    /// ```
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { busy: self.busy.clone() }
    }

    /// Sets the most bytes one value a script builds at once (`s.pad(n, "x")`, `blob(n)`)
    /// may take in this process; past it, and past what the machine or the process's own
    /// limit can give, such a built-in throws `MemoryError` before it allocates. `0` (the
    /// default) leaves only those. Holds for the whole process (and the workers it forks).
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new().max_value_bytes(1 << 30);
    /// rt.run_if_child();
    /// let e = rt.eval::<()>("blob(1 << 31);").unwrap_err();
    /// assert_eq!(e.kind(), "MemoryError");
    /// ```
    pub fn max_value_bytes(self, bytes: u64) -> Runtime {
        rhai_mp_core::base::limits::set_max_value_bytes(bytes);
        self
    }

    /// Adds a host registration, run on every engine this runtime makes (in every child
    /// too): the host's native functions work in children.
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new().register(|engine| {
    ///     engine.register_fn("host_double", |x: i64| x * 2);
    /// });
    /// ```
    pub fn register(mut self, setup: impl Fn(&mut Engine) + 'static) -> Runtime {
        self.setups.push(Rc::new(setup));
        self
    }

    /// Lets values of a host type cross process boundaries (see [`crate::DataCodec`]).
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Meters(i64);
    /// let rt = rhai_mp::Runtime::new().register_codec(rhai_mp::DataCodec::<Meters> {
    ///     kind: "host.Meters",
    ///     encode: |m| m.0.to_le_bytes().to_vec(),
    ///     decode: |b| Some(Meters(i64::from_le_bytes(b.try_into().ok()?))),
    /// });
    /// ```
    pub fn register_codec(self, codec: impl HandleCodec) -> Runtime {
        rhai_mp_core::wire::register_codec(codec);
        self
    }

    /// Sets the default start method (as `--start-method` does).
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new();
    /// rt.set_start_method(rhai_mp::StartMethod::Fork);
    /// ```
    pub fn set_start_method(&self, method: StartMethod) {
        rhai_mp_core::tree::state::with(|s| s.default_method = method);
    }

    /// Chooses the interpreter that runs script code, in this process and in the children
    /// it starts (as `--interpreter` does; the default is [`Interpreter::Ast`], or what
    /// the environment variable `RHAI_MP_INTERPRETER` names). Call it before any code runs.
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new();
    /// rt.set_interpreter(rhai_mp::Interpreter::Vm);
    /// ```
    pub fn set_interpreter(&self, choice: Interpreter) {
        rhai_mp_core::base::vm::set_interpreter(choice);
    }

    /// A new engine, set up like every other engine of this runtime.
    ///
    /// ```
    /// let engine = rhai_mp::Runtime::new().engine();
    /// assert_eq!(engine.eval::<i64>("cpu_count() - cpu_count()").unwrap(), 0);
    /// ```
    pub fn engine(&self) -> Engine {
        // A spawned copy of this program that did not become a child (its main never called
        // run_if_child) leaves at once, before it runs the program's main again: the
        // process that started it says why (see rhai_mp_core::tree::start::spawn).
        if std::env::var_os(rhai_mp_core::tree::start::spawn::CHILD_ENV).is_some() {
            std::process::exit(rhai_mp_core::tree::start::popen::EXIT_NOT_A_CHILD);
        }
        // Packages are registered eagerly: lazily registered functions made every lookup
        // that missed the call cache (all calls of a closure run from a native function,
        // such as hold() or a pool task) scan the packages' manifests, ~10x slower.
        let mut engine = Engine::new();
        rhai_mp_stdlib::MultiprocessingPackage::new().register_into_engine(&mut engine);
        rhai_fs::FilesystemPackage::new().register_into_engine(&mut engine);
        rhai_rand::RandomPackage::new().register_into_engine(&mut engine);
        engine.on_print(rhai_mp_core::base::output::stdout_line);
        engine.on_debug(|text, source, pos| {
            let at = match (source, pos.is_none()) {
                (Some(src), false) => format!("{src} @ {pos:?} | "),
                (None, false) => format!("{pos:?} | "),
                _ => String::new(),
            };
            rhai_mp_core::base::output::stderr_line(&format!("{at}{text}"))
        });
        for setup in &self.setups {
            setup(&mut engine);
        }
        engine
    }

    /// If this process was started as a spawn or forkserver child, runs the child and exits;
    /// otherwise returns at once. Call it first thing in `main`.
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// ```
    pub fn run_if_child(&self) {
        rhai_mp_core::run::child::run_if_child(&|| self.engine());
    }

    /// Runs code in this runtime's session as the `__main__` script and returns its value.
    /// Variables, functions and objects of one `eval` are visible to the next, and the
    /// code travels to the children it starts (functions and closures work in pool workers
    /// and processes, whatever the start method).
    ///
    /// ```
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// rt.eval::<()>("fn inc(x) { x + 1 } let start = 41;").unwrap();
    /// let n: i64 = rt.eval("inc(start)").unwrap();
    /// assert_eq!(n, 42);
    /// let e = rt.eval::<String>("1 + 1").unwrap_err();
    /// assert_eq!(e.kind(), "TypeError");
    /// ```
    ///
    /// Errors: whatever the code throws or raises (its [`Error::kind`] is the script-level
    /// type), also from a child; `TypeError` when the value is not a `T` (the message names
    /// both types).
    pub fn eval<T: rhai::Variant + Clone>(&self, code: &str) -> Result<T, Error> {
        let v = self.eval_with(code, Vec::new())?;
        let got = v.type_name().to_string();
        v.try_cast::<T>().ok_or_else(|| {
            let want = std::any::type_name::<T>();
            let engine_name = |t: &str| self.with_session(|s| s.engine.map_type_name(t).to_string());
            Error::new(
                "TypeError",
                format!("eval() gave a value of type {}, not the {} asked for", engine_name(&got), engine_name(want)),
            )
        })
    }

    /// Evaluates `code` in the session with extra variables (not kept afterwards).
    pub(crate) fn eval_with(&self, code: &str, vars: Vec<(&str, Dynamic)>) -> Result<Dynamic, Error> {
        use rhai_mp_core::base::interrupt;
        if self.signals && !interrupt::installed() {
            interrupt::install();
        }
        // This thread acts on stops (a stop handle's) while the evaluation runs; one that
        // came before it (or a Ctrl-C while nothing ran) is not for it.
        let was = interrupt::watch_thread(true);
        interrupt::clear_abort();
        if self.signals {
            let _ = interrupt::take();
        }
        let nested = self.busy.swap(true, std::sync::atomic::Ordering::SeqCst);
        let out = self.eval_session(code, vars);
        if !nested {
            self.busy.store(false, std::sync::atomic::Ordering::SeqCst);
            interrupt::clear_abort();
        }
        interrupt::watch_thread(was);
        out
    }

    fn eval_session(&self, code: &str, vars: Vec<(&str, Dynamic)>) -> Result<Dynamic, Error> {
        self.with_session(|s| {
            let ast = rhai_mp_core::wire::compile_unit(&s.engine, &s.scope, code).map_err(|e| Error::from_eval(&e))?;
            rhai_mp_core::wire::add_program(&ast);
            if ast.iter_functions().next().is_some() {
                rhai_mp_core::wire::add_unit(code, &ast);
            }
            s.program = s.program.merge(&ast);
            let extra = vars.len();
            for (name, value) in vars {
                s.scope.push(name, value);
            }
            let result = rhai_mp_core::base::vm::eval(&s.engine, &mut s.scope, &s.program);
            s.program.clear_statements();
            s.scope.rewind(s.scope.len().saturating_sub(extra));
            result.map_err(|e| Error::from_eval(&e))
        })
    }

    fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let mut slot = self.session.borrow_mut();
        let s = slot.get_or_insert_with(|| {
            let mut engine = self.engine();
            // A session re-runs nothing in its children (its code travels with each call),
            // unless the host ran a script file first.
            rhai_mp_core::tree::state::with(|s| {
                if matches!(&s.script, Script::Source { name, .. } if name == "<none>") {
                    s.script = Script::Session;
                }
            });
            rhai_mp_core::run::interp::set_names(&mut engine, "__main__");
            Session { engine, scope: Scope::new(), program: AST::empty() }
        });
        f(s)
    }

    /// A pool of `processes` workers driven from Rust (see [`Pool`]); the functions it maps
    /// are the session's or native ones.
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// let pool = rt.pool(2)?;
    /// let out = pool.map("abs", vec![(-1_i64).into(), 2_i64.into()])?;
    /// # Ok::<(), rhai_mp::Error>(())
    /// ```
    ///
    /// Errors: as the script's `Pool(processes)` (`ValueError` below 1, `ProcessError` when
    /// workers cannot start …).
    pub fn pool(&self, processes: usize) -> Result<Pool, Error> {
        self.pool_with(PoolOptions { processes, ..PoolOptions::default() })
    }

    /// A pool with bounds: each task's time limit and each worker's memory (see
    /// [`PoolOptions`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// let opts = rhai_mp::PoolOptions { processes: 2, task_timeout: Some(Duration::from_secs(5)), ..Default::default() };
    /// let pool = rt.pool_with(opts)?;
    /// # Ok::<(), rhai_mp::Error>(())
    /// ```
    ///
    /// Errors: as [`Runtime::pool`]; `ValueError` for a `max_memory` of 0.
    pub fn pool_with(&self, opts: PoolOptions) -> Result<Pool, Error> {
        let n = rhai::INT::try_from(opts.processes).unwrap_or(rhai::INT::MAX);
        let mut m = rhai::Map::new();
        m.insert("processes".into(), Dynamic::from(n));
        if let Some(t) = opts.task_timeout {
            m.insert("task_timeout".into(), Dynamic::from(t.as_secs_f64()));
        }
        if let Some(b) = opts.max_memory {
            m.insert("max_memory".into(), Dynamic::from(rhai::INT::try_from(b).unwrap_or(rhai::INT::MAX)));
        }
        let inner = self.eval_with("Pool(__rhai_mp_n)", vec![("__rhai_mp_n", Dynamic::from_map(m))])?;
        let inner = inner
            .try_cast::<rhai_mp_stdlib::Pool>()
            .ok_or_else(|| Error::new("TypeError", "Pool() gave no pool".into()))?;
        Ok(Pool { inner, rt: self.clone() })
    }

    /// Runs a script file as the main script (`ARGV` is `argv`; its spawn children re-run
    /// it): `Ok` when it ends normally, else its error. Prints no report; see
    /// [`Runtime::main_file`] for the command line's behaviour.
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// if let Err(e) = rt.run_file("job.rhai".as_ref(), vec![]) {
    ///     eprintln!("{e}");
    /// }
    /// ```
    ///
    /// Errors: the file cannot be read (`OSError`); the script's uncaught error; `exit(n)`
    /// with `n != 0` (`SystemExit`).
    pub fn run_file(&self, path: &std::path::Path, argv: Vec<String>) -> Result<(), Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new("OSError", format!("cannot read {}: {e}", path.display())))?;
        self.run_code(&path.display().to_string(), &text, argv)
    }

    /// Runs code as the main script; `name` is used in error reports. As
    /// [`Runtime::run_file`].
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// rt.run_code("job", "print(40 + 2)", vec![]).unwrap();
    /// ```
    ///
    /// Errors: as [`Runtime::run_file`].
    pub fn run_code(&self, name: &str, code: &str, argv: Vec<String>) -> Result<(), Error> {
        rhai_mp_core::tree::state::with(|s| s.argv = argv);
        let result = rhai_mp_core::run::interp::run_script(self.engine(), name, code.to_string());
        rhai_mp_core::tree::process::at_exit();
        match result {
            Ok(_) => Ok(()),
            Err(e) => match rhai_mp_core::base::error::ExitRequest::of(&e) {
                Some(rhai_mp_core::base::error::ExitRequest::Code(0)) => Ok(()),
                Some(rhai_mp_core::base::error::ExitRequest::Code(c)) => {
                    Err(Error::new("SystemExit", format!("exit({c})")))
                }
                _ => Err(Error::from_eval(&e)),
            },
        }
    }

    /// Runs a script file as the command line does: reports an uncaught error on stderr
    /// and returns the exit code (0, 1 after an error, `n` after `exit(n)`, 130 after
    /// Ctrl-C; after SIGTERM the process dies of it).
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// std::process::exit(rt.main_file("job.rhai".as_ref(), vec![]).unwrap_or(2));
    /// ```
    ///
    /// Errors: the file cannot be read.
    pub fn main_file(&self, path: &std::path::Path, argv: Vec<String>) -> std::io::Result<i32> {
        let text = std::fs::read_to_string(path)?;
        Ok(self.main_code(&path.display().to_string(), &text, argv))
    }

    /// Runs code as the command line's `-e` does; see [`Runtime::main_file`].
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// std::process::exit(rt.main_code("<-e>", "print(cpu_count())", vec![]));
    /// ```
    pub fn main_code(&self, name: &str, code: &str, argv: Vec<String>) -> i32 {
        rhai_mp_core::tree::state::with(|s| s.argv = argv);
        rhai_mp_core::run::interp::run_main(self.engine(), name, code.to_string())
    }

    /// Runs the interactive REPL until `:quit` or end of input. Returns the exit code.
    ///
    /// ```no_run
    /// let rt = rhai_mp::Runtime::new();
    /// rt.run_if_child();
    /// std::process::exit(rt.repl());
    /// ```
    #[cfg(feature = "cli")]
    pub fn repl(&self) -> i32 {
        crate::repl::run(self)
    }
}
