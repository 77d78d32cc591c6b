//! `hold(lock, || ..)`: Python's `with lock:` for Rhai, which has no `with` statement. It
//! takes a Lock, RLock, Semaphore or Condition (or a TCP manager's proxy of one), runs the
//! closure, and releases it even when the closure throws.

use crate::condition::Condition;
use crate::lock::Lock;
use crate::manager::{Proxy, Timeout};
use crate::opts;
use crate::semaphore::Semaphore;
use rhai::plugin::*;
use rhai::Dynamic;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::Deadline;

/// The Rhai bindings: `hold(lock, f)`.
#[export_module]
pub mod hold_functions {
    use super::*;

    /// Runs `f` holding `lock` (a Lock, RLock, Semaphore or Condition, or a TCP manager's
    /// proxy of one) and returns its
    /// result; the lock is released even when `f` throws. Use this function form when the
    /// closure itself uses the lock (`hold(c, || c.notify())`).
    ///
    /// ```rhai
    /// hold(v.get_lock(), || v.value += 1);
    /// let n = hold(lock, || { work(); 42 });
    /// ```
    ///
    /// Throws when: `lock` is of another type (`TypeError`); `f` throws (the same error,
    /// after the release).
    #[rhai_fn(name = "hold", return_raw)]
    pub fn hold(ctx: NativeCallContext, lock: Dynamic, f: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        let f = opts::arg_fn(f, "hold", "f")?;
        enum Held {
            Lock(Lock),
            Sem(Semaphore),
            Proxy(Proxy),
        }
        let held = if let Some(l) = lock.read_lock::<Lock>() {
            Held::Lock(l.clone())
        } else if let Some(s) = lock.read_lock::<Semaphore>() {
            Held::Sem(s.clone())
        } else if let Some(c) = lock.read_lock::<Condition>() {
            Held::Lock(c.0.lock.clone())
        } else if let Some(p) = lock.read_lock::<Proxy>().filter(|p| p.is_lock()) {
            Held::Proxy(p.clone())
        } else {
            return Err(mp_err!(
                TypeError,
                "hold() takes a Lock, RLock, Semaphore or Condition, not {}",
                opts::type_name(&lock)
            )
            .into());
        };
        match &held {
            Held::Lock(l) => {
                l.0.acquire(true, Deadline::NEVER)?;
            }
            Held::Sem(s) => {
                s.0.acquire(true, Deadline::NEVER)?;
            }
            Held::Proxy(p) => {
                p.acquire(true, Timeout::Never)?;
            }
        }
        let result = f.call_raw(&ctx, None, []);
        let released = match &held {
            Held::Lock(l) => l.0.release().map_err(Into::into),
            Held::Sem(s) => s.0.release().map_err(Into::into),
            Held::Proxy(p) => p.release(),
        };
        let value = result?;
        released?;
        Ok(value)
    }
}

/// hold's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::section;
    crate::registry::Primitive {
        name: "hold",
        group: "Synchronization",
        sections: &[section("hold()", &[], &["hold"], &[])],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers hold's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "hold", hold_functions);
}
