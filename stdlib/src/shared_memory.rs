//! `SharedMemory(size)`, `SharedMemory(#{name, create, size})` (see the reference, "Shared memory"):
//! a block of bytes shared between processes.
//!
//! Anonymous (the default) blocks are memfds: they vanish with the last process using them,
//! crashed or not, so they never leak. Named blocks live in `/dev/shm` until `unlink()`, as
//! in Python (and can be opened by name from any process).

use crate::opts::{self, Opts};
use rhai::plugin::*;
use rhai::{Blob, Dynamic, Map, INT};
use rhai_mp_core::base::shm::Region;
use rhai_mp_core::mp_err;
use rhai_mp_core::prelude::{MpError, MpResult};
use rhai_mp_core::wire::{Handle, Portable, Reader, Writer};
use std::cell::RefCell;
use std::rc::Rc;

/// The state of a SharedMemory handle in this process.
#[derive(Debug)]
pub struct ShmCore {
    region: RefCell<Option<Region>>,
    /// Its name: a `/dev/shm` name, or for an anonymous block one that lets other
    /// processes attach while it lives (see [`anonymous_name`]).
    pub name: String,
    /// Whether it is anonymous (a memfd: nothing to unlink).
    pub anonymous: bool,
    /// Its size in bytes.
    pub size: usize,
}

impl ShmCore {
    fn with<R>(&self, f: impl FnOnce(&Region) -> MpResult<R>) -> MpResult<R> {
        match &*self.region.borrow() {
            Some(r) => f(r),
            None => Err(mp_err!(ValueError, "the SharedMemory is closed in this process")),
        }
    }

    fn range(&self, offset: INT, len: INT) -> MpResult<(usize, usize)> {
        if offset < 0 || len < 0 || offset as u128 + len as u128 > self.size as u128 {
            return Err(mp_err!(
                IndexError,
                "range {offset}..{} is outside the {} bytes of the SharedMemory",
                offset.saturating_add(len),
                self.size
            ));
        }
        Ok((offset as usize, len as usize))
    }

    fn index(&self, i: INT) -> MpResult<usize> {
        let n = self.size as INT;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(mp_err!(IndexError, "index {i} is out of range for a SharedMemory of {n} bytes"));
        }
        Ok(j as usize)
    }
}

/// A SharedMemory handle; copies share it (and `close()` closes it for all of them).
#[derive(Debug, Clone)]
pub struct SharedMemory(pub Rc<ShmCore>);

fn posix_name(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// The name of an anonymous block: `rhai-mp-<pid>-<fd>-<tag>`, the memfd of process `pid`,
/// whose memfd name holds `tag` (so a reused descriptor number is not mistaken for it).
fn anonymous_name(region: &Region, tag: &str) -> String {
    use std::os::fd::AsRawFd;
    format!("rhai-mp-{}-{}-{tag}", std::process::id(), region.fd().as_raw_fd())
}

fn memfd_name(tag: &str) -> String {
    format!("rhai-mp-shm-{tag}")
}

/// Whether the descriptor at `path` (`/proc/<pid>/fd/<n>`) is the memfd named `memfd`.
fn is_memfd(path: &std::path::Path, memfd: &str) -> bool {
    std::fs::read_link(path).is_ok_and(|t| {
        let t = t.to_string_lossy();
        t.strip_prefix("/memfd:")
            .and_then(|t| t.strip_prefix(memfd))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

/// A descriptor of process `pid` that is the memfd named `memfd`.
fn held_by(pid: &str, memfd: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten().map(|e| e.path()).find(|p| is_memfd(p, memfd))
}

/// A descriptor of some process that still holds the memfd named `memfd`: its creator's
/// (`pid`, `fd`) first, then this process's, then any other's (the creator may have ended
/// after handing the block to another process, which still uses it).
fn holder(pid: u32, fd: i32, memfd: &str) -> Option<std::path::PathBuf> {
    let first = std::path::PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
    if is_memfd(&first, memfd) {
        return Some(first);
    }
    let me = std::process::id().to_string();
    held_by(&me, memfd).or_else(|| {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let n = e.file_name().into_string().ok()?;
            (n != me && n.bytes().all(|b| b.is_ascii_digit())).then(|| held_by(&n, memfd)).flatten()
        })
    })
}

/// Attaches to the anonymous block `name` names, if it is one such name.
fn attach_anonymous(name: &str) -> Option<MpResult<SharedMemory>> {
    let mut parts = name.strip_prefix("rhai-mp-")?.splitn(3, '-');
    let (pid, fd, tag) = (parts.next()?.parse::<u32>().ok()?, parts.next()?.parse::<i32>().ok()?, parts.next()?);
    let missing = || mp_err!(FileNotFoundError, "no shared memory block named {name:?} (no process uses it any more)");
    let attach = || -> MpResult<SharedMemory> {
        let path = holder(pid, fd, &memfd_name(tag)).ok_or_else(missing)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(|_| missing())?;
        let size = file.metadata()?.len() as usize;
        let region = Region::open(file.into(), size)?;
        Ok(SharedMemory(Rc::new(ShmCore {
            region: RefCell::new(Some(region)),
            name: name.to_string(),
            anonymous: true,
            size,
        })))
    };
    Some(attach())
}

fn open_named(name: &str, create: bool, size: Option<INT>) -> MpResult<SharedMemory> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    if name.contains('\0') {
        // Python 3.12's check (gh-115886): the OS would see a shorter name.
        return Err(mp_err!(ValueError, "embedded null character in the SharedMemory name {name:?}"));
    }
    if !create {
        if let Some(attached) = attach_anonymous(name) {
            return attached;
        }
    }
    let path = posix_name(name);
    let flags = if create { OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR } else { OFlag::O_RDWR };
    let fd = nix::sys::mman::shm_open(path.as_str(), flags, Mode::from_bits_truncate(0o600)).map_err(|e| match e {
        nix::Error::ENOENT => mp_err!(FileNotFoundError, "no shared memory block named {name:?}"),
        nix::Error::EEXIST => mp_err!(FileExistsError, "a shared memory block named {name:?} already exists"),
        e => MpError::from(e),
    })?;
    let size = if create {
        let made = size
            .ok_or_else(|| mp_err!(ValueError, "creating a SharedMemory needs a size"))
            .and_then(|size| rhai_mp_core::base::limits::allocation(size as u128, &format!("SharedMemory({size})")))
            .and_then(|size| {
                // Reserve the pages now: /dev/shm is a size-limited tmpfs, and touching a page
                // it cannot give later would kill the process (SIGBUS).
                nix::fcntl::posix_fallocate(&fd, 0, size as i64).map_err(|e| match e {
                    nix::Error::ENOSPC | nix::Error::ENOMEM => {
                        mp_err!(MemoryError, "/dev/shm has no room for {size} bytes")
                    }
                    e => MpError::from(e),
                })?;
                Ok(size)
            });
        match made {
            Ok(size) => size,
            Err(e) => {
                let _ = nix::sys::mman::shm_unlink(path.as_str());
                return Err(e);
            }
        }
    } else {
        nix::sys::stat::fstat(&fd)?.st_size as usize
    };
    let region = if size > 0 { Some(Region::open(fd, size)?) } else { None };
    Ok(SharedMemory(Rc::new(ShmCore { region: RefCell::new(region), name: name.to_string(), anonymous: false, size })))
}

fn anonymous(size: INT) -> MpResult<SharedMemory> {
    if size <= 0 {
        return Err(mp_err!(ValueError, "the size of a SharedMemory must be positive, not {size}"));
    }
    let size = rhai_mp_core::base::limits::allocation(size as u128, &format!("SharedMemory({size})"))?;
    let tag: String = rhai_mp_core::base::sys::random_bytes(4)?.iter().map(|b| format!("{b:02x}")).collect();
    let region = Region::create(&memfd_name(&tag), size)?;
    let name = anonymous_name(&region, &tag);
    Ok(SharedMemory(Rc::new(ShmCore { region: RefCell::new(Some(region)), name, anonymous: true, size })))
}

/// A SharedMemory crosses as its descriptor, size and name.
impl Portable for SharedMemory {
    fn write(&self, w: &mut Writer) -> MpResult<()> {
        self.0
            .with(|r| w.dup(r.fd()))
            .map_err(|_| mp_err!(SerializationError, "a closed SharedMemory cannot be sent"))?;
        w.u64(self.0.size as u64);
        w.str(&self.0.name);
        w.bool(self.0.anonymous);
        Ok(())
    }
    fn read(r: &mut Reader) -> MpResult<Self> {
        let fd = r.fd()?;
        let size = usize::try_from(r.u64()?).map_err(|_| rhai_mp_core::wire::malformed("a SharedMemory's size"))?;
        let (name, anonymous) = (r.string()?, r.bool()?);
        let region = RefCell::new(Some(Region::open(fd, size)?));
        Ok(SharedMemory(Rc::new(ShmCore { region, name, anonymous, size })))
    }
}

impl Handle for SharedMemory {
    const KIND: &'static str = "SharedMemory";
    const ELSEWHERE: &'static str =
        "a TCP manager's m.Array(..) or m.dict() (Manager() under MPI, else Manager(#{address: ..}))";
}

/// The Rhai bindings: `SharedMemory` and its methods.
#[export_module]
pub mod shared_memory_functions {
    use super::*;

    /// A block of bytes shared between processes.
    pub type SharedMemory = super::SharedMemory;

    /// An anonymous block of `size` bytes (zeros); pass it to processes as an argument.
    ///
    /// ```rhai
    /// let shm = SharedMemory(1024);
    /// ```
    ///
    /// Throws when: `size` is not positive (`ValueError`) or not an integer (`TypeError`);
    /// the machine cannot give that much (`MemoryError`).
    #[rhai_fn(name = "SharedMemory", return_raw)]
    pub fn shared_memory(size: Dynamic) -> Result<SharedMemory, Box<EvalAltResult>> {
        Ok(anonymous(opts::arg_int(&size, "SharedMemory", "size")?)?)
    }

    /// A block with options: `#{name: "blk", create: true, size: 1024}` creates a named block
    /// in /dev/shm; `#{name: "blk"}` opens an existing one; without a name, an anonymous one.
    ///
    /// ```rhai
    /// let shm = SharedMemory(#{name: "results", create: true, size: 4096});
    /// ```
    ///
    /// An anonymous block's name attaches while any process still uses the block (its
    /// creator may have ended after handing it on).
    ///
    /// Throws when: the name does not exist (`FileNotFoundError`) or already exists when
    /// creating (`FileExistsError`); an option is unknown, the size is missing or not
    /// positive, or the name holds a NUL (`ValueError`); an option has the wrong type
    /// (`TypeError`).
    #[rhai_fn(name = "SharedMemory", return_raw)]
    pub fn shared_memory_opts(options: Map) -> Result<SharedMemory, Box<EvalAltResult>> {
        let mut o = Opts::new(options, "SharedMemory", &["name", "create", "size"])?;
        let name = o.string("name")?;
        let create = o.bool("create")?.unwrap_or(false);
        let size = o.int("size")?;
        Ok(match name {
            None => anonymous(size.ok_or_else(|| mp_err!(ValueError, "SharedMemory() needs a name or a size"))?)?,
            Some(n) => {
                if size.is_some_and(|s| s <= 0) && create {
                    return Err(mp_err!(ValueError, "the size of a SharedMemory must be positive").into());
                }
                open_named(&n, create, size)?
            }
        })
    }

    /// The block's name. An anonymous block's generated name lets other processes attach
    /// to it (`SharedMemory(#{name: n})`) while it lives.
    ///
    /// ```rhai
    /// print(shm.name);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "name", pure)]
    pub fn name(s: &mut SharedMemory) -> String {
        s.0.name.clone()
    }

    /// The block's size in bytes.
    ///
    /// ```rhai
    /// print(shm.size);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, get = "size", pure)]
    pub fn size(s: &mut SharedMemory) -> INT {
        s.0.size as INT
    }

    /// A copy of `len` bytes from `offset`.
    ///
    /// ```rhai
    /// let header = shm.read(0, 16);
    /// ```
    ///
    /// Throws when: the range passes the end (`IndexError`); the block is closed
    /// (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn read(s: &mut SharedMemory, offset: Dynamic, len: Dynamic) -> Result<Blob, Box<EvalAltResult>> {
        let offset = opts::arg_int(&offset, "read", "offset")?;
        let len = opts::arg_int(&len, "read", "len")?;
        let (o, n) = s.0.range(offset, len)?;
        Ok(s.0.with(|r| Ok(r.read(o, n)))?)
    }

    /// Writes a blob at `offset`.
    ///
    /// ```rhai
    /// shm.write(0, "hello".to_blob());
    /// ```
    ///
    /// Throws when: the blob does not fit (`IndexError`); the block is closed (`ValueError`).
    #[rhai_fn(global, return_raw)]
    pub fn write(s: &mut SharedMemory, offset: Dynamic, data: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let offset = opts::arg_int(&offset, "write", "offset")?;
        let data = opts::arg_blob(data, "write", "data")?;
        let (o, _) = s.0.range(offset, data.len() as INT)?;
        Ok(s.0.with(|r| {
            r.write(o, &data);
            Ok(())
        })?)
    }

    /// The byte at `index` (0–255; negative counts from the end).
    ///
    /// ```rhai
    /// print(shm[0]);
    /// ```
    ///
    /// Throws when: the index is out of range (`IndexError`); the block is closed
    /// (`ValueError`).
    #[rhai_fn(global, index_get, return_raw)]
    pub fn get(s: &mut SharedMemory, index: Dynamic) -> Result<INT, Box<EvalAltResult>> {
        let i = s.0.index(opts::arg_int(&index, "SharedMemory[]", "index")?)?;
        Ok(s.0.with(|r| Ok(r.read(i, 1)[0] as INT))?)
    }

    /// Sets the byte at `index` (0–255).
    ///
    /// ```rhai
    /// shm[0] = 255;
    /// ```
    ///
    /// Throws when: the index is out of range (`IndexError`); the value is not 0–255
    /// (`ValueError`); the block is closed (`ValueError`).
    #[rhai_fn(global, index_set, return_raw)]
    pub fn set(s: &mut SharedMemory, index: Dynamic, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        let i = s.0.index(opts::arg_int(&index, "SharedMemory[]=", "index")?)?;
        let value = opts::arg_int(&value, "SharedMemory[]=", "value")?;
        let b = u8::try_from(value).map_err(|_| mp_err!(ValueError, "a byte must be 0..=255, not {value}"))?;
        Ok(s.0.with(|r| {
            r.write(i, &[b]);
            Ok(())
        })?)
    }

    /// Unmaps the block in this process (other processes keep it).
    ///
    /// ```rhai
    /// shm.close();
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global)]
    pub fn close(s: &mut SharedMemory) {
        s.0.region.borrow_mut().take();
    }

    /// Removes a named block's name from /dev/shm (it lives on while mapped). Does nothing
    /// for an anonymous block.
    ///
    /// ```rhai
    /// shm.close();
    /// shm.unlink();
    /// ```
    ///
    /// Throws when: the name is already gone (`FileNotFoundError`).
    #[rhai_fn(global, return_raw)]
    pub fn unlink(s: &mut SharedMemory) -> Result<(), Box<EvalAltResult>> {
        if !s.0.anonymous {
            let name = &s.0.name;
            nix::sys::mman::shm_unlink(posix_name(name).as_str()).map_err(|e| match e {
                nix::Error::ENOENT => mp_err!(FileNotFoundError, "no shared memory block named {name:?}"),
                e => MpError::from(e),
            })?;
        }
        Ok(())
    }

    /// `<SharedMemory name='results' size=4096>`.
    ///
    /// ```rhai
    /// print(shm);
    /// ```
    ///
    /// Throws when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(s: &mut SharedMemory) -> String {
        format!("<SharedMemory name='{}' size={}>", s.0.name, s.0.size)
    }
}

/// shared_memory's entry in the package's list of primitives (`registry.rs`).
pub(crate) const PRIMITIVE: crate::registry::Primitive = {
    use crate::registry::{handle, mirror, section};
    crate::registry::Primitive {
        name: "shared_memory",
        group: "Shared memory",
        sections: &[section("SharedMemory", &[("SharedMemory", "shm")], &["SharedMemory"], &["SharedMemory("])],
        functions,
        module: None,
        handles: &[handle::<SharedMemory>()],
        machinery: None,
        mirrors: &[mirror("SharedMemory", &[1])],
        managed: &[],
    }
};

/// Registers shared_memory's Rhai functions into the package.
fn functions(lib: &mut rhai::Module) {
    rhai::combine_with_exported_module!(lib, "shared_memory", shared_memory_functions);
}
