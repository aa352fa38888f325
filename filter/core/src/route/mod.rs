//! Header-based A/B routing: pick exactly one predictor per request, by explicit override,
//! by a sticky hash of a user key, or at random by `traffic` weight.
//!
//! Sticky and random choices share one mapping: a position in `[0, total)` falls into the
//! predictors' cumulative weight ranges, in predictor order. A key's position depends only
//! on the model and the key, so when one predictor's weight grows only the keys in the
//! range it gains move.

use serde_json::{Map, Value};

use crate::compiled::ConfigError;
use crate::config::{Predictor, Routing};
use crate::http::is_header_name;
use crate::reason::DenyReason;
use crate::request::Request;

mod sticky;

pub(crate) use sticky::sticky_bucket;
pub use sticky::{BUCKETS, StickyKey};

/// Why a predictor was chosen (the `reason` label of the routing metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// The client named it in the routing header.
    Override,
    /// The stickiness key hashed into its range.
    Sticky,
    /// Weighted random choice.
    Random,
}

impl RouteReason {
    /// The reason's name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::Override => "override",
            RouteReason::Sticky => "sticky",
            RouteReason::Random => "random",
        }
    }
}

/// Why a predictor was chosen, with what decided it (for the decision's trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteWhy {
    /// The client named it in the routing header.
    Override,
    /// The sticky key hashed into this bucket of [`BUCKETS`].
    Sticky {
        /// The key's bucket.
        bucket: u64,
    },
    /// The filter's random number fell at this point of the total weight.
    Random {
        /// The point, in `[0, total)`.
        draw: u64,
    },
}

impl RouteWhy {
    /// The reason without its detail, as metrics count it.
    pub fn reason(self) -> RouteReason {
        match self {
            RouteWhy::Override => RouteReason::Override,
            RouteWhy::Sticky { .. } => RouteReason::Sticky,
            RouteWhy::Random { .. } => RouteReason::Random,
        }
    }
}

/// A model's routing, compiled.
#[derive(Debug, Clone)]
pub struct CompiledRouting {
    /// The routing header (lowercase).
    pub header: String,
    /// Whether clients may pick a predictor.
    pub override_allowed: bool,
    /// The stickiness key.
    pub sticky: Option<StickyKey>,
    /// Non-shadow predictors in order.
    pub predictors: Vec<Predictor>,
    /// Cumulative traffic weights, one per predictor.
    cumulative: Vec<u64>,
}

impl CompiledRouting {
    /// Validates and compiles a model's routing; errors name the bad field within `routing`.
    pub fn compile(routing: &Routing) -> Result<Self, ConfigError> {
        if !is_header_name(&routing.header) {
            return Err(ConfigError::new(
                "header",
                format!("{:?} is not a header name", routing.header),
            ));
        }
        let header = routing.header.to_ascii_lowercase();
        if let Some(why) = crate::headers::reserved_for_routing(&header) {
            return Err(ConfigError::new("header", format!("{header:?} is {why}")));
        }
        let sticky = match &routing.sticky {
            None => None,
            Some(text) => Some(StickyKey::parse(text).map_err(|e| ConfigError::new("sticky", e))?),
        };
        if routing.predictors.is_empty() {
            return Err(ConfigError::new("predictors", "no predictor"));
        }
        let mut cumulative = Vec::with_capacity(routing.predictors.len());
        let mut total = 0u64;
        for (i, p) in routing.predictors.iter().enumerate() {
            if p.name.is_empty() || p.name.bytes().any(|b| b.is_ascii_control() || b == b',') {
                return Err(ConfigError::new(
                    format!("predictors[{i}].name"),
                    format!("{:?} is not a predictor name", p.name),
                ));
            }
            if routing.predictors[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::new(
                    format!("predictors[{i}].name"),
                    format!("{:?} appears twice", p.name),
                ));
            }
            total += u64::from(p.traffic);
            cumulative.push(total);
        }
        if total == 0 {
            return Err(ConfigError::new("predictors", "every traffic weight is 0"));
        }
        Ok(Self {
            header,
            override_allowed: routing.override_allowed,
            sticky,
            predictors: routing.predictors.clone(),
            cumulative,
        })
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The predictor whose cumulative range holds `position` (in `[0, total)`).
    fn at(&self, position: u64) -> usize {
        let position = position % self.total().max(1);
        self.cumulative
            .iter()
            .position(|&end| position < end)
            .unwrap_or(0)
    }

    /// The predictor a sticky key maps to.
    pub fn sticky_choice(&self, model_id: &str, key: &str) -> usize {
        self.in_bucket(sticky_bucket(model_id, key))
    }

    fn in_bucket(&self, bucket: u64) -> usize {
        self.at(bucket * self.total() / BUCKETS)
    }

    /// The predictor a random number maps to.
    pub fn random_choice(&self, random: u64) -> usize {
        self.at(self.draw(random))
    }

    fn draw(&self, random: u64) -> u64 {
        random % self.total().max(1)
    }

    /// Picks the predictor for a request: override, then sticky, then random.
    pub fn choose(
        &self,
        model_id: &str,
        request: &Request<'_>,
        claims: Option<&Map<String, Value>>,
        random: u64,
    ) -> Result<(usize, RouteWhy), DenyReason> {
        if self.override_allowed {
            let mut values = request.header_values(&self.header);
            if let Some(first) = values.next() {
                if values.next().is_some() {
                    return Err(DenyReason::AmbiguousPredictor);
                }
                let wanted = first.trim();
                return match self.predictors.iter().position(|p| p.name == wanted) {
                    Some(i) => Ok((i, RouteWhy::Override)),
                    None => Err(DenyReason::UnknownPredictor),
                };
            }
        }
        if let Some(key) = self.sticky.as_ref().and_then(|s| s.value(request, claims)) {
            let bucket = sticky_bucket(model_id, &key);
            return Ok((self.in_bucket(bucket), RouteWhy::Sticky { bucket }));
        }
        let draw = self.draw(random);
        Ok((self.at(draw), RouteWhy::Random { draw }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::headers;

    /// The default routing header, overridable, with these predictors and sticky key.
    fn compile(
        weights: &[(&str, u32)],
        sticky: Option<&str>,
    ) -> Result<CompiledRouting, ConfigError> {
        CompiledRouting::compile(&Routing {
            header: "x-seldon-predictor".into(),
            override_allowed: true,
            sticky: sticky.map(str::to_string),
            predictors: weights
                .iter()
                .map(|(n, t)| Predictor {
                    name: n.to_string(),
                    traffic: *t,
                })
                .collect(),
        })
    }

    fn routing(weights: &[(&str, u32)]) -> CompiledRouting {
        compile(weights, Some("header:x-user")).unwrap()
    }

    fn req(headers: &[(String, String)]) -> Request<'_> {
        Request::test("POST", "/seldon/ns/m/api/v1.0/predictions", headers)
    }

    #[test]
    fn override_picks_any_predictor_including_dark_launches() {
        let r = routing(&[("main", 100), ("dark", 0)]);
        let sent = headers(&[("x-seldon-predictor", "dark")]);
        assert_eq!(
            r.choose("ns/m", &req(&sent), None, 0),
            Ok((1, RouteWhy::Override))
        );
        let sent = headers(&[("x-seldon-predictor", "nope")]);
        assert_eq!(
            r.choose("ns/m", &req(&sent), None, 0),
            Err(DenyReason::UnknownPredictor)
        );
        let sent = headers(&[
            ("x-seldon-predictor", "main"),
            ("x-seldon-predictor", "dark"),
        ]);
        assert_eq!(
            r.choose("ns/m", &req(&sent), None, 0),
            Err(DenyReason::AmbiguousPredictor)
        );
    }

    #[test]
    fn a_traffic_0_predictor_is_never_chosen_without_override() {
        let r = routing(&[("main", 100), ("dark", 0)]);
        for i in 0..5000u64 {
            let user = format!("u{i}");
            let sent = headers(&[("x-user", &user)]);
            assert_eq!(r.choose("ns/m", &req(&sent), None, i).unwrap().0, 0);
            assert_eq!(r.random_choice(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), 0);
        }
        let first_dark = routing(&[("dark", 0), ("main", 100)]);
        for i in 0..5000u64 {
            assert_eq!(
                first_dark.random_choice(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                1
            );
        }
    }

    #[test]
    fn disabled_override_ignores_the_header() {
        let mut r = routing(&[("a", 50), ("b", 50)]);
        r.override_allowed = false;
        r.sticky = None;
        let sent = headers(&[("x-seldon-predictor", "nope")]);
        assert_eq!(
            r.choose("ns/m", &req(&sent), None, 1).unwrap().1,
            RouteWhy::Random { draw: 1 }
        );
    }

    #[test]
    fn sticky_keys_keep_their_predictor() {
        let r = routing(&[("a", 50), ("b", 50)]);
        for i in 0..500 {
            let user = format!("user-{i}");
            let sent = headers(&[("x-user", &user)]);
            let first = r.choose("ns/m", &req(&sent), None, 0).unwrap();
            assert_eq!(first.1.reason(), RouteReason::Sticky);
            for random in [1, 77, 12345] {
                assert_eq!(r.choose("ns/m", &req(&sent), None, random).unwrap(), first);
            }
        }
    }

    #[test]
    fn growing_a_canary_moves_only_users_into_its_new_range() {
        let before = routing(&[("main", 90), ("canary", 10)]);
        let after = routing(&[("main", 80), ("canary", 20)]);
        let (mut moved, mut canary_before, mut canary_after) = (0, 0, 0);
        for i in 0..20_000 {
            let user = format!("user-{i}");
            let b = before.sticky_choice("ns/m", &user);
            let a = after.sticky_choice("ns/m", &user);
            assert!(!(b == 1 && a == 0), "{user} left the canary");
            moved += usize::from(b != a);
            canary_before += usize::from(b == 1);
            canary_after += usize::from(a == 1);
        }
        assert_eq!(moved, canary_after - canary_before);
        // About 10 % of users move; allow a generous statistical margin.
        assert!((1_600..2_400).contains(&moved), "{moved} moved");
    }

    #[test]
    fn random_choice_follows_weights() {
        let r = routing(&[("a", 75), ("b", 25)]);
        let mut counts = [0u32; 2];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..40_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            counts[r.random_choice(x)] += 1;
        }
        // 40 000 draws at p = 0.25: sd ~ 87; 5 sd either side.
        assert!((9_565..10_435).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn bad_routing_is_refused_with_the_field() {
        let bad = |weights: &[(&str, u32)], sticky: Option<&str>| {
            compile(weights, sticky).unwrap_err().field
        };
        assert_eq!(bad(&[("a", 0), ("b", 0)], None), "predictors");
        assert_eq!(bad(&[("a", 1), ("a", 1)], None), "predictors[1].name");
        assert_eq!(bad(&[], None), "predictors");
        assert_eq!(bad(&[("a", 1)], Some("session")), "sticky");
    }
}
