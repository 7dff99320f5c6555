//! The birthday bound for random v4 UUIDs.

/// Probability that at least one collision occurs among `n` random v4 UUIDs (122 random bits).
///
/// Uses `1 - exp(-n(n-1) / 2^123)`, written as `-expm1(..)` because for every realistic `n` the
/// answer is tiny and `1 - exp(x)` would cancel to 0 (at n = 1e3 it is about 5e-32). Relative
/// error stays near machine precision from n = 1e3 to 1e15 and beyond. Returns 0 for n < 2.
pub fn collision_probability(n: f64) -> f64 {
    if n.is_nan() || n < 2.0 {
        return 0.0;
    }
    // 2^123 = 2 * 2^122: n(n-1)/2 pairs, each colliding with probability 2^-122.
    let exponent = n * (n - 1.0) / 2f64.powi(123);
    -(-exponent).exp_m1()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        ((a - b) / b).abs() < 1e-12
    }

    #[test]
    fn small_n_is_pairs_times_two_to_the_minus_122() {
        for n in [1e3, 1e6, 1e9, 1e12, 1e15] {
            // x = expected colliding pairs; 1 - e^-x = x - x^2/2 + x^3/6 - ... (x < 1e-7 here).
            let x = n * (n - 1.0) / 2.0 / 2f64.powi(122);
            let series = x * (1.0 - x / 2.0 + x * x / 6.0);
            assert!(close(collision_probability(n), series), "n = {n}");
        }
        let p = collision_probability(1e3);
        assert!(p > 9.39e-32 && p < 9.40e-32, "{p}");
    }

    #[test]
    fn large_n_saturates_and_half_is_near_2_to_the_61() {
        // n = 2.71e18 gives the well-known ~50% for v4 UUIDs.
        let p = collision_probability(2.71e18);
        assert!((p - 0.5).abs() < 0.01, "{p}");
        assert_eq!(collision_probability(1e30), 1.0);
        assert_eq!(collision_probability(1.0), 0.0);
        assert_eq!(collision_probability(f64::NAN), 0.0);
    }
}
