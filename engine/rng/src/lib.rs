//! A random generator that reproduces NumPy's legacy `np.random.RandomState(seed)` bit for bit.
//!
//! The official StyleGAN tools draw every latent with `RandomState(seed).randn(1, z_dim)`, so a
//! tool that wants to give users the same face for the same seed has to reproduce that stream
//! exactly: the 32-bit Mersenne Twister (MT19937) seeded with the classic `init_genrand`, doubles
//! made from two draws (27 + 26 bits), and normals from the polar Box-Muller method that keeps
//! the second value of each pair for the next call.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// NumPy's legacy `RandomState`: MT19937 plus the cached-Gaussian state of `randn`.
#[derive(Clone)]
pub struct RandomState {
    key: [u32; N],
    pos: usize,
    cached_gauss: Option<f64>,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RandomState {{ pos: {} }}", self.pos)
    }
}

impl RandomState {
    /// `np.random.RandomState(seed)` for an integer seed in `0..2^32`.
    pub fn new(seed: u32) -> RandomState {
        let mut key = [0u32; N];
        let mut s = seed;
        for (i, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(i as u32 + 1);
        }
        RandomState {
            key,
            pos: N,
            cached_gauss: None,
        }
    }

    fn generate(&mut self) {
        let k = &mut self.key;
        for i in 0..N {
            let y = (k[i] & UPPER_MASK) | (k[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            k[i] = k[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next raw 32-bit output (tempered), as `RandomState.randint`'s source.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// A double in `[0, 1)` with 53 random bits (`RandomState.random_sample`).
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A standard normal sample (`RandomState.standard_normal` / `randn`).
    pub fn next_gauss(&mut self) -> f64 {
        if let Some(g) = self.cached_gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `randn(n)`: `n` standard normal samples in order.
    pub fn randn(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next_gauss()).collect()
    }

    /// `uniform(low, high)` (`low + (high - low) * random_sample()`).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }
}

/// The latent the official tools use for `seed`: `RandomState(seed).randn(1, z_dim)`, float64.
pub fn z_from_seed(seed: u32, z_dim: usize) -> Vec<f64> {
    RandomState::new(seed).randn(z_dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_mersenne_twister() {
        // First outputs of the reference MT19937 (init_genrand(5489)), published with the
        // original implementation.
        let mut r = RandomState::new(5489);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
    }

    #[test]
    fn seed_to_z_is_bit_identical_to_numpy_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/stylegan3-t-tiny-16/cases");
        for seed in [0u32, 1] {
            let path = dir.join(format!("seed{seed:04}_z.npy"));
            let want = stylegraph_npy::Array::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(want.shape, vec![1, 512]);
            let want = want.to_f64().expect("f64 array");
            let got = z_from_seed(seed, 512);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "seed {seed}, element {i}: {a} vs {b}"
                );
            }
        }
    }
}
