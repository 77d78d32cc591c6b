//! Values a script builds at once (see the reference, "Memory"): the built-ins that take a
//! size — `pad` on strings, arrays and blobs, `blob(n)` — check it against what this
//! process may have (`rhai_mp_core::base::limits`) before they allocate, so that
//! `s.pad(1 << 40, "x")` or `blob(1 << 45)` throws `MemoryError` at once (catchable, in
//! every process, hosts included) instead of growing until the machine swaps or the
//! process is killed. They replace Rhai's own versions, which check only Rhai's data-size
//! limits: rhai-mp leaves those unset, since with any of them set Rhai walks a whole array
//! after every call that may change it (a loop that pushes 100,000 items ran 85x slower).
//! A host changes the budget with `rhai_mp::set_max_value_bytes` (or sets Rhai's limits
//! itself, at that cost).

use rhai::plugin::*;

/// The Rhai bindings: the size-taking built-ins, checked.
#[export_module]
pub mod memory_functions {
    use rhai::{Array, Blob, ImmutableString, INT};
    use rhai_mp_core::base::limits::allocation;

    fn check(bytes: u128, what: &str) -> Result<(), Box<EvalAltResult>> {
        allocation(bytes, what).map(|_| ()).map_err(Into::into)
    }

    /// Pads the string with `character` to `len` characters (nothing if it is that long).
    ///
    /// ```rhai
    /// let s = "ab";
    /// s.pad(4, '.');
    /// print(s);   // ab..
    /// ```
    ///
    /// Throws when: the string would take more memory than this process may have
    /// (`MemoryError`, before anything is allocated: `s.pad(1 << 40, 'x')`).
    #[rhai_fn(global, name = "pad", return_raw)]
    pub fn pad_string(string: &mut ImmutableString, len: INT, character: char) -> Result<(), Box<EvalAltResult>> {
        if len <= 0 {
            return Ok(());
        }
        check(len as u128 * character.len_utf8() as u128, "pad()")?;
        let have = string.chars().count();
        let len = len as usize;
        if len > have {
            string.make_mut().extend(std::iter::repeat_n(character, len - have));
        }
        Ok(())
    }

    /// Pads the string with copies of `padding` to `len` characters (the last copy cut).
    ///
    /// ```rhai
    /// let s = "ab";
    /// s.pad(7, "xy");
    /// print(s);   // abxyxyx
    /// ```
    ///
    /// Throws when: the string would take more memory than this process may have
    /// (`MemoryError`, before anything is allocated: `s.pad(1 << 40, "x")`).
    #[rhai_fn(global, name = "pad", return_raw)]
    pub fn pad_string_with(string: &mut ImmutableString, len: INT, padding: &str) -> Result<(), Box<EvalAltResult>> {
        if len <= 0 || padding.is_empty() {
            return Ok(());
        }
        let widest = padding.chars().map(char::len_utf8).max().unwrap_or(1);
        check(len as u128 * widest as u128, "pad()")?;
        let len = len as usize;
        let mut have = string.chars().count();
        if len <= have {
            return Ok(());
        }
        let per = padding.chars().count();
        let p = string.make_mut();
        while have < len {
            if have + per <= len {
                p.push_str(padding);
                have += per;
            } else {
                p.extend(padding.chars().take(len - have));
                have = len;
            }
        }
        Ok(())
    }

    /// Pads the array with copies of `item` to `len` items (nothing if it is that long).
    ///
    /// ```rhai
    /// let a = [1];
    /// a.pad(3, 0);
    /// print(a);   // [1, 0, 0]
    /// ```
    ///
    /// Throws when: the array would take more memory than this process may have
    /// (`MemoryError`, before anything is allocated: `[].pad(1 << 40, 0)`).
    #[rhai_fn(global, name = "pad", return_raw)]
    pub fn pad_array(array: &mut Array, len: INT, item: Dynamic) -> Result<(), Box<EvalAltResult>> {
        if len <= 0 || len as u128 <= array.len() as u128 {
            return Ok(());
        }
        check(len as u128 * std::mem::size_of::<Dynamic>() as u128, "pad()")?;
        array.resize(len as usize, item);
        Ok(())
    }

    /// Pads the blob with the byte `value` to `len` bytes (nothing if it is that long).
    ///
    /// ```rhai
    /// let b = blob(1);
    /// b.pad(3, 0xff);
    /// print(b.len());   // 3
    /// ```
    ///
    /// Throws when: the blob would take more memory than this process may have
    /// (`MemoryError`, before anything is allocated).
    #[rhai_fn(global, name = "pad", return_raw)]
    pub fn pad_blob(blob: &mut Blob, len: INT, value: INT) -> Result<(), Box<EvalAltResult>> {
        if len <= 0 || len as u128 <= blob.len() as u128 {
            return Ok(());
        }
        check(len as u128, "pad()")?;
        blob.resize(len as usize, (value & 0xff) as u8);
        Ok(())
    }

    /// A blob of `len` zero bytes.
    ///
    /// ```rhai
    /// let b = blob(4);
    /// print(b.len());   // 4
    /// ```
    ///
    /// Throws when: it would take more memory than this process may have (`MemoryError`,
    /// at once: `blob(1 << 45)`).
    #[rhai_fn(global, name = "blob", return_raw)]
    pub fn blob_zeroed(len: INT) -> Result<Blob, Box<EvalAltResult>> {
        blob_filled(len, 0)
    }

    /// A blob of `len` bytes, each `value` (its low 8 bits).
    ///
    /// ```rhai
    /// let b = blob(2, 0x41);
    /// print(b.as_string());   // AA
    /// ```
    ///
    /// Throws when: it would take more memory than this process may have (`MemoryError`,
    /// at once).
    #[rhai_fn(global, name = "blob", return_raw)]
    pub fn blob_filled(len: INT, value: INT) -> Result<Blob, Box<EvalAltResult>> {
        if len <= 0 {
            return Ok(Blob::new());
        }
        check(len as u128, "blob()")?;
        Ok(vec![(value & 0xff) as u8; len as usize])
    }
}

/// The memory rule's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::section;
    crate::registry::Primitive {
        name: "memory",
        group: "Memory",
        sections: &[section("", &[], &["pad", "blob"], &[])],
        functions,
        module: None,
        handles: &[],
        machinery: None,
        mirrors: &[],
        managed: &[],
    }
};

/// Registers the size-checked built-ins into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "memory", memory_functions);
}
