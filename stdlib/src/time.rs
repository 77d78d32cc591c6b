//! The `time::` static module: `time::sleep(secs)`, `time::time()`,
//! `time::perf_counter()`.

use rhai::plugin::*;
use rhai::FLOAT;

/// The Rhai bindings: The `time::` module.
#[export_module]
pub mod time_functions {
    use rhai_mp_core::mp_err;

    /// Sleeps for `secs` seconds (an int or a float).
    ///
    /// ```rhai
    /// time::sleep(0.5);
    /// ```
    ///
    /// Throws when: `secs` is negative (`ValueError`) or not a number (`TypeError`).
    #[rhai_fn(return_raw)]
    pub fn sleep(secs: Dynamic) -> Result<(), Box<EvalAltResult>> {
        if secs.is_unit() {
            return Err(mp_err!(TypeError, "time::sleep() takes a number of seconds, not ()").into());
        }
        let deadline = crate::opts::deadline(&secs, "time::sleep")?;
        while !deadline.passed() {
            rhai_mp_core::base::interrupt::check()?;
            rhai_mp_core::base::interrupt::sleep(deadline.slice(rhai_mp_core::base::interrupt::SLICE));
        }
        Ok(())
    }

    /// Seconds since the Unix epoch, as a float.
    ///
    /// ```rhai
    /// let started = time::time();
    /// ```
    ///
    /// Throws when: never.
    pub fn time() -> FLOAT {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    /// A monotonic clock in seconds, for measuring intervals (comparable across processes).
    ///
    /// ```rhai
    /// let t0 = time::perf_counter();
    /// work();
    /// print(`took ${time::perf_counter() - t0} s`);
    /// ```
    ///
    /// Throws when: never.
    pub fn perf_counter() -> FLOAT {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(0.0, |t| t.tv_sec() as FLOAT + t.tv_nsec() as FLOAT * 1e-9)
    }
}

/// time's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::module_section;
    crate::registry::Primitive {
        name: "time",
        group: "time::",
        sections: &[module_section("time")],
        functions: |_| {},
        module: Some(|| rhai::exported_module!(time_functions)),
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};
