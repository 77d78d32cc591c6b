//! The faults a new campaign found (issue 24, items 8–14), as regression tests: resource
//! limits (set with `ulimit` inside the test), stopped peers, network partitions between
//! namespaces the test makes, and hostile headers. Every wait is bounded; nothing asserts on
//! timing.

use crate::common::*;
