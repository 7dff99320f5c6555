//! The CXone id_token is read without a signature check (only to learn the tenant), so its
//! decoder sees arbitrary bytes: it must never panic.
#![no_main]

use cxone_uuid_client::dialect::cxone::jwt_claim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jwt_claim(text, "tenantId");
});
