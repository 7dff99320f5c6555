//! The four text forms written many at a time (`generate`'s output), without a loop per digit.
//!
//! Why by hand: the `uuid` crate writes a UUID's 32 digits with a table lookup per nibble,
//! in a function LLVM inlined in one release build and not in another of the same source. Out
//! of line it took about 7.5 ns a UUID, twice the rest of `generate`'s output thread, on the
//! thread that shares a core with the registry's helper (row 1a). The `hex` crate's
//! `encode_to_slice` is the same per-byte loop. Here the digits are made from the UUID's two
//! halves in a few shifts, masks and adds on 128-bit words (SWAR: every digit at once), and
//! the result is checked against the `uuid` crate's text for every form.

use uuid::Uuid;

use crate::validate::UuidFormat;

/// A byte of one in every byte lane.
const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;

/// The 16 nibbles of `x`, most significant first when the result is read big-endian, each as
/// a lowercase hex digit in a byte of its own.
#[inline]
fn digits(x: u64) -> u128 {
    // Nibble i of x (from the least significant) into byte i, halving the lanes each step.
    let mut n = u128::from(x);
    n = (n | (n << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    n = (n | (n << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    n = (n | (n << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    n = (n | (n << 4)) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
    // 0-9 to '0'-'9', 10-15 to 'a'-'f' ('a' is 39 past '0' + 10); no lane carries into the
    // next: every lane stays below 256.
    let over9 = ((n + 6 * ONES) >> 4) & ONES;
    n + 0x30 * ONES + over9 * 39
}

/// Writes `uuid` in `form`, lowercase, over `slot`, which is exactly the form's length.
#[inline]
pub(crate) fn write(form: UuidFormat, uuid: &Uuid, slot: &mut [u8]) {
    let v = uuid.as_u128();
    let mut hex = [0u8; 32];
    hex[..16].copy_from_slice(&digits((v >> 64) as u64).to_be_bytes());
    hex[16..].copy_from_slice(&digits(v as u64).to_be_bytes());
    let (start, end) = match form {
        UuidFormat::Simple => {
            slot.copy_from_slice(&hex);
            return;
        }
        UuidFormat::Hyphenated => (0, slot.len()),
        UuidFormat::Urn => {
            slot[..9].copy_from_slice(b"urn:uuid:");
            (9, slot.len())
        }
        UuidFormat::Braced => {
            slot[0] = b'{';
            let last = slot.len() - 1;
            slot[last] = b'}';
            (1, last)
        }
    };
    let text = &mut slot[start..end];
    text[..8].copy_from_slice(&hex[..8]);
    text[8] = b'-';
    text[9..13].copy_from_slice(&hex[8..12]);
    text[13] = b'-';
    text[14..18].copy_from_slice(&hex[12..16]);
    text[18] = b'-';
    text[19..23].copy_from_slice(&hex[16..20]);
    text[23] = b'-';
    text[24..36].copy_from_slice(&hex[20..32]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every form, for the edge values and many random UUIDs, is the `uuid` crate's text.
    #[test]
    fn every_form_is_the_uuid_crates_text() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        let edges = [
            0,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            0x9a9a << 60,
        ];
        let ids = edges
            .into_iter()
            .chain((0..20_000).map(|_| rng.random::<u128>()))
            .map(Uuid::from_u128);
        for id in ids {
            for form in UuidFormat::ALL {
                let mut slot = vec![0u8; form.encoded_len()];
                write(form, &id, &mut slot);
                assert_eq!(String::from_utf8(slot).unwrap(), form.format(&id));
            }
        }
    }
}
