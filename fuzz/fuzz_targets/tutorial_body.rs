//! The tutorial dialect's execute answer comes from the server: its two read paths (straight
//! into the outputs, and through a JSON value, which also words the errors) must agree on every
//! body, the same outputs or the same error, and neither may panic.
#![no_main]

use cxone_uuid_client::dialect::tutorial::{read_outputs, read_outputs_via_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let direct = read_outputs(data).map_err(|e| e.to_string());
    let general = read_outputs_via_value(data).map_err(|e| e.to_string());
    assert_eq!(direct, general);
});
