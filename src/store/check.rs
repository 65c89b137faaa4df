//! The checksum the file stores keep beside what they write: CRC-64 with
//! the ECMA-182 polynomial, in the bit-reflected form known as CRC-64/XZ
//! (the one `xz` uses), computed eight bytes a step from tables made at
//! compile time.
//!
//! Why a CRC and not one of the crate's hashes: a CRC *guarantees* what the
//! stores promise. CRC-64 is the remainder of the message, as a polynomial
//! over GF(2), divided by the generator G(x). Flipping bit i of the message
//! adds x^i to it (times x^64), which changes the remainder unless G(x)
//! divides a single power of x, and G(x) has a constant term, so it never
//! does: every single-bit flip changes the checksum. So does every burst of
//! flips within 64 consecutive bits, and every odd number of flips anywhere
//! (G(x) has an even number of terms, so x + 1 divides it). Other damage
//! goes unseen with a chance of 2^-64. The start value and the final
//! inversion are the same for two messages of one length, so they cancel
//! out of the difference and keep all of this. A multiply-and-fold hash
//! (`crate::hash`) is faster but makes no such promise.

/// The ECMA-182 polynomial, bit-reflected.
const POLY: u64 = 0xc96c_5795_d787_0f42;

/// `TABLES[0][b]`: the CRC of byte `b`; `TABLES[k][b]`: of byte `b`
/// followed by `k` zero bytes.
static TABLES: [[u64; 256]; 8] = tables();

const fn tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// The table entry for the low byte of `x`.
#[inline]
fn entry(table: &[u64; 256], x: u64) -> u64 {
    // A byte indexes a table of 256: never out of range.
    table[(x & 0xff) as usize]
}

/// A CRC-64/XZ in progress: feed it with [`update`](Crc64::update), read it
/// with [`finish`](Crc64::finish).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc64(u64);

impl Crc64 {
    pub(crate) fn new() -> Self {
        Crc64(u64::MAX)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
        let mut crc = self.0;
        let (words, rest) = bytes.as_chunks::<8>();
        for w in words {
            let x = crc ^ u64::from_le_bytes(*w);
            crc = entry(t7, x)
                ^ entry(t6, x >> 8)
                ^ entry(t5, x >> 16)
                ^ entry(t4, x >> 24)
                ^ entry(t3, x >> 32)
                ^ entry(t2, x >> 40)
                ^ entry(t1, x >> 48)
                ^ entry(t0, x >> 56);
        }
        for b in rest {
            crc = entry(t0, crc ^ u64::from(*b)) ^ (crc >> 8);
        }
        self.0 = crc;
    }

    /// Feeds a length, then the bytes: strings fed one after another stay
    /// apart (`"ab", "c"` is not `"a", "bc"`).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.update(&(bytes.len() as u64).to_le_bytes());
        self.update(bytes);
    }

    pub(crate) fn finish(&self) -> u64 {
        !self.0
    }
}

/// The CRC-64/XZ of `bytes`.
pub(crate) fn crc64(bytes: &[u8]) -> u64 {
    let mut c = Crc64::new();
    c.update(bytes);
    c.finish()
}

/// `x` as sixteen lowercase hex digits.
pub(crate) fn hex(x: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, d) in out.iter_mut().enumerate() {
        let nibble = (x >> (60 - 4 * i)) & 0xf;
        *d = DIGITS[nibble as usize];
    }
    out
}

/// Sixteen lowercase hex digits back as the number, or `None` for anything
/// else (upper case included: a flipped case bit is damage too).
pub(crate) fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.len() != 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, straight from the definition.
    fn slow(bytes: &[u8]) -> u64 {
        let mut crc = u64::MAX;
        for b in bytes {
            crc ^= u64::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn known_values() {
        // The published check value of CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995d_c9bb_df19_39fa);
        assert_eq!(crc64(b""), 0);
        assert_eq!(slow(b"123456789"), 0x995d_c9bb_df19_39fa);
    }

    #[test]
    fn eight_bytes_a_step_is_the_definition() {
        for n in 0..80 {
            let data = bytes(n, n as u64 + 1);
            assert_eq!(crc64(&data), slow(&data), "length {n}");
            // Fed in two pieces, split anywhere.
            for cut in 0..=n {
                let mut c = Crc64::new();
                c.update(&data[..cut]);
                c.update(&data[cut..]);
                assert_eq!(c.finish(), slow(&data), "length {n} cut at {cut}");
            }
        }
    }

    #[test]
    fn every_single_bit_flip_changes_it() {
        let data = bytes(1024, 7);
        let base = crc64(&data);
        for bit in 0..data.len() * 8 {
            let mut d = data.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(crc64(&d), base, "bit {bit}");
        }
    }

    #[test]
    fn every_burst_within_64_bits_changes_it() {
        let data = bytes(64, 9);
        let base = crc64(&data);
        let mut x = 0x1234_5678_9abc_def1_u64;
        for start in 0..(data.len() * 8 - 64) {
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // First and last bit of the burst set: a burst of 64.
                let burst = x | 1 | (1 << 63);
                let mut d = data.clone();
                for k in 0..64 {
                    if burst >> k & 1 == 1 {
                        let bit = start + k;
                        d[bit / 8] ^= 1 << (bit % 8);
                    }
                }
                assert_ne!(crc64(&d), base, "burst {burst:x} at {start}");
            }
        }
    }

    #[test]
    fn fields_stay_apart() {
        let mut a = Crc64::new();
        a.field(b"ab");
        a.field(b"c");
        let mut b = Crc64::new();
        b.field(b"a");
        b.field(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        for x in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(parse_hex(&hex(x)), Some(x));
        }
        assert_eq!(&hex(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(parse_hex(b"0123456789ABCDEF"), None);
        assert_eq!(parse_hex(b"0123456789abcde"), None);
        assert_eq!(parse_hex(b"0123456789abcdeg"), None);
        assert_eq!(parse_hex(b"0123456789abcdef0"), None);
    }
}
