//! Start methods and contexts: `set_start_method`, `get_start_method`,
//! `get_all_start_methods`, `get_context(m)`, and a context's methods (`ctx.Process(..)`)
//! that mirror the globals with the context's start method.

use crate::opts;
use crate::process::build;
use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::tree::state::{with as with_state, StartMethod};

/// A start-method context (Python's `SpawnContext`, `ForkContext`, `ForkServerContext`).
#[derive(Debug, Clone, Copy)]
pub struct Context(pub StartMethod);

pub(crate) fn parse_method(m: &str) -> MpResult<StartMethod> {
    let method = StartMethod::parse(m).ok_or_else(|| {
        let all: Vec<&str> = StartMethod::usable().iter().map(|m| m.name()).collect();
        mp_err!(ValueError, "cannot find context for '{m}' (start methods: {})", all.join(", "))
    })?;
    // `mpi` exists only on rank 0 of a job, in a build with MPI support: else say why.
    if method == StartMethod::Mpi && !rhai_mp_core::tree::place::mpi_available() {
        return Err(rhai_mp_core::tree::place::unavailable());
    }
    Ok(method)
}

/// The Rhai bindings: Start methods and contexts.
#[export_module]
pub mod context_functions {
    use super::*;

    /// A start-method context; its methods mirror the globals.
    pub type Context = super::Context;

    /// Sets the default start method: `"spawn"`, `"fork"` or `"forkserver"` (or `"mpi"`
    /// under an MPI launcher).
    ///
    /// ```rhai
    /// if __name__ == "__main__" {
    ///     set_start_method("fork");
    /// }
    /// ```
    ///
    /// Throws when: the method is unknown, or `"mpi"` without an MPI launcher (`ValueError`);
    /// the default was already used or set (`RuntimeError`; pass `force = true` to override).
    #[rhai_fn(return_raw)]
    pub fn set_start_method(method: Dynamic) -> Result<(), Box<EvalAltResult>> {
        set_start_method_force(method, Dynamic::FALSE)
    }

    /// Sets the default start method; with `force` (positional or in a map) it may change
    /// after first use.
    ///
    /// ```rhai
    /// set_start_method("forkserver", true);
    /// set_start_method("spawn", #{force: true});
    /// ```
    ///
    /// Throws when: the method is unknown (`ValueError`); the default was already fixed and
    /// `force` is false (`RuntimeError`); an unknown option (`ValueError`).
    #[rhai_fn(name = "set_start_method", return_raw)]
    pub fn set_start_method_force(method: Dynamic, force: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let m = parse_method(&opts::arg_str(&method, "set_start_method", "method")?)?;
        let force = match opts::keyword("set_start_method", "force", force)? {
            Some(f) => opts::arg_bool(&f, "set_start_method", "force")?,
            None => false,
        };
        with_state(|s| {
            if s.method_fixed && !force {
                return Err(mp_err!(
                    RuntimeError,
                    "context has already been set (the start method is '{}'; pass force = true to change it)",
                    s.default_method.name()
                )
                .into());
            }
            s.default_method = m;
            s.method_fixed = true;
            Ok(())
        })
    }

    /// The default start method (fixing it, as Python does).
    ///
    /// ```rhai
    /// print(get_start_method());   // spawn
    /// ```
    ///
    /// Throws when: never.
    pub fn get_start_method() -> String {
        rhai_mp_core::tree::state::default_method().name().to_string()
    }

    /// `["fork", "spawn", "forkserver"]`, and `"mpi"` on rank 0 under an MPI launcher.
    ///
    /// ```rhai
    /// for m in get_all_start_methods() { print(m); }
    /// ```
    ///
    /// Throws when: never.
    pub fn get_all_start_methods() -> Array {
        StartMethod::usable().iter().map(|m| Dynamic::from(m.name())).collect()
    }

    /// A context for a start method; `ctx.Process(..)` starts processes with it.
    /// `get_context(())` is the default's, as `get_context()`.
    ///
    /// ```rhai
    /// let ctx = get_context("fork");
    /// let p = ctx.Process(|| print("forked"));
    /// ```
    ///
    /// Throws when: the method is unknown, or `"mpi"` without MPI support or a launcher (the
    /// message says how to get them; `ValueError`); it is not a string or `()` (`TypeError`).
    #[rhai_fn(return_raw)]
    pub fn get_context(method: Dynamic) -> Result<Context, Box<EvalAltResult>> {
        if method.is_unit() {
            return Ok(get_default_context());
        }
        Ok(super::Context(parse_method(&opts::arg_str(&method, "get_context", "method")?)?))
    }

    /// The context itself, as Python's `ctx.get_context()`.
    ///
    /// ```rhai
    /// let ctx = get_context("fork");
    /// print(ctx.get_context());   // <Context fork>
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "get_context", pure)]
    pub fn ctx_get_context(ctx: &mut Context) -> Context {
        *ctx
    }

    /// The context for `method` (`()`: this context), as the global `get_context(method)`.
    ///
    /// ```rhai
    /// let spawn = get_context("fork").get_context("spawn");
    /// ```
    ///
    /// Throws when: as `get_context(method)`.
    #[rhai_fn(global, name = "get_context", return_raw)]
    pub fn ctx_get_context_method(ctx: &mut Context, method: Dynamic) -> Result<Context, Box<EvalAltResult>> {
        if method.is_unit() {
            return Ok(*ctx);
        }
        get_context(method)
    }

    /// A context's start method is fixed: Python's concrete contexts refuse this.
    ///
    /// ```rhai
    /// try { get_context("fork").set_start_method("spawn") } catch (e) { print(e.message) }
    /// ```
    ///
    /// Throws when: always (`ValueError`: cannot set start method of concrete context).
    #[rhai_fn(global, name = "set_start_method", return_raw)]
    pub fn ctx_set_start_method(ctx: &mut Context, method: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let _ = (ctx, method);
        Err(mp_err!(ValueError, "cannot set start method of concrete context").into())
    }

    /// As `ctx.set_start_method(method)`: `force` does not change that.
    ///
    /// ```rhai
    /// try { get_context("fork").set_start_method("spawn", true) } catch (e) { print(e.type) }
    /// ```
    ///
    /// Throws when: always (`ValueError`).
    #[rhai_fn(global, name = "set_start_method", return_raw)]
    pub fn ctx_set_start_method_force(
        ctx: &mut Context,
        method: Dynamic,
        force: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let _ = force;
        ctx_set_start_method(ctx, method)
    }

    /// The context of the default start method.
    ///
    /// ```rhai
    /// let ctx = get_context();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(name = "get_context")]
    pub fn get_default_context() -> Context {
        super::Context(rhai_mp_core::tree::state::default_method())
    }

    /// The context's start method.
    ///
    /// ```rhai
    /// print(get_context("fork").get_start_method());   // fork
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "get_start_method", pure)]
    pub fn ctx_get_start_method(ctx: &mut Context) -> String {
        ctx.0.name().to_string()
    }

    /// `<Context spawn>`.
    ///
    /// ```rhai
    /// print(get_context("spawn"));
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn ctx_describe(ctx: &mut Context) -> String {
        format!("<Context {}>", ctx.0.name())
    }

    /// `Process(target)` with this context's start method.
    ///
    /// ```rhai
    /// get_context("fork").Process(work).start();
    /// ```
    ///
    /// Throws when: as `Process(..)`.
    #[rhai_fn(global, name = "Process", return_raw)]
    pub fn ctx_process(
        ctx: &mut Context,
        target: Dynamic,
    ) -> Result<rhai_mp_core::tree::process::Process, Box<EvalAltResult>> {
        Ok(build(Some(ctx.0), Some(target), None, None)?)
    }

    /// `Process(target, args)` with this context's start method.
    ///
    /// ```rhai
    /// get_context("forkserver").Process(work, [1]).start();
    /// ```
    ///
    /// Throws when: as `Process(..)`.
    #[rhai_fn(global, name = "Process", return_raw)]
    pub fn ctx_process_args(
        ctx: &mut Context,
        target: Dynamic,
        args: Dynamic,
    ) -> Result<rhai_mp_core::tree::process::Process, Box<EvalAltResult>> {
        Ok(build(Some(ctx.0), Some(target), Some(args), None)?)
    }

    /// `Process(target, #{..})` with this context's start method.
    ///
    /// ```rhai
    /// get_context("fork").Process(work, #{daemon: true}).start();
    /// ```
    ///
    /// Throws when: as `Process(..)`.
    #[rhai_fn(global, name = "Process", return_raw)]
    pub fn ctx_process_opts(
        ctx: &mut Context,
        target: Dynamic,
        opts: Map,
    ) -> Result<rhai_mp_core::tree::process::Process, Box<EvalAltResult>> {
        Ok(build(Some(ctx.0), Some(target), None, Some(opts))?)
    }

    /// `Process(target, args, #{..})` with this context's start method.
    ///
    /// ```rhai
    /// get_context("fork").Process(work, [1], #{name: "w"}).start();
    /// ```
    ///
    /// Throws when: as `Process(..)`.
    #[rhai_fn(global, name = "Process", return_raw)]
    pub fn ctx_process_args_opts(
        ctx: &mut Context,
        target: Dynamic,
        args: Dynamic,
        opts: Dynamic,
    ) -> Result<rhai_mp_core::tree::process::Process, Box<EvalAltResult>> {
        let opts = crate::opts::arg_map(opts, "Process", "opts")?;
        Ok(build(Some(ctx.0), Some(target), Some(args), Some(opts))?)
    }

    /// `Process(#{target, args, name, daemon})` with this context's start method.
    ///
    /// ```rhai
    /// get_context("fork").Process(#{target: work}).start();
    /// ```
    ///
    /// Throws when: as `Process(..)`.
    #[rhai_fn(global, name = "Process", return_raw)]
    pub fn ctx_process_map(
        ctx: &mut Context,
        opts: Map,
    ) -> Result<rhai_mp_core::tree::process::Process, Box<EvalAltResult>> {
        Ok(build(Some(ctx.0), None, None, Some(opts))?)
    }
}

/// Registers the context methods that mirror the globals (each primitive's `mirrors` in
/// the registry): `ctx.Queue()`, `ctx.Lock()`, `ctx.Value("i", 0)` … each call the global
/// function of the same name with the arguments after the context (these objects do not
/// depend on the start method). `ctx.Process(..)` is defined above, since a context's
/// processes use its start method.
pub(crate) fn register_mirrors(engine: &mut rhai::Engine) {
    for m in crate::registry::PRIMITIVES.iter().flat_map(|p| p.mirrors) {
        let name = m.name;
        for &n in m.arities {
            let mut types = vec![std::any::TypeId::of::<Context>()];
            types.extend(std::iter::repeat_n(std::any::TypeId::of::<Dynamic>(), n));
            engine.register_raw_fn(name, types, move |ctx, args| {
                let mut rest: Vec<Dynamic> = args[1..].iter_mut().map(|a| std::mem::take(*a)).collect();
                let mut refs: Vec<&mut Dynamic> = rest.iter_mut().collect();
                ctx.call_fn_raw(name, false, false, &mut refs)
            });
        }
    }
}

/// context's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::section;
    crate::registry::Primitive {
        name: "context",
        group: "Start methods and contexts",
        sections: &[
            section(
                "Start methods",
                &[],
                &["set_start_method", "get_start_method", "get_all_start_methods", "get_context"],
                &[],
            ),
            section("Context", &[("Context", "ctx")], &[], &["get_context("]),
        ],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers context's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "context", context_functions);
}
