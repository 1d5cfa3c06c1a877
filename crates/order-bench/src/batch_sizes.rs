//! The group-commit batches the service formed during a step, read from its
//! own `/metrics` (`orders_append_batch_size`, a histogram) before and after.

use crate::Target;

/// The batch-size histogram: batches, appends in them, and the cumulative
/// count of batches at or below each bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSizes {
    pub batches: f64,
    pub appends: f64,
    pub at_most: Vec<(f64, f64)>,
}

impl BatchSizes {
    /// The service's histogram now (empty if it cannot be read).
    pub async fn scrape(target: &Target) -> Self {
        let Ok(response) = target
            .http
            .get(format!("{}/metrics", target.base))
            .send()
            .await
        else {
            return Self::default();
        };
        let Ok(text) = response.text().await else {
            return Self::default();
        };
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        let mut sizes = Self::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if name == "orders_append_batch_size_count" {
                sizes.batches = value;
            } else if name == "orders_append_batch_size_sum" {
                sizes.appends = value;
            } else if let Some(bound) = name
                .strip_prefix("orders_append_batch_size_bucket{le=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
                .and_then(|bound| bound.parse::<f64>().ok())
            {
                sizes.at_most.push((bound, value));
            }
        }
        sizes
    }

    /// What happened between `earlier` and now.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            batches: self.batches - earlier.batches,
            appends: self.appends - earlier.appends,
            at_most: self
                .at_most
                .iter()
                .map(|(bound, count)| {
                    let before = earlier
                        .at_most
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - before)
                })
                .collect(),
        }
    }

    /// Adds another step's batches to these.
    pub fn add(&mut self, other: &Self) {
        self.batches += other.batches;
        self.appends += other.appends;
        for (bound, count) in &other.at_most {
            match self.at_most.iter_mut().find(|(b, _)| b == bound) {
                Some((_, mine)) => *mine += count,
                None => self.at_most.push((*bound, *count)),
            }
        }
    }

    /// Mean appends per batch.
    pub fn mean(&self) -> Option<f64> {
        (self.batches > 0.0).then(|| self.appends / self.batches)
    }

    /// The share of batches of one append.
    pub fn alone(&self) -> Option<f64> {
        let ones = self.at_most.iter().find(|(b, _)| *b == 1.0)?.1;
        (self.batches > 0.0).then(|| ones / self.batches)
    }

    /// The smallest bound that at least `share` of the batches were at or
    /// below.
    pub fn quantile(&self, share: f64) -> Option<f64> {
        let mut bounds = self.at_most.clone();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        bounds
            .into_iter()
            .find(|(_, count)| *count >= share * self.batches)
            .map(|(bound, _)| bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_the_histogram_and_subtracts_an_earlier_reading() {
        let earlier = BatchSizes::parse(
            "orders_append_batch_size_bucket{le=\"1\"} 10\n\
             orders_append_batch_size_bucket{le=\"8\"} 10\n\
             orders_append_batch_size_bucket{le=\"+Inf\"} 10\n\
             orders_append_batch_size_sum 10\n\
             orders_append_batch_size_count 10\n",
        );
        let now = BatchSizes::parse(
            "# TYPE orders_append_batch_size histogram\n\
             orders_append_batch_size_bucket{le=\"1\"} 12\n\
             orders_append_batch_size_bucket{le=\"8\"} 20\n\
             orders_append_batch_size_bucket{le=\"+Inf\"} 20\n\
             orders_append_batch_size_sum 60\n\
             orders_append_batch_size_count 20\n",
        );
        let step = now.since(&earlier);
        assert_eq!(step.batches, 10.0);
        assert_eq!(step.mean(), Some(5.0));
        assert_eq!(step.alone(), Some(0.2));
        assert_eq!(step.quantile(0.5), Some(8.0));
        assert_eq!(BatchSizes::default().mean(), None);
    }
}
