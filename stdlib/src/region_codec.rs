//! A codec for the handles whose whole state is one shared region (Event, Semaphore): the
//! region's memfd crosses, and the other side maps it.

use rhai::Dynamic;
use rhai_mp_core::{mp_err, HandleCodec, MpResult, Region};
use std::os::fd::OwnedFd;

pub(crate) struct RegionCodec<T> {
    pub kind: &'static str,
    /// How many bytes of the region to map.
    pub size: usize,
    pub region: fn(&T) -> &Region,
    pub make: fn(Region) -> T,
}

impl<T: Clone + 'static> HandleCodec for RegionCodec<T> {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn type_id(&self) -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }
    fn encode(&self, value: &Dynamic, fds: &mut Vec<OwnedFd>) -> MpResult<Vec<u8>> {
        let v = value.read_lock::<T>().ok_or_else(|| mp_err!(SerializationError, "not a {}", self.kind))?;
        fds.push((self.region)(&v).dup_fd()?);
        Ok(Vec::new())
    }
    fn decode(&self, _data: &[u8], fds: Vec<OwnedFd>) -> MpResult<Dynamic> {
        let fd = fds.into_iter().next().ok_or_else(|| mp_err!(SerializationError, "malformed {}", self.kind))?;
        Ok(Dynamic::from((self.make)(Region::open(fd, self.size)?)))
    }
}
