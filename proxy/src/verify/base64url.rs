//! Strict base64url decoding (RFC 4648 section 5, without padding) for token segments.
//!
//! Each byte string has exactly one accepted spelling: padding, characters outside the
//! URL-safe alphabet and non-zero bits after the last whole byte are all rejected. A token's
//! three segments are decoded on every cache miss, so whole groups of four characters go
//! through a vectorised decoder and only the last, partial group is decoded here.

/// Marks a byte that is not in the base64url alphabet. Every valid value is below 64, so a
/// group of characters is valid exactly when no value has either of the top two bits set.
const INVALID: u8 = 0xff;

/// The 6-bit value of each base64url character.
static VALUES: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut index = 0;
    while index < alphabet.len() {
        // `index` is below 64, so the value fits in a byte (a const context allows no
        // `try_from`).
        table[alphabet[index] as usize] = index as u8;
        index += 1;
    }
    table
};

/// The error for text that is not canonical unpadded base64url.
#[derive(Debug, PartialEq, Eq)]
pub struct NotCanonical;

/// Decodes unpadded base64url `text`.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, NotCanonical> {
    let whole_groups = text.len() / 4;
    let tail_bytes = match text.len() % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        // One character carries 6 bits, not enough for a byte.
        _ => return Err(NotCanonical),
    };
    let mut out = Vec::with_capacity(whole_groups * 3 + tail_bytes);

    // Whole groups of four characters carry whole bytes, so every group has exactly one
    // spelling and a vectorised decoder that rejects characters outside the alphabet is as
    // strict as this one. Only the tail can hold trailing bits, which are checked below.
    let (groups, tail) = text.split_at(whole_groups * 4);
    base64_simd::URL_SAFE_NO_PAD
        .decode_append(groups, &mut out)
        .map_err(|_| NotCanonical)?;

    match *tail {
        [] => {}
        [a, b] => {
            let [a, b] = [a, b].map(value);
            // Two characters carry 12 bits: one byte and 4 bits that must be zero.
            if (a | b) & 0xc0 != 0 || b & 0x0f != 0 {
                return Err(NotCanonical);
            }
            out.push(a << 2 | b >> 4);
        }
        [a, b, c] => {
            let [a, b, c] = [a, b, c].map(value);
            // Three characters carry 18 bits: two bytes and 2 bits that must be zero.
            if (a | b | c) & 0xc0 != 0 || c & 0x03 != 0 {
                return Err(NotCanonical);
            }
            out.extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2]);
        }
        _ => return Err(NotCanonical),
    }
    Ok(out)
}

fn value(character: u8) -> u8 {
    VALUES[usize::from(character)]
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    #[test]
    fn decodes_like_reference_engine() {
        // Every length from 0 to 64 bytes, with byte values covering the whole alphabet.
        for length in 0..=64usize {
            let bytes: Vec<u8> = (0..length).map(|i| (i * 37 + length) as u8).collect();
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(decode(text.as_bytes()), Ok(bytes), "length {length}");
        }
    }

    #[test]
    fn every_character_round_trips() {
        let text = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = decode(text.as_bytes()).expect("the whole alphabet");
        assert_eq!(URL_SAFE_NO_PAD.encode(bytes), text);
    }

    #[test]
    fn rejects_non_canonical_text() {
        let cases = [
            "eyJhIjoxfQ==", // padding
            "eyJhIjoxfQ=",
            "ab+c", // standard alphabet
            "ab/c",
            "ab c", // whitespace
            "abc\n",
            "a", // one character is not a byte
            "abcde",
            "QR",  // non-zero trailing bits after one byte
            "QUJ", // non-zero trailing bits after two bytes
            "ab.c",
            "é",
        ];
        for text in cases {
            assert_eq!(decode(text.as_bytes()), Err(NotCanonical), "{text:?}");
            assert!(
                URL_SAFE_NO_PAD.decode(text).is_err(),
                "reference accepts {text:?}"
            );
        }
    }

    #[test]
    fn invalid_character_rejected_anywhere() {
        // Long enough for the vectorised path, with a tail of three characters.
        let bytes: Vec<u8> = (0..302u32).map(|i| (i * 7) as u8).collect();
        let valid = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(valid.len() % 4, 3);
        for position in 0..valid.len() {
            for bad in [b'=', b'+', b'/', b'.', b' ', 0x80] {
                let mut text = valid.clone().into_bytes();
                text[position] = bad;
                assert_eq!(decode(&text), Err(NotCanonical), "{bad} at {position}");
            }
        }
    }

    #[test]
    fn accepts_zero_trailing_bits() {
        assert_eq!(decode(b"QQ"), Ok(b"A".to_vec()));
        assert_eq!(decode(b"QUI"), Ok(b"AB".to_vec()));
        assert_eq!(decode(b""), Ok(Vec::new()));
    }
}
