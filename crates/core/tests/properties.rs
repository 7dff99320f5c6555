//! Property tests: generated UUIDs validate, mutations are rejected for the right reason, every
//! form round-trips, and no input makes the parser panic.
#![allow(clippy::unwrap_used)]

use cxone_uuid_core::{
    parse, parse_with_format, test_source, Generator, ParseOptions, Uuid, UuidFormat, UuidVersion,
    ValidationError,
};
use proptest::prelude::*;

const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

fn v4() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(|x| {
        Uuid::from_u128((x & !(0xf << 76) & !(0b11 << 62)) | (0x4 << 76) | (0b10 << 62))
    })
}

fn opts(strict: bool, version: Option<UuidVersion>) -> ParseOptions {
    ParseOptions { strict, version }
}

fn group_of(index: usize) -> usize {
    HYPHENS.iter().filter(|&&h| h < index).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_uuids_validate_strictly(seed in any::<u64>(), v7 in any::<bool>()) {
        let version = if v7 { UuidVersion::V7 } else { UuidVersion::V4 };
        let source = test_source(&format!("repeat:{seed}:1000000")).unwrap();
        let mut g = Generator::from_source(version, source);
        for _ in 0..8 {
            let u = g.next_uuid().unwrap();
            let text = UuidFormat::Hyphenated.format(&u);
            prop_assert_eq!(parse(&text, &opts(true, Some(version))), Ok(u));
        }
    }

    #[test]
    fn every_form_round_trips_in_any_case(u in v4(), upper in any::<bool>()) {
        for form in UuidFormat::ALL {
            let mut text = form.format(&u);
            if upper {
                text = text.to_uppercase();
            }
            prop_assert_eq!(parse_with_format(&text, &opts(false, Some(UuidVersion::V4))), Ok((u, form)));
            prop_assert_eq!(form.format(&parse(&text, &ParseOptions::default()).unwrap()), form.format(&u));
        }
    }

    #[test]
    fn a_non_hex_character_is_named_with_its_position(
        u in v4(),
        index in 0usize..36,
        bad in prop::sample::select(vec!['g', 'z', 'G', 'x', ' ', '_', '#', 'é', '\u{0}']),
    ) {
        prop_assume!(!HYPHENS.contains(&index));
        let mut chars: Vec<char> = UuidFormat::Hyphenated.format(&u).chars().collect();
        chars[index] = bad;
        let text: String = chars.into_iter().collect();
        prop_assert_eq!(
            parse(&text, &ParseOptions::default()),
            Err(ValidationError::NonHex { character: bad, position: index + 1 })
        );
    }

    #[test]
    fn a_wrong_version_nibble_is_named(u in v4(), nibble in 0u8..16) {
        prop_assume!(nibble != 4);
        let mut text = UuidFormat::Hyphenated.format(&u);
        text.replace_range(14..15, &format!("{nibble:x}"));
        prop_assert_eq!(
            parse(&text, &opts(false, Some(UuidVersion::V4))),
            Err(ValidationError::Version { found: nibble, expected: Some(UuidVersion::V4), position: 15 })
        );
    }

    #[test]
    fn a_wrong_variant_is_named(u in v4(), digit in prop::sample::select(vec!['0','1','2','3','4','5','6','7','c','d','e','f'])) {
        let mut text = UuidFormat::Hyphenated.format(&u);
        text.replace_range(19..20, &digit.to_string());
        prop_assert_eq!(
            parse(&text, &ParseOptions::default()),
            Err(ValidationError::Variant { digit, position: 20 })
        );
    }

    #[test]
    fn a_missing_or_extra_digit_names_its_group(u in v4(), index in 0usize..36, insert in any::<bool>()) {
        prop_assume!(!HYPHENS.contains(&index));
        let mut text = UuidFormat::Hyphenated.format(&u);
        let group = group_of(index);
        let digits = if insert {
            text.insert(index, 'a');
            GROUPS[group] + 1
        } else {
            text.remove(index);
            GROUPS[group] - 1
        };
        prop_assert_eq!(
            parse(&text, &ParseOptions::default()),
            Err(ValidationError::GroupLength { group: group + 1, digits, expected: GROUPS[group] })
        );
    }

    #[test]
    fn strict_mode_rejects_every_other_form_and_uppercase(u in v4()) {
        for form in [UuidFormat::Simple, UuidFormat::Urn, UuidFormat::Braced] {
            let err = parse(&form.format(&u), &opts(true, None)).unwrap_err();
            prop_assert!(matches!(err, ValidationError::NotCanonical { .. }), "{}", err);
        }
        let upper = UuidFormat::Hyphenated.format(&u).to_uppercase();
        if upper.chars().any(|c| c.is_ascii_uppercase()) {
            let err = parse(&upper, &opts(true, None)).unwrap_err();
            prop_assert!(matches!(err, ValidationError::NotCanonical { .. }), "{}", err);
        }
    }

    #[test]
    fn the_parser_never_panics(s in "\\PC{0,64}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&s, &ParseOptions::default());
        let _ = parse(&s, &opts(true, Some(UuidVersion::V7)));
        let _ = parse(&String::from_utf8_lossy(&bytes), &ParseOptions::default());
        for prefix in ["urn:uuid:", "{", "URN:UUID:{"] {
            let _ = parse(&format!("{prefix}{s}"), &ParseOptions::default());
        }
    }
}
