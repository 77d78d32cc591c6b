//! Typecodes for `Value` and `Array`, as Python's `array` module on 64-bit Linux: how big
//! an item is, which Rhai values it accepts, and how it is read and written in shared
//! memory (always with atomic loads and stores of the item's own size, so a reader never
//! sees half a write — but `v.value += 1` is still a read then a write, and races without
//! the lock, as in Python).

use crate::opts;
use rhai::{Dynamic, FLOAT, INT};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::MpResult;
use rhai_mp_core::wire::{Portable, Reader, Writer};
use std::sync::atomic::Ordering::Relaxed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typecode {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    Char,
}

const CODES: &str = "b B h H i I l L q Q f d c";

impl Typecode {
    /// The typecode a script gives (`"i"`).
    pub fn parse(v: &Dynamic, func: &str) -> MpResult<Typecode> {
        let t = opts::type_name(v);
        let s = v
            .clone()
            .into_string()
            .map_err(|_| mp_err!(TypeError, "typecode of {func}() must be a string such as \"i\", not {t}"))?;
        Self::from_code(&s)
    }

    fn from_code(s: &str) -> MpResult<Typecode> {
        Ok(match s {
            "b" => Typecode::I8,
            "B" => Typecode::U8,
            "h" => Typecode::I16,
            "H" => Typecode::U16,
            "i" => Typecode::I32,
            "I" => Typecode::U32,
            "l" | "q" => Typecode::I64,
            "L" | "Q" => Typecode::U64,
            "f" => Typecode::F32,
            "d" => Typecode::F64,
            "c" => Typecode::Char,
            _ => return Err(mp_err!(TypeError, "unknown typecode {s:?} (use one of {CODES})")),
        })
    }

    /// Its letter.
    pub fn code(self) -> char {
        match self {
            Typecode::I8 => 'b',
            Typecode::U8 => 'B',
            Typecode::I16 => 'h',
            Typecode::U16 => 'H',
            Typecode::I32 => 'i',
            Typecode::U32 => 'I',
            Typecode::I64 => 'q',
            Typecode::U64 => 'Q',
            Typecode::F32 => 'f',
            Typecode::F64 => 'd',
            Typecode::Char => 'c',
        }
    }

    /// The size of an item in bytes.
    pub fn size(self) -> usize {
        match self {
            Typecode::I8 | Typecode::U8 | Typecode::Char => 1,
            Typecode::I16 | Typecode::U16 => 2,
            Typecode::I32 | Typecode::U32 | Typecode::F32 => 4,
            Typecode::I64 | Typecode::U64 | Typecode::F64 => 8,
        }
    }

    /// The allowed range of an integer typecode.
    fn range(self) -> (INT, INT) {
        match self {
            Typecode::I8 => (i8::MIN as INT, i8::MAX as INT),
            Typecode::U8 | Typecode::Char => (0, u8::MAX as INT),
            Typecode::I16 => (i16::MIN as INT, i16::MAX as INT),
            Typecode::U16 => (0, u16::MAX as INT),
            Typecode::I32 => (i32::MIN as INT, i32::MAX as INT),
            Typecode::U32 => (0, u32::MAX as INT),
            Typecode::I64 => (INT::MIN, INT::MAX),
            _ => (0, INT::MAX),
        }
    }

    /// Checks a value for this typecode; returns its bits as stored. `what` names it.
    pub fn bits(self, v: &Dynamic, what: &dyn Fn() -> String) -> MpResult<u64> {
        match self {
            Typecode::F32 | Typecode::F64 => {
                let f = if let Ok(f) = v.as_float() {
                    f
                } else if let Ok(i) = v.as_int() {
                    i as FLOAT
                } else {
                    return Err(mp_err!(
                        TypeError,
                        "{}: typecode '{}' holds numbers, not {}",
                        what(),
                        self.code(),
                        opts::type_name(v)
                    ));
                };
                Ok(if self == Typecode::F32 { (f as f32).to_bits() as u64 } else { f.to_bits() })
            }
            _ => {
                let Ok(i) = v.as_int() else {
                    return Err(mp_err!(
                        TypeError,
                        "{}: typecode '{}' holds integers, not {}",
                        what(),
                        self.code(),
                        opts::type_name(v)
                    ));
                };
                let (lo, hi) = self.range();
                if i < lo || i > hi {
                    return Err(mp_err!(
                        ValueError,
                        "{}: {i} is out of range for typecode '{}' ({lo}..={hi})",
                        what(),
                        self.code()
                    ));
                }
                Ok(i as u64)
            }
        }
    }

    /// Reads the item at byte `offset`.
    pub fn load(self, region: &Region, offset: usize) -> Dynamic {
        match self {
            Typecode::I8 => Dynamic::from(region.atomic8(offset).load(Relaxed) as i8 as INT),
            Typecode::U8 | Typecode::Char => Dynamic::from(region.atomic8(offset).load(Relaxed) as INT),
            Typecode::I16 => Dynamic::from(region.atomic16(offset).load(Relaxed) as i16 as INT),
            Typecode::U16 => Dynamic::from(region.atomic16(offset).load(Relaxed) as INT),
            Typecode::I32 => Dynamic::from(region.atomic32(offset).load(Relaxed) as i32 as INT),
            Typecode::U32 => Dynamic::from(region.atomic32(offset).load(Relaxed) as INT),
            Typecode::I64 | Typecode::U64 => Dynamic::from(region.atomic(offset).load(Relaxed) as INT),
            Typecode::F32 => Dynamic::from(f32::from_bits(region.atomic32(offset).load(Relaxed)) as FLOAT),
            Typecode::F64 => Dynamic::from(f64::from_bits(region.atomic(offset).load(Relaxed))),
        }
    }

    /// Writes checked bits (from [`Typecode::bits`]) at byte `offset`.
    pub fn store(self, region: &Region, offset: usize, bits: u64) {
        match self.size() {
            1 => region.atomic8(offset).store(bits as u8, Relaxed),
            2 => region.atomic16(offset).store(bits as u16, Relaxed),
            4 => region.atomic32(offset).store(bits as u32, Relaxed),
            _ => region.atomic(offset).store(bits, Relaxed),
        }
    }
}

/// A typecode crosses as its letter.
impl Portable for Typecode {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        w.u8(self.code() as u8);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let code = r.u8()?;
        Self::from_code(&(code as char).to_string())
            .map_err(|_| rhai_mp_core::wire::malformed(&format!("typecode {code}")))
    }
}
