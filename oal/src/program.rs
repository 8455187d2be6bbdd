//! A scope's metrics compiled together. Metrics of one scope share most of what they read: the
//! eight `ServiceRelation` metrics of `core.oal` all test `detectPoint`, four read `latency`, two
//! test `status`. Evaluated metric by metric, a relation source has its detect point read eight
//! times. A [`Program`] numbers the distinct conditions (filters and `percent`/`rate` conditions)
//! and the distinct numeric inputs of a scope's metrics once, when the catalog is built; per
//! source each is evaluated at most once — on first need, so a condition only a filtered-out
//! metric needs costs nothing — and a metric is a mask test and the input its function takes.
//! A metric past what a program numbers (64 conditions, 8 inputs) evaluates its own filters or
//! input, as before. The OAL stays a file read at start: nothing is generated at build time.

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
    /// The conditions the metric's filters need, as bits; `None` when they are not all numbered
    /// (the metric evaluates its own).
    filters: Option<u64>,
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
    /// Anything else (`apdex`, or past what the program numbers): the metric reads it itself.
    Own,
}

/// What a program has evaluated of one source so far.
struct Evaluated {
    known: u64,
    holds: u64,
    longs: [Option<Option<i64>>; MAX_OPERANDS],
}

impl Program {
    /// The program of `metrics` (one scope's, in slot order).
    pub fn compile(metrics: &[&MetricDefinition]) -> Self {
        let mut conditions: Vec<Condition> = Vec::new();
        let mut operands: Vec<Operand> = Vec::new();
        let steps = metrics
            .iter()
            .map(|metric| {
                let filters = metric
                    .filters
                    .iter()
                    .try_fold(0u64, |bits, filter| Some(bits | 1 << number(&mut conditions, filter, MAX_CONDITIONS)?));
                let mut condition = |at: usize| number(&mut conditions, metric.conditions.get(at)?, MAX_CONDITIONS);
                let input = match metric.function {
                    Function::Cpm | Function::Count => Some(StepInput::One),
                    Function::Percent => condition(0).map(|first| StepInput::Conditions(first, None)),
                    Function::Rate => {
                        condition(0).zip(condition(1)).map(|(first, second)| StepInput::Conditions(first, Some(second)))
                    }
                    Function::Apdex => None,
                    _ => metric
                        .source
                        .as_ref()
                        .and_then(|source| number(&mut operands, source, MAX_OPERANDS))
                        .map(StepInput::Long),
                };
                Step { filters, input: input.unwrap_or(StepInput::Own) }
            })
            .collect();
        Self { conditions, operands, steps }
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
            let admitted = match step.filters {
                Some(filters) => self.all_hold(filters, source, &mut seen),
                None => metrics(position).admits(source),
            };
            if !admitted {
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

    /// Whether every metric's filters and input are numbered (none but `apdex` evaluates its own).
    pub fn numbers_everything(&self) -> bool {
        // `number` keeps what it turns away, so past the bounds the lists are longer.
        self.conditions.len() <= MAX_CONDITIONS && self.operands.len() <= MAX_OPERANDS
    }
}

/// The number of `wanted` among `known`, numbered now if new; `None` past `max` (it is kept all
/// the same, so that [`Program::numbers_everything`] sees it).
fn number<T: PartialEq + Clone>(known: &mut Vec<T>, wanted: &T, max: usize) -> Option<usize> {
    let at = known.iter().position(|held| held == wanted).unwrap_or_else(|| {
        known.push(wanted.clone());
        known.len() - 1
    });
    (at < max).then_some(at)
}
