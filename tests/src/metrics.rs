//! Envoy's `/stats/prometheus` output, parsed into samples a test can query by name and
//! labels, the way a Prometheus scrape of the gateway would see modelgate's counters.

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The line as Envoy printed it.
    pub line: String,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample, in Envoy's order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the Prometheus text format (comments skipped).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    /// The sum of the samples of `name` that carry all the given labels (other labels
    /// may be there too); `0` when there is none, as for a counter never incremented.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples of `name` that carry all the given labels.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// The samples whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name.starts_with(prefix))
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), Vec::new()),
        Some((name, rest)) => (name.to_string(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
        line: line.to_string(),
    })
}

/// `a="x",b="y\"z"`.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end?;
        labels.push((key.trim_start_matches(',').to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envoy_prometheus_lines() {
        let scrape = Scrape::parse(
            "# TYPE modelgate_requests_total counter\n\
             modelgate_requests_total{model=\"ns/m\",decision=\"allowed\",reason=\"no_auth\"} 6\n\
             modelgate_requests_total{model=\"ns/m\",decision=\"denied\",reason=\"missing_token\"} 2\n\
             modelgate_config_models{} 3\n",
        );
        assert_eq!(
            scrape.value("modelgate_requests_total", &[("model", "ns/m")]),
            8.0
        );
        assert_eq!(
            scrape.value("modelgate_requests_total", &[("decision", "denied")]),
            2.0
        );
        assert_eq!(scrape.value("modelgate_config_models", &[]), 3.0);
        assert_eq!(scrape.value("absent", &[]), 0.0);
    }
}
