//! The syntax tree of an OAL script (docs/reference/oal.md §1), with each statement's location.

/// A place in a script: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Its statements, in order.
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `name = from(...)...;`
    Metric(Box<MetricStatement>),
    /// `disable(stream);`
    Disable {
        /// The stream switched off.
        stream: String,
        /// Where the statement starts.
        at: Location,
    },
}

/// An aggregation statement.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricStatement {
    /// The metric's name.
    pub name: String,
    /// The scope keyword in `from()`.
    pub scope: String,
    /// What of the source the function takes.
    pub source: Operand,
    /// Conditions every source must meet (AND).
    pub filters: Vec<Condition>,
    /// The aggregation function.
    pub function: String,
    /// Its arguments.
    pub args: Vec<Argument>,
    /// The decorator's name, if any.
    pub decorator: Option<String>,
    /// Where the statement starts.
    pub at: Location,
    /// Where the function's name is.
    pub function_at: Location,
}

/// A conversion of a text attribute to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// `(str->long)` or `(long)`.
    Long,
    /// `(str->int)` or `(int)`.
    Int,
}

/// An attribute of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `*`: the source itself.
    All,
    /// A field or a dotted path, with a map key for `tag["key"]`.
    Path {
        /// The names of the path.
        path: Vec<String>,
        /// The key looked up in the map the path names.
        key: Option<String>,
    },
}

/// An attribute, perhaps cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operand {
    /// The cast, if any.
    pub cast: Option<Cast>,
    /// The attribute.
    pub attribute: Attribute,
    /// Where it is.
    pub at: Location,
}

/// A comparison of a filter or a function argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `like`.
    Like,
    /// `in`.
    In,
    /// `contain`.
    Contain,
    /// `not contain`.
    NotContain,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// `Type.VALUE`.
    Enum {
        /// The enum's type (`DetectPoint`).
        ty: String,
        /// The constant (`SERVER`).
        value: String,
    },
    /// `null`.
    Null,
    /// `[a, b, …]`, for `in`.
    List(Vec<Literal>),
}

/// `operand operator value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The attribute compared.
    pub left: Operand,
    /// The comparison.
    pub operator: Operator,
    /// The value compared with.
    pub right: Literal,
    /// Where the value is.
    pub right_at: Location,
}

/// An argument of an aggregation function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// A condition (`percent(status == true)`).
    Condition(Condition),
    /// A literal (`percentile2(10)`).
    Literal(Literal),
    /// An attribute (`apdex(name, status)`).
    Attribute(Operand),
}
