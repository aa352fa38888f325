//! Medians over rounds, and same-round ratios: two configurations measured minutes apart
//! on a shared machine drift; measured in the same round, their ratio drifts much less.

/// The median of some values (the mean of the middle two for an even count), or `NaN`
/// when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The smallest and largest of some values, for a spread.
pub fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .filter(|v| !v.is_nan())
        .fold((f64::NAN, f64::NAN), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
        assert_eq!(median([f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn range_ignores_nan() {
        assert_eq!(range([2.0, f64::NAN, 7.0, 3.0]), (2.0, 7.0));
        assert!(range([]).0.is_nan());
    }
}
