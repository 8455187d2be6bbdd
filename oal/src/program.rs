//! A scope's metrics compiled together. Metrics of one scope share most of what they read: the
//! eight `ServiceRelation` metrics of `core.oal` all test `detectPoint`, four read `latency`, two
//! test `status`. Evaluated metric by metric, a relation source has its detect point read eight
//! times. A [`Program`] numbers the distinct conditions (filters and `percent`/`rate` conditions)
//! and the distinct numeric inputs of a scope's metrics once, when the catalog is built; per
//! source each is evaluated at most once — on first need, so a condition only a filtered-out
//! metric needs costs nothing — and a metric is a mask test and the input its function takes.
//! The OAL stays a file read at start: nothing is generated at build time.

use oap_model::source::Source;

use crate::apdex::ApdexThresholds;
use crate::compile::MetricDefinition;
use crate::filter::{Condition, Operand};
use crate::function::{Function, Input};

/// Distinct conditions a program numbers at most (bits of a `u64`).
const MAX_CONDITIONS: usize = 64;
/// Distinct numeric inputs a program numbers at most.
const MAX_OPERANDS: usize = 8;

/// The metrics of one scope, compiled together.
#[derive(Debug, Clone)]
pub struct Program {
    conditions: Vec<Condition>,
    operands: Vec<Operand>,
    /// One per metric, in the order the program was compiled from.
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Step {
    /// The conditions the metric's filters need, as bits.
    filters: u64,
    input: StepInput,
}

#[derive(Debug, Clone)]
enum StepInput {
    /// `cpm`, `count`.
    One,
    /// `percent`'s condition, or `rate`'s two.
    Conditions(usize, Option<usize>),
    /// A numeric input (a function of one).
    Long(usize),
    /// Anything else (`apdex`): the metric reads it itself.
    Own,
}

/// What a program has evaluated of one source so far.
struct Evaluated {
    known: u64,
    holds: u64,
    longs: [Option<Option<i64>>; MAX_OPERANDS],
}

impl Program {
    /// The program of `metrics` (one scope's, in slot order); `None` when they name more distinct
    /// conditions or inputs than a program numbers (the catalog then evaluates metric by metric).
    pub fn compile(metrics: &[&MetricDefinition]) -> Option<Self> {
        let mut conditions: Vec<Condition> = Vec::new();
        let mut operands: Vec<Operand> = Vec::new();
        let mut condition = |wanted: &Condition| -> Option<usize> {
            let at = conditions.iter().position(|known| known == wanted).unwrap_or_else(|| {
                conditions.push(wanted.clone());
                conditions.len() - 1
            });
            (at < MAX_CONDITIONS).then_some(at)
        };
        let mut steps = Vec::with_capacity(metrics.len());
        for metric in metrics {
            let mut filters = 0u64;
            for filter in &metric.filters {
                filters |= 1 << condition(filter)?;
            }
            let input = match metric.function {
                Function::Cpm | Function::Count => StepInput::One,
                Function::Percent => StepInput::Conditions(condition(metric.conditions.first()?)?, None),
                Function::Rate => StepInput::Conditions(
                    condition(metric.conditions.first()?)?,
                    Some(condition(metric.conditions.get(1)?)?),
                ),
                Function::Apdex => StepInput::Own,
                _ => match &metric.source {
                    Some(source) => {
                        let at = operands.iter().position(|known| known == source).unwrap_or_else(|| {
                            operands.push(source.clone());
                            operands.len() - 1
                        });
                        if at >= MAX_OPERANDS {
                            return None;
                        }
                        StepInput::Long(at)
                    }
                    None => StepInput::Own,
                },
            };
            steps.push(Step { filters, input });
        }
        Some(Self { conditions, operands, steps })
    }

    /// Runs the program on `source`: `each(position, input)` for every metric (by its position
    /// in the compiled order; `metrics` gives its definition) that the source passes and has a
    /// value for — exactly as [`MetricDefinition::admits`] and [`MetricDefinition::input`] would.
    pub fn run<'m>(
        &self,
        source: &Source<'_>,
        metrics: impl Fn(usize) -> &'m MetricDefinition,
        thresholds: &ApdexThresholds,
        mut each: impl FnMut(usize, Input),
    ) {
        let mut seen = Evaluated { known: 0, holds: 0, longs: [None; MAX_OPERANDS] };
        for (position, step) in self.steps.iter().enumerate() {
            if !self.all_hold(step.filters, source, &mut seen) {
                continue;
            }
            let input = match step.input {
                StepInput::One => Input::One,
                StepInput::Conditions(first, second) => Input::Conditions(
                    self.all_hold(1 << first, source, &mut seen),
                    second.is_some_and(|second| self.all_hold(1 << second, source, &mut seen)),
                ),
                StepInput::Long(at) => match self.long(at, source, &mut seen) {
                    Some(value) => Input::Long(value),
                    None => continue,
                },
                StepInput::Own => match metrics(position).input(source, thresholds) {
                    Some(input) => input,
                    None => continue,
                },
            };
            each(position, input);
        }
    }

    /// Input `at` of `source`, read on first need.
    fn long(&self, at: usize, source: &Source<'_>, seen: &mut Evaluated) -> Option<i64> {
        *seen.longs[at].get_or_insert_with(|| self.operands[at].read_long(source))
    }

    /// Whether every condition of `bits` holds for `source`, evaluating those not seen yet.
    fn all_hold(&self, bits: u64, source: &Source<'_>, seen: &mut Evaluated) -> bool {
        let mut unknown = bits & !seen.known;
        while unknown != 0 {
            let bit = unknown.trailing_zeros();
            unknown &= unknown - 1;
            seen.known |= 1 << bit;
            if self.conditions[bit as usize].holds(source) {
                seen.holds |= 1 << bit;
            }
        }
        bits & !seen.holds == 0
    }

    /// The distinct conditions the program numbers.
    pub fn conditions(&self) -> usize {
        self.conditions.len()
    }
}
