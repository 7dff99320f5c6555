//! `cxone-uuid`: generate UUIDs, submit each to a CXone Data Action, keep a tamper-evident trail.
fn main() {}
