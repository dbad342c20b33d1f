//! Samples and their summary (nearest-rank percentiles).

use serde_json::{json, Value};

/// Latency samples in milliseconds, or any other positive quantity.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<f64>);

#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Samples {
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n == 0 {
            return Summary::default();
        }
        // Nearest rank: the smallest value with at least p% of samples <= it.
        let pct = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            v[rank.clamp(1, n) - 1]
        };
        Summary {
            n,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            mean: v.iter().sum::<f64>() / n as f64,
            min: v[0],
            max: v[n - 1],
        }
    }
}

impl Summary {
    pub fn json(&self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({
            "n": self.n,
            "p50": r(self.p50),
            "p90": r(self.p90),
            "p99": r(self.p99),
            "mean": r(self.mean),
            "min": r(self.min),
            "max": r(self.max),
        })
    }
}

/// `a / b`, `None` when b is zero.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Samples((1..=100).map(f64::from).collect());
        let m = s.summary();
        assert_eq!(m.n, 100);
        assert_eq!(m.p50, 50.0);
        assert_eq!(m.p99, 99.0);
        assert_eq!(m.min, 1.0);
        assert_eq!(m.max, 100.0);
        let one = Samples(vec![7.0]).summary();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Samples::default().summary().n, 0);
    }
}
