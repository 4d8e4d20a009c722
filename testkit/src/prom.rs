//! Reading samples from Prometheus text exposition (`/metrics`).

/// Sum of every sample of the metric family `family` (`family{...} v` and `family v` lines).
pub fn sum(text: &str, family: &str) -> f64 {
    samples(text)
        .filter(|(name, _, _)| *name == family)
        .map(|(_, _, value)| value)
        .sum()
}

/// Sum of the samples of `family` whose labels include every `(label, value)` in `labels`.
pub fn sum_where(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .filter(|(name, set, _)| {
            *name == family && labels.iter().all(|(k, v)| label(set, k) == Some(v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// The value of one exact sample, e.g. `tracedapp_reconciles_total{result="ok"}`.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// `label="value"` looked up in a sample's label set (the text between the braces).
pub fn label<'a>(set: &'a str, key: &str) -> Option<&'a str> {
    let start = set.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &set[start..];
    Some(&rest[..rest.find('"')?])
}

/// The samples of `family` as (label set, value).
pub fn series<'a>(text: &'a str, family: &'a str) -> impl Iterator<Item = (&'a str, f64)> {
    samples(text)
        .filter(move |(name, _, _)| *name == family)
        .map(|(_, set, value)| (set, value))
}

/// Every sample line as (family, label set, value); comments and unparsable lines skipped.
fn samples(text: &str) -> impl Iterator<Item = (&str, &str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            Some(match series.split_once('{') {
                Some((name, set)) => (name, set.trim_end_matches('}'), value),
                None => (series, "", value),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP w writes\n\
        w_total{kind=\"Deployment\",verb=\"PATCH\"} 3\n\
        w_total{kind=\"Service\",verb=\"PATCH\"} 2\n\
        w_total_other 100\n\
        up 1\n";

    #[test]
    fn sums_a_family_and_not_its_prefix_namesakes() {
        assert_eq!(sum(TEXT, "w_total"), 5.0);
        assert_eq!(sum(TEXT, "up"), 1.0);
        assert_eq!(sum_where(TEXT, "w_total", &[("kind", "Service")]), 2.0);
        assert_eq!(sample(TEXT, "up"), Some(1.0));
        assert_eq!(sample(TEXT, "w_total"), None);
    }
}
