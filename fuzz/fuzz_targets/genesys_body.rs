//! Genesys error bodies (`ErrorBody`, with its recursive `errors` and the `limit` that refused
//! a 429) and `/test` results (`TestExecutionResult`) come from the server and end up in error
//! messages: parsing and describing them must never panic, whatever the bytes.
#![no_main]

use cxone_uuid_client::dialect::genesys_body::{ErrorBody, TestExecutionResult};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(e) = ErrorBody::parse(data) {
        let _ = e.limit.as_ref().and_then(|l| l.describe());
    }
    if let Some(t) = TestExecutionResult::parse(data) {
        let _ = t.describe();
        let _ = t.error_message();
    }
});
