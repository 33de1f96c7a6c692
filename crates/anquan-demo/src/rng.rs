//! A small deterministic random source (SplitMix64): the same seed gives the same numbers on
//! every platform, and each enterprise or agency draws from its own stream, so the history
//! does not depend on the order concurrent tasks run in.

use uuid::Uuid;

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough for data.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A stream for one purpose (`tag`) and one item (`index`) under a seed.
    pub(crate) fn derive(seed: u64, tag: u64, index: u64) -> Self {
        let mut rng = Rng {
            state: seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        rng.state ^= rng.next_u64().wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        rng
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        // 53 random bits, exactly representable.
        #[allow(clippy::cast_precision_loss)]
        let value = (self.next_u64() >> 11) as f64;
        value / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A number in [low, high) (low when the range is empty).
    pub(crate) fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = u64::try_from(high - low).unwrap_or(u64::MAX);
        low + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }

    /// An index in [0, n) (0 when n is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % (n as u64)).unwrap_or(0)
    }

    /// A Poisson-distributed count with the given mean (Knuth; means here are small).
    pub(crate) fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit && count < 1_000 {
            product *= self.unit();
            count += 1;
        }
        count
    }

    /// Picks an index by weight.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (index, weight) in weights.iter().enumerate() {
            if target < *weight {
                return index;
            }
            target -= weight;
        }
        weights.len().saturating_sub(1)
    }

    /// A random (version 4 shaped) UUID drawn from this stream.
    pub(crate) fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// 64 lower-case hex digits (a stand-in SHA-256 of a file that is not stored).
    pub(crate) fn sha256_hex(&mut self) -> String {
        let mut text = String::with_capacity(64);
        for _ in 0..4 {
            text.push_str(&format!("{:016x}", self.next_u64()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let mut a = Rng::derive(7, 1, 42);
        let mut b = Rng::derive(7, 1, 42);
        let mut c = Rng::derive(7, 1, 43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn poisson_has_about_the_asked_mean() {
        let mut rng = Rng::derive(1, 2, 3);
        let total: u32 = (0..20_000).map(|_| rng.poisson(2.7)).sum();
        let mean = f64::from(total) / 20_000.0;
        assert!((mean - 2.7).abs() < 0.05, "{mean}");
    }
}
