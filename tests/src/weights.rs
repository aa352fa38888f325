//! Whether random choices follow their weights: a count of draws is accepted within 5
//! standard deviations of what the weight predicts, so a correct split fails a test about
//! once in 1.7 million runs.

/// Whether `count` of `n` draws is within 5 standard deviations of `share`.
pub fn within_five_sigma(count: usize, n: usize, share: f64) -> bool {
    let expected = n as f64 * share;
    let sigma = (n as f64 * share * (1.0 - share)).sqrt();
    (count as f64 - expected).abs() <= 5.0 * sigma
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_sigma_of_a_binomial() {
        // n = 4000, p = 0.25: sigma = 27.4, so 1000 ± 137.
        assert!(within_five_sigma(1000, 4000, 0.25));
        assert!(within_five_sigma(1136, 4000, 0.25));
        assert!(!within_five_sigma(1138, 4000, 0.25));
        assert!(!within_five_sigma(860, 4000, 0.25));
    }
}
