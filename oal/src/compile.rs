//! The compiler: a parsed script into [`MetricDefinition`]s the metrics stream executes —
//! scopes, fields, literals and functions resolved and type-checked once, so a source is
//! aggregated with `match`es and no look-up by name.
//!
//! Every error of a script is collected (not only the first), each at its `file:line:column`.

use std::collections::HashSet;

use oap_model::source::Source;
use oap_storage_model::{Column, Model, ModelKind};

use crate::apdex::ApdexThresholds;
use crate::ast::{self, Argument, Attribute, Literal, Location, Operator, Script, Statement};
use crate::filter::{Condition, Const, Like, Operand, Test};
use crate::function::{Function, FunctionName, Input};
use crate::parser::OalError;
use crate::scope::{EnumType, FieldType, FieldValue, Scope};

/// One compiled aggregation statement.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDefinition {
    /// The metric's (and its stream's) name.
    pub name: String,
    /// The scope it aggregates.
    pub scope: Scope,
    /// What the function takes from a source; `None` for `*`.
    pub source: Option<Operand>,
    /// Conditions a source must meet (all of them).
    pub filters: Vec<Condition>,
    /// The function.
    pub function: Function,
    /// `percent`'s condition, or `rate`'s two.
    pub conditions: Vec<Condition>,
    /// `apdex`'s name and status attributes.
    pub apdex: Option<(Operand, Operand)>,
    /// Whether the scope's decorator fills `attr0`.
    pub decorated: bool,
}

impl MetricDefinition {
    /// The storage model of the metric: the scope's default columns, then the function's.
    pub fn model(&self) -> Model {
        let columns = self
            .scope
            .default_columns()
            .iter()
            .chain(self.function.columns())
            .chain(&[(
                crate::catalog::EPOCH_COLUMN,
                oap_storage_model::ColumnType::Text,
                oap_storage_model::Indexing::StorageOnly,
            )])
            .map(|&(name, ty, indexing)| Column::new(name, ty, indexing))
            .collect();
        let kind = ModelKind::Metrics { time_relative: true, downsampling: true, update: true };
        match Model::new(self.name.as_str(), kind, columns) {
            Ok(model) => model,
            Err(reason) => unreachable!("default and function columns are distinct: {reason}"),
        }
    }

    /// Whether `source` passes every filter.
    pub fn admits(&self, source: &Source<'_>) -> bool {
        self.filters.iter().all(|filter| filter.holds(source))
    }

    /// What `source` contributes; `None` when it has no value for the function (a cast tag
    /// that is absent or not a number), so the metric's row is not touched.
    pub fn input(&self, source: &Source<'_>, thresholds: &ApdexThresholds) -> Option<Input> {
        Some(match self.function {
            Function::Cpm | Function::Count => Input::One,
            Function::Percent => Input::Conditions(self.conditions[0].holds(source), false),
            Function::Rate => Input::Conditions(self.conditions[0].holds(source), self.conditions[1].holds(source)),
            Function::Apdex => {
                let (name, status) = self.apdex.as_ref()?;
                let threshold = match name.read(source) {
                    FieldValue::Str(service) => thresholds.of(service),
                    _ => thresholds.of(""),
                };
                Input::Apdex(self.source_long(source)?, status.read_bool(source).unwrap_or(false), threshold)
            }
            _ => Input::Long(self.source_long(source)?),
        })
    }

    fn source_long(&self, source: &Source<'_>) -> Option<i64> {
        self.source.as_ref()?.read_long(source)
    }
}

/// A compiled script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    /// The metrics, in script order.
    pub metrics: Vec<MetricDefinition>,
    /// The streams `disable(...)` switched off.
    pub disabled: Vec<String>,
}

impl Definitions {
    /// Adds another script's definitions; a metric name defined twice is an error.
    pub fn merge(&mut self, other: Definitions) -> Result<(), crate::DefinitionError> {
        for metric in &other.metrics {
            if self.metrics.iter().any(|known| known.name == metric.name) {
                return Err(crate::DefinitionError::DefinedTwice(metric.name.clone()));
            }
        }
        self.metrics.extend(other.metrics);
        self.disabled.extend(other.disabled);
        Ok(())
    }
}

/// Parses and compiles `text`, read from `file`.
pub fn load(file: &str, text: &str) -> Result<Definitions, Vec<OalError>> {
    let script = crate::parse(file, text).map_err(|error| vec![error])?;
    compile(file, &script)
}

/// Compiles a parsed script; every error is reported.
pub fn compile(file: &str, script: &Script) -> Result<Definitions, Vec<OalError>> {
    let compiler = Compiler { file };
    let mut definitions = Definitions::default();
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for statement in &script.statements {
        match statement {
            Statement::Disable { stream, .. } => definitions.disabled.push(stream.clone()),
            Statement::Metric(metric) => {
                if !names.insert(metric.name.as_str()) {
                    errors.push(compiler.error(metric.at, format!("metric `{}` is defined twice", metric.name)));
                    continue;
                }
                match compiler.metric(metric) {
                    Ok(definition) => definitions.metrics.push(definition),
                    Err(error) => errors.push(error),
                }
            }
        }
    }
    if errors.is_empty() { Ok(definitions) } else { Err(errors) }
}

struct Compiler<'a> {
    file: &'a str,
}

impl Compiler<'_> {
    fn error(&self, at: Location, message: String) -> OalError {
        OalError { file: self.file.to_owned(), at, message }
    }

    fn metric(&self, statement: &ast::MetricStatement) -> Result<MetricDefinition, OalError> {
        let scope = Scope::of_keyword(&statement.scope).map_err(|message| self.error(statement.source.at, message))?;
        let (source, source_type) = match &statement.source.attribute {
            Attribute::All => (None, None),
            Attribute::Path { .. } => {
                let (operand, ty) = self.typed_operand(scope, &statement.source)?;
                (Some(operand), Some(ty))
            }
        };
        let filters =
            statement.filters.iter().map(|condition| self.condition(scope, condition)).collect::<Result<_, _>>()?;
        let at = statement.function_at;
        let function = match Function::of_name(&statement.function) {
            Some(FunctionName::Ready(function)) => function,
            Some(FunctionName::Percentile2) => {
                Function::Percentile2 { precision: self.positive_int(&statement.args, 0, 1, at)? }
            }
            Some(FunctionName::Histogram) => Function::Histogram {
                step: self.positive_int(&statement.args, 0, 2, at)?,
                max_steps: self.positive_int(&statement.args, 1, 2, at)?,
            },
            Some(FunctionName::Unsupported(why)) => return Err(self.error(at, why.to_owned())),
            None => return Err(self.error(at, format!("unknown function `{}`", statement.function))),
        };
        let mut definition = MetricDefinition {
            name: statement.name.clone(),
            scope,
            source,
            filters,
            function,
            conditions: Vec::new(),
            apdex: None,
            decorated: false,
        };
        self.arguments(&mut definition, statement, source_type)?;
        if let Some(decorator) = &statement.decorator {
            let fits = matches!(
                (decorator.as_str(), scope),
                ("ServiceDecorator", Scope::Service) | ("EndpointDecorator", Scope::Endpoint)
            );
            if !fits {
                let message = match decorator.as_str() {
                    "ServiceDecorator" | "EndpointDecorator" => {
                        format!("decorator `{decorator}` does not apply to scope `{}`", statement.scope)
                    }
                    _ => format!("unknown decorator `{decorator}` (known: ServiceDecorator, EndpointDecorator)"),
                };
                return Err(self.error(statement.at, message));
            }
            definition.decorated = true;
        }
        Ok(definition)
    }

    /// Checks the function's arguments and what it takes from the source.
    fn arguments(
        &self,
        definition: &mut MetricDefinition,
        statement: &ast::MetricStatement,
        source_type: Option<FieldType>,
    ) -> Result<(), OalError> {
        let at = statement.function_at;
        let name = &statement.function;
        let args = &statement.args;
        let numeric_source = || -> Result<(), OalError> {
            match source_type {
                Some(FieldType::Long) => Ok(()),
                Some(_) => Err(self.error(
                    statement.source.at,
                    format!("`{name}` needs a numeric attribute (cast text with `(str->long)`)"),
                )),
                None => Err(self.error(statement.source.at, format!("`{name}` needs a numeric attribute, not `*`"))),
            }
        };
        match definition.function {
            Function::Cpm | Function::Count => self.arity(args, 0, at, name),
            Function::Percent | Function::Rate => {
                let wanted = if definition.function == Function::Percent { 1 } else { 2 };
                self.arity(args, wanted, at, name)?;
                for arg in args {
                    match arg {
                        Argument::Condition(condition) => {
                            definition.conditions.push(self.condition(definition.scope, condition)?);
                        }
                        _ => return Err(self.error(at, format!("`{name}` takes conditions, e.g. `status == true`"))),
                    }
                }
                Ok(())
            }
            Function::Apdex => {
                self.arity(args, 2, at, name)?;
                numeric_source()?;
                let attribute = |arg: &Argument, wanted: FieldType, what: &str| match arg {
                    Argument::Attribute(operand) => {
                        let (compiled, ty) = self.typed_operand(definition.scope, operand)?;
                        if ty == wanted {
                            Ok(compiled)
                        } else {
                            Err(self.error(operand.at, format!("`apdex` takes {what}")))
                        }
                    }
                    _ => Err(self.error(at, format!("`apdex` takes {what}"))),
                };
                let name = attribute(&args[0], FieldType::Str, "the service name attribute first (`name`)")?;
                let status = attribute(&args[1], FieldType::Bool, "the status attribute second (`status`)")?;
                definition.apdex = Some((name, status));
                Ok(())
            }
            Function::Percentile2 { .. } | Function::Histogram { .. } => numeric_source(),
            _ => {
                self.arity(args, 0, at, name)?;
                numeric_source()
            }
        }
    }

    fn arity(&self, args: &[Argument], wanted: usize, at: Location, name: &str) -> Result<(), OalError> {
        if args.len() == wanted {
            Ok(())
        } else {
            Err(self.error(at, format!("`{name}` takes {wanted} argument(s), found {}", args.len())))
        }
    }

    fn positive_int(&self, args: &[Argument], index: usize, arity: usize, at: Location) -> Result<i32, OalError> {
        if args.len() != arity {
            return Err(self.error(at, format!("expected {arity} integer argument(s), found {}", args.len())));
        }
        match &args[index] {
            Argument::Literal(Literal::Int(value)) if *value > 0 => {
                i32::try_from(*value).map_err(|_| self.error(at, format!("{value} is too large")))
            }
            _ => Err(self.error(at, format!("argument {} must be a positive integer", index + 1))),
        }
    }

    /// Resolves an attribute; a cast turns text into a number.
    fn typed_operand(&self, scope: Scope, operand: &ast::Operand) -> Result<(Operand, FieldType), OalError> {
        let Attribute::Path { path, key } = &operand.attribute else {
            return Err(self.error(operand.at, "`*` is only allowed as the whole source".to_owned()));
        };
        let name = path.join(".");
        let Some((field, ty)) = (if path.len() == 1 { scope.field(&name) } else { None }) else {
            return Err(
                self.error(operand.at, format!("scope `{}` has no attribute `{name}` in oap-rs", scope.keyword()))
            );
        };
        let ty = match (ty, key) {
            (FieldType::TagMap, Some(_)) => FieldType::Str,
            (FieldType::TagMap, None) => {
                return Err(self.error(operand.at, format!("`{name}` is a map: read one key, `{name}[\"key\"]`")));
            }
            (_, Some(_)) => return Err(self.error(operand.at, format!("`{name}` is not a map"))),
            (ty, None) => ty,
        };
        let ty = match (operand.cast, ty) {
            (None, ty) => ty,
            (Some(_), FieldType::Str) => FieldType::Long,
            (Some(_), _) => return Err(self.error(operand.at, format!("only text can be cast, and `{name}` is not"))),
        };
        let key = key.as_deref().unwrap_or_default().into();
        Ok((Operand { field, key, cast: operand.cast }, ty))
    }

    fn condition(&self, scope: Scope, condition: &ast::Condition) -> Result<Condition, OalError> {
        let (operand, ty) = self.typed_operand(scope, &condition.left)?;
        let at = condition.right_at;
        let test = match condition.operator {
            Operator::Eq => Test::Eq(self.constant(ty, &condition.right, at)?),
            Operator::Ne => Test::Ne(self.constant(ty, &condition.right, at)?),
            Operator::Gt | Operator::Lt | Operator::Ge | Operator::Le => {
                let (FieldType::Long, Literal::Int(bound)) = (ty, &condition.right) else {
                    return Err(self.error(at, "a comparison needs a numeric attribute and an integer".to_owned()));
                };
                match condition.operator {
                    Operator::Gt => Test::Gt(*bound),
                    Operator::Lt => Test::Lt(*bound),
                    Operator::Ge => Test::Ge(*bound),
                    _ => Test::Le(*bound),
                }
            }
            Operator::Like => match (ty, &condition.right) {
                (FieldType::Str, Literal::Str(pattern)) => Test::Like(Like::new(pattern)),
                _ => return Err(self.error(at, "`like` needs a text attribute and a quoted pattern".to_owned())),
            },
            Operator::In => match &condition.right {
                Literal::List(items) => {
                    Test::In(items.iter().map(|item| self.constant(ty, item, at)).collect::<Result<_, _>>()?)
                }
                _ => return Err(self.error(at, "`in` needs a list, e.g. `[1, 2]`".to_owned())),
            },
            Operator::Contain | Operator::NotContain => {
                let pair: Box<str> = match (ty, &condition.right) {
                    (FieldType::Tags, Literal::Str(pair)) => pair.as_str().into(),
                    (FieldType::Tags, Literal::Int(number)) => number.to_string().into(),
                    _ => return Err(self.error(at, "`contain` needs the `tags` list and a quoted `key:value`".into())),
                };
                if condition.operator == Operator::Contain { Test::Contain(pair) } else { Test::NotContain(pair) }
            }
        };
        Ok(Condition { operand, test })
    }

    /// A literal as a constant of the attribute's type.
    fn constant(&self, ty: FieldType, literal: &Literal, at: Location) -> Result<Const, OalError> {
        Ok(match (ty, literal) {
            (_, Literal::Null) => Const::Null,
            (FieldType::Bool, Literal::Bool(value)) => Const::Bool(*value),
            (FieldType::Long, Literal::Int(value)) => Const::Long(*value),
            (FieldType::Str, Literal::Str(value)) => Const::Str(value.as_str().into()),
            (FieldType::Enum(expected), Literal::Enum { ty: name, value }) => {
                if EnumType::of_name(name) != Some(expected) {
                    return Err(
                        self.error(at, format!("expected a constant of `{}`, found `{name}.{value}`", expected.name()))
                    );
                }
                let constant = expected
                    .constant(value)
                    .ok_or_else(|| self.error(at, format!("`{name}` has no constant `{value}`")))?;
                Const::Enum(constant)
            }
            (ty, _) => {
                let kind = match ty {
                    FieldType::Long => "an integer".to_owned(),
                    FieldType::Bool => "`true` or `false`".to_owned(),
                    FieldType::Str => "a quoted text".to_owned(),
                    FieldType::Enum(ty) => format!("a constant of `{}`", ty.name()),
                    FieldType::Tags | FieldType::TagMap => "nothing: use `contain`".to_owned(),
                };
                return Err(self.error(at, format!("expected {kind} to compare with")));
            }
        })
    }
}
