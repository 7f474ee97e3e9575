//! Writing one metric family through prometheus-client's encoder: catalogue names (with
//! their `_total`, `_bytes`, `_seconds` suffixes) in, HELP/TYPE/UNIT and samples out;
//! a family with no series is left out whole. Owns the encoding; must not know any
//! metric.

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Splits a catalogue name into the encoder's base name and unit.
fn split_unit(name: &str) -> (&str, Option<&'static Unit>) {
    if let Some(base) = name.strip_suffix("_bytes") {
        (base, Some(&Unit::Bytes))
    } else if let Some(base) = name.strip_suffix("_seconds") {
        (base, Some(&Unit::Seconds))
    } else {
        (name, None)
    }
}

/// Writes one metric family; families with no series are left out entirely.
pub(super) struct Family<'e, 'w> {
    pub(super) encoder: &'e mut DescriptorEncoder<'w>,
}

impl Family<'_, '_> {
    /// Encodes `series` under `name` (a catalogue name: its `_total`, `_bytes` or
    /// `_seconds` suffix is split off for the encoder, which writes it back).
    fn family<L, M>(
        &mut self,
        name: &str,
        help: &str,
        metric_type: MetricType,
        series: impl IntoIterator<Item = (L, M)>,
    ) -> Result<(), std::fmt::Error>
    where
        L: EncodeLabelSet,
        M: EncodeMetric,
    {
        let mut series = series.into_iter().peekable();
        if series.peek().is_none() {
            return Ok(());
        }
        let mut metric = self.descriptor(name, help, metric_type)?;
        for (labels, value) in series {
            value.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// One unlabelled sample, written without a label set.
    fn single<M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        metric_type: MetricType,
        value: Option<M>,
    ) -> Result<(), std::fmt::Error> {
        let Some(value) = value else { return Ok(()) };
        value.encode(self.descriptor(name, help, metric_type)?)
    }

    /// HELP and TYPE for `name` (a counter's `_total` and the unit suffix split off, as the
    /// encoder adds them back).
    fn descriptor<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        metric_type: MetricType,
    ) -> Result<MetricEncoder<'s>, std::fmt::Error> {
        let name = match metric_type {
            MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let (base, unit) = split_unit(name);
        self.encoder
            .encode_descriptor(base, help, unit, metric_type)
    }

    pub(super) fn gauge<V: EncodeGaugeValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        value: Option<V>,
    ) -> Result<(), std::fmt::Error> {
        self.single(name, help, MetricType::Gauge, value.map(ConstGauge::new))
    }

    pub(super) fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) -> Result<(), std::fmt::Error> {
        let series = series.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
        self.family(name, help, MetricType::Gauge, series)
    }

    pub(super) fn counter<V: EncodeCounterValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        value: Option<V>,
    ) -> Result<(), std::fmt::Error> {
        self.single(
            name,
            help,
            MetricType::Counter,
            value.map(ConstCounter::new),
        )
    }

    pub(super) fn counters<L: EncodeLabelSet, V: EncodeCounterValue + Clone + std::fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (L, V)>,
    ) -> Result<(), std::fmt::Error> {
        let series = series.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
        self.family(name, help, MetricType::Counter, series)
    }
}
