//! The parser must never panic, and whatever it accepts must round-trip: formatting the parsed
//! UUID in the form it came in and parsing that again gives the same UUID.
#![no_main]

use cxone_uuid_core::{parse_with_format, ParseOptions, UuidVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for opts in [
        ParseOptions::default(),
        ParseOptions {
            strict: true,
            version: Some(UuidVersion::V4),
        },
        ParseOptions {
            strict: false,
            version: Some(UuidVersion::V7),
        },
    ] {
        if let Ok((uuid, form)) = parse_with_format(text, &opts) {
            let again = parse_with_format(&form.format(&uuid), &opts);
            assert_eq!(again, Ok((uuid, form)), "round trip of {text:?}");
        }
    }
});
