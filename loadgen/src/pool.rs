//! The pre-encoded traces the agents send, stamped with fresh ids and times per send.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use rand::RngExt;

use crate::template::{self, Template};
use crate::topology::Topology;

/// Encoded traces and the counter that makes each send's ids unique.
pub struct Pool {
    traces: Vec<Vec<Template>>,
    run: u32,
    sent_traces: AtomicU64,
    segment_bytes: usize,
    segments: usize,
}

impl Pool {
    /// `traces` traces of `topology`, a share `error_ratio` of them failed.
    pub fn build(topology: &Topology, traces: usize, error_ratio: f64) -> anyhow::Result<Self> {
        let mut rng = rand::rng();
        let mut pool = Vec::with_capacity(traces);
        let (mut segment_bytes, mut segments) = (0, 0);
        for _ in 0..traces.max(1) {
            let failed = rng.random_bool(error_ratio.clamp(0.0, 1.0));
            let trace = topology
                .trace(&mut rng, failed)
                .iter()
                .map(Template::new)
                .collect::<Result<Vec<_>, _>>()
                .context("cannot encode a trace")?;
            segment_bytes += trace.iter().map(Template::encoded_len).sum::<usize>();
            segments += trace.len();
            pool.push(trace);
        }
        Ok(Self { traces: pool, run: rng.random(), sent_traces: AtomicU64::new(0), segment_bytes, segments })
    }

    /// Traces in the pool.
    pub fn traces(&self) -> usize {
        self.traces.len()
    }

    /// Average bytes of an encoded segment.
    pub fn average_segment_bytes(&self) -> usize {
        self.segment_bytes / self.segments.max(1)
    }

    /// Segments of trace `index` (modulo the pool), stamped with a fresh trace id and times
    /// that start at `now_ms`, appended to `out`.
    pub fn stamp(&self, index: usize, now_ms: i64, arena: &mut BytesMut, out: &mut Vec<Bytes>) {
        let counter = self.sent_traces.fetch_add(1, Ordering::Relaxed);
        let prefix = template::prefix(self.run, counter);
        for segment in &self.traces[index % self.traces.len()] {
            out.push(segment.stamp(&prefix, now_ms, arena));
        }
    }
}
