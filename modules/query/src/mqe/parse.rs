//! The MQE grammar (docs/reference/query-api.md §5.4) for the forms oap-rs evaluates: tokens by
//! logos, then a recursive-descent parser with MQE's precedence — `* / %` over `+ -` over
//! comparisons.
//!
//! An expression is bounded before it is evaluated: parentheses and function calls nest at most
//! [`MAX_DEPTH`] deep, and the tree the parser builds is at most [`MAX_DEPTH`] nodes deep (a chain
//! `a + b + c …` is a node per operator), so neither the parser, the evaluator nor dropping the
//! tree can recurse further, whatever the client sends.

use logos::Logos;

/// One token.
#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n]+")]
enum Token {
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lexer| lexer.slice().to_owned())]
    Ident(String),
    #[regex(r"[0-9]+(\.[0-9]+)?", |lexer| lexer.slice().parse::<f64>().ok())]
    Number(f64),
    #[regex(r"'[^']*'", |lexer| { let s = lexer.slice(); s[1..s.len() - 1].to_owned() })]
    #[regex(r#""[^"]*""#, |lexer| { let s = lexer.slice(); s[1..s.len() - 1].to_owned() })]
    Str(String),
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token("=")]
    Assign,
    #[token("!=")]
    NotEq,
    #[token("==")]
    Eq,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
}

/// A label and the values it selects (`p='50,75'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    /// The label's name.
    pub name: String,
    /// The values, split at commas.
    pub values: Vec<String>,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `==`.
    Eq,
    /// `!=`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// An aggregation of a series into one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// The mean of the points with data.
    Avg,
    /// Their sum.
    Sum,
    /// The largest.
    Max,
    /// The smallest.
    Min,
    /// How many have data.
    Count,
    /// The last with data.
    Latest,
}

/// A function of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathFn {
    /// `abs`.
    Abs,
    /// `ceil`.
    Ceil,
    /// `floor`.
    Floor,
}

/// A `top_n` filter on a decorator column: `attr0='GENERAL'` or `attr0!='GENERAL'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrFilter {
    /// Which column, `attr0` to `attr5`.
    pub index: u8,
    /// `=` (true) or `!=` (false).
    pub equal: bool,
    /// The value.
    pub value: String,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A metric of the entity, optionally with label selectors.
    Metric {
        /// The metric's name.
        name: String,
        /// `{label='a,b', …}`.
        labels: Vec<LabelSelector>,
    },
    /// A number.
    Scalar(f64),
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left side.
        lhs: Box<Expr>,
        /// The right side.
        rhs: Box<Expr>,
    },
    /// `avg(…)` and the like.
    Aggregate {
        /// Which.
        func: Aggregation,
        /// Of what.
        expr: Box<Expr>,
    },
    /// `abs(…)`, `ceil(…)`, `floor(…)`.
    Math {
        /// Which.
        func: MathFn,
        /// Of what.
        expr: Box<Expr>,
    },
    /// `round(expr, places)`.
    Round {
        /// Of what.
        expr: Box<Expr>,
        /// Decimal places.
        places: u32,
    },
    /// `top_n(metric, n, asc|des[, attrN='v', …])`.
    TopN {
        /// The metric.
        metric: String,
        /// How many.
        n: usize,
        /// Largest first.
        descending: bool,
        /// Decorator filters.
        attrs: Vec<AttrFilter>,
    },
    /// `relabels(expr, label='old values', new_label='new values')`.
    Relabels {
        /// What is relabelled.
        expr: Box<Expr>,
        /// The label and the values renamed.
        from: LabelSelector,
        /// The new label and the new values, in the same order.
        to: LabelSelector,
    },
}

/// The deepest an expression may nest: parentheses and calls within each other, and operators
/// in a chain. The UI's expressions nest a few levels.
pub const MAX_DEPTH: usize = 64;

fn too_deep() -> String {
    format!("the expression nests deeper than {MAX_DEPTH} levels (parentheses, calls or chained operators)")
}

/// An expression and the depth of its tree (a leaf is 1).
struct Parsed {
    expr: Expr,
    depth: usize,
}

impl Parsed {
    fn leaf(expr: Expr) -> Self {
        Self { expr, depth: 1 }
    }

    /// A node over children at most `below` deep; an error past [`MAX_DEPTH`].
    fn node(expr: Expr, below: usize) -> Result<Self, String> {
        let depth = below + 1;
        if depth > MAX_DEPTH { Err(too_deep()) } else { Ok(Self { expr, depth }) }
    }
}

/// Parses an expression; the error is a sentence for the UI.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut tokens = Vec::new();
    for (token, span) in Token::lexer(text).spanned() {
        match token {
            Ok(token) => tokens.push(token),
            Err(()) => return Err(format!("unexpected `{}` at {}", &text[span.clone()], span.start)),
        }
    }
    let mut parser = Parser { tokens, at: 0, nesting: 0 };
    let parsed = parser.comparison()?;
    match parser.peek() {
        None => Ok(parsed.expr),
        Some(token) => Err(format!("unexpected {} after the expression", describe(token))),
    }
}

/// `lhs op rhs`, one level above the deeper side.
fn binary(op: BinaryOp, lhs: Parsed, rhs: Parsed) -> Result<Parsed, String> {
    let below = lhs.depth.max(rhs.depth);
    Parsed::node(Expr::Binary { op, lhs: Box::new(lhs.expr), rhs: Box::new(rhs.expr) }, below)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(name) => format!("`{name}`"),
        Token::Number(number) => format!("`{number}`"),
        Token::Str(text) => format!("'{text}'"),
        other => format!("`{}`", symbol(other)),
    }
}

fn symbol(token: &Token) -> &'static str {
    match token {
        Token::LParen => "(",
        Token::RParen => ")",
        Token::LBrace => "{",
        Token::RBrace => "}",
        Token::Comma => ",",
        Token::Assign => "=",
        Token::NotEq => "!=",
        Token::Eq => "==",
        Token::Le => "<=",
        Token::Ge => ">=",
        Token::Lt => "<",
        Token::Gt => ">",
        Token::Plus => "+",
        Token::Minus => "-",
        Token::Star => "*",
        Token::Slash => "/",
        Token::Percent => "%",
        Token::Ident(_) | Token::Number(_) | Token::Str(_) => "a value",
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// How many `comparison`s are under way: the parser's own recursion.
    nesting: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, wanted: &Token) -> Result<(), String> {
        match self.next() {
            Some(token) if token == *wanted => Ok(()),
            Some(token) => Err(format!("expected `{}`, found {}", symbol(wanted), describe(&token))),
            None => Err(format!("expected `{}`, found the end", symbol(wanted))),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(name)) => Ok(name),
            Some(token) => Err(format!("expected {what}, found {}", describe(&token))),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(text)) => Ok(text),
            Some(token) => Err(format!("expected a quoted value, found {}", describe(&token))),
            None => Err("expected a quoted value, found the end".to_owned()),
        }
    }

    /// A whole expression (the top, or within parentheses or a call's arguments); the one place
    /// the parser recurses, so the one place it counts.
    fn comparison(&mut self) -> Result<Parsed, String> {
        if self.nesting == MAX_DEPTH {
            return Err(too_deep());
        }
        self.nesting += 1;
        let parsed = self.comparison_within();
        self.nesting -= 1;
        parsed
    }

    fn comparison_within(&mut self) -> Result<Parsed, String> {
        let lhs = self.additive()?;
        let op = match self.peek() {
            Some(Token::Eq) => BinaryOp::Eq,
            Some(Token::NotEq) => BinaryOp::NotEq,
            Some(Token::Lt) => BinaryOp::Lt,
            Some(Token::Le) => BinaryOp::Le,
            Some(Token::Gt) => BinaryOp::Gt,
            Some(Token::Ge) => BinaryOp::Ge,
            _ => return Ok(lhs),
        };
        self.at += 1;
        let rhs = self.additive()?;
        binary(op, lhs, rhs)
    }

    fn additive(&mut self) -> Result<Parsed, String> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Plus) => BinaryOp::Add,
                Some(Token::Minus) => BinaryOp::Sub,
                _ => return Ok(lhs),
            };
            self.at += 1;
            let rhs = self.multiplicative()?;
            lhs = binary(op, lhs, rhs)?;
        }
    }

    fn multiplicative(&mut self) -> Result<Parsed, String> {
        let mut lhs = self.primary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Star) => BinaryOp::Mul,
                Some(Token::Slash) => BinaryOp::Div,
                Some(Token::Percent) => BinaryOp::Mod,
                _ => return Ok(lhs),
            };
            self.at += 1;
            let rhs = self.primary()?;
            lhs = binary(op, lhs, rhs)?;
        }
    }

    fn primary(&mut self) -> Result<Parsed, String> {
        match self.next() {
            Some(Token::Number(number)) => Ok(Parsed::leaf(Expr::Scalar(number))),
            Some(Token::Minus) => match self.next() {
                Some(Token::Number(number)) => Ok(Parsed::leaf(Expr::Scalar(-number))),
                _ => Err("`-` must be followed by a number".to_owned()),
            },
            Some(Token::LParen) => {
                let parsed = self.comparison()?;
                self.expect(&Token::RParen)?;
                Ok(parsed)
            }
            Some(Token::Ident(name)) if self.peek() == Some(&Token::LParen) => self.call(&name),
            Some(Token::Ident(name)) => {
                let labels = if self.peek() == Some(&Token::LBrace) { self.selectors()? } else { Vec::new() };
                Ok(Parsed::leaf(Expr::Metric { name, labels }))
            }
            Some(token) => Err(format!("expected a metric, a number or `(`, found {}", describe(&token))),
            None => Err("the expression is empty or ends too soon".to_owned()),
        }
    }

    /// `{name='a,b', …}`.
    fn selectors(&mut self) -> Result<Vec<LabelSelector>, String> {
        self.expect(&Token::LBrace)?;
        let mut labels = Vec::new();
        loop {
            labels.push(self.selector()?);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RBrace) => return Ok(labels),
                Some(token) => return Err(format!("expected `,` or `}}`, found {}", describe(&token))),
                None => return Err("expected `}`, found the end".to_owned()),
            }
        }
    }

    fn selector(&mut self) -> Result<LabelSelector, String> {
        let name = self.ident("a label name")?;
        self.expect(&Token::Assign)?;
        let values = self.string()?.split(',').map(|value| value.trim().to_owned()).collect();
        Ok(LabelSelector { name, values })
    }

    fn call(&mut self, name: &str) -> Result<Parsed, String> {
        self.expect(&Token::LParen)?;
        let aggregation = match name {
            "avg" => Some(Aggregation::Avg),
            "sum" => Some(Aggregation::Sum),
            "max" => Some(Aggregation::Max),
            "min" => Some(Aggregation::Min),
            "count" => Some(Aggregation::Count),
            "latest" => Some(Aggregation::Latest),
            _ => None,
        };
        let math = match name {
            "abs" => Some(MathFn::Abs),
            "ceil" => Some(MathFn::Ceil),
            "floor" => Some(MathFn::Floor),
            _ => None,
        };
        let parsed = if let Some(func) = aggregation {
            let inner = self.comparison()?;
            Parsed::node(Expr::Aggregate { func, expr: Box::new(inner.expr) }, inner.depth)?
        } else if let Some(func) = math {
            let inner = self.comparison()?;
            Parsed::node(Expr::Math { func, expr: Box::new(inner.expr) }, inner.depth)?
        } else {
            match name {
                "round" => {
                    let inner = self.comparison()?;
                    self.expect(&Token::Comma)?;
                    let places = self.count("decimal places")?;
                    let places = u32::try_from(places).unwrap_or(u32::MAX);
                    Parsed::node(Expr::Round { expr: Box::new(inner.expr), places }, inner.depth)?
                }
                "top_n" => Parsed::leaf(self.top_n()?),
                "relabels" => {
                    let inner = self.comparison()?;
                    self.expect(&Token::Comma)?;
                    let from = self.selector()?;
                    self.expect(&Token::Comma)?;
                    let to = self.selector()?;
                    if from.values.len() != to.values.len() {
                        return Err(format!(
                            "relabels: {} values of `{}` but {} new values of `{}`",
                            from.values.len(),
                            from.name,
                            to.values.len(),
                            to.name
                        ));
                    }
                    Parsed::node(Expr::Relabels { expr: Box::new(inner.expr), from, to }, inner.depth)?
                }
                other => return Err(format!("unknown function `{other}`")),
            }
        };
        self.expect(&Token::RParen)?;
        Ok(parsed)
    }

    fn count(&mut self, what: &str) -> Result<usize, String> {
        match self.next() {
            Some(Token::Number(number)) if number.fract() == 0.0 && number >= 0.0 => Ok(number as usize),
            Some(token) => Err(format!("expected {what} (a whole number), found {}", describe(&token))),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    /// `top_n(metric, n, asc|des[, attrN='v' | attrN!='v', …])`, without the closing `)`.
    fn top_n(&mut self) -> Result<Expr, String> {
        let metric = self.ident("a metric name")?;
        self.expect(&Token::Comma)?;
        let n = self.count("the number of entities")?;
        self.expect(&Token::Comma)?;
        let descending = match self.ident("`asc` or `des`")?.as_str() {
            "des" => true,
            "asc" => false,
            other => return Err(format!("top_n order must be `asc` or `des`, not `{other}`")),
        };
        let mut attrs = Vec::new();
        while self.peek() == Some(&Token::Comma) {
            self.at += 1;
            let name = self.ident("an attribute (attr0 to attr5)")?;
            let index = name
                .strip_prefix("attr")
                .and_then(|index| index.parse::<u8>().ok())
                .filter(|index| *index <= 5)
                .ok_or_else(|| format!("top_n filters name attr0 to attr5, not `{name}`"))?;
            let equal = match self.next() {
                Some(Token::Assign) => true,
                Some(Token::NotEq) => false,
                _ => return Err(format!("expected `=` or `!=` after `{name}`")),
            };
            attrs.push(AttrFilter { index, equal, value: self.string()? });
        }
        Ok(Expr::TopN { metric, n, descending, attrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str) -> Box<Expr> {
        Box::new(Expr::Metric { name: name.to_owned(), labels: Vec::new() })
    }

    #[test]
    fn the_general_dashboards_forms_parse() {
        assert_eq!(
            parse("service_sla/100").expect("parse"),
            Expr::Binary { op: BinaryOp::Div, lhs: metric("service_sla"), rhs: Box::new(Expr::Scalar(100.0)) }
        );
        assert_eq!(
            parse("avg(service_apdex)/10000").expect("parse"),
            Expr::Binary {
                op: BinaryOp::Div,
                lhs: Box::new(Expr::Aggregate { func: Aggregation::Avg, expr: metric("service_apdex") }),
                rhs: Box::new(Expr::Scalar(10_000.0)),
            }
        );
        assert_eq!(
            parse("top_n(service_sla,10,asc,attr0='GENERAL')/100").expect("parse"),
            Expr::Binary {
                op: BinaryOp::Div,
                lhs: Box::new(Expr::TopN {
                    metric: "service_sla".to_owned(),
                    n: 10,
                    descending: false,
                    attrs: vec![AttrFilter { index: 0, equal: true, value: "GENERAL".to_owned() }],
                }),
                rhs: Box::new(Expr::Scalar(100.0)),
            }
        );
        let p = |values: &str| values.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            parse("relabels(service_percentile{p='50,75,90,95,99'},p='50,75,90,95,99',percentile='50,75,90,95,99')")
                .expect("parse"),
            Expr::Relabels {
                expr: Box::new(Expr::Metric {
                    name: "service_percentile".to_owned(),
                    labels: vec![LabelSelector { name: "p".to_owned(), values: p("50,75,90,95,99") }],
                }),
                from: LabelSelector { name: "p".to_owned(), values: p("50,75,90,95,99") },
                to: LabelSelector { name: "percentile".to_owned(), values: p("50,75,90,95,99") },
            }
        );
        assert_eq!(
            parse("top_n(top_n_service_database_statement,20,des)").expect("parse"),
            Expr::TopN {
                metric: "top_n_service_database_statement".to_owned(),
                n: 20,
                descending: true,
                attrs: vec![]
            }
        );
        assert!(matches!(parse("avg(service_sla/100)").expect("parse"), Expr::Aggregate { .. }));
    }

    #[test]
    fn multiplication_binds_tighter_than_addition_and_both_tighter_than_comparison() {
        // 1 + 2 * 3 > 4  ==  (1 + (2 * 3)) > 4
        let Expr::Binary { op: BinaryOp::Gt, lhs, .. } = parse("1 + 2 * 3 > 4").expect("parse") else {
            panic!("a comparison at the top")
        };
        let Expr::Binary { op: BinaryOp::Add, rhs, .. } = *lhs else { panic!("an addition under it") };
        assert!(matches!(*rhs, Expr::Binary { op: BinaryOp::Mul, .. }));
        // Left-associative: 8 / 4 / 2 == (8 / 4) / 2.
        let Expr::Binary { lhs, .. } = parse("8 / 4 / 2").expect("parse") else { panic!("binary") };
        assert!(matches!(*lhs, Expr::Binary { op: BinaryOp::Div, .. }));
    }

    #[test]
    fn mistakes_are_sentences() {
        assert_eq!(parse("service_cpm +").expect_err("dangling"), "the expression is empty or ends too soon");
        assert_eq!(parse("nope(service_cpm)").expect_err("unknown"), "unknown function `nope`");
        assert_eq!(
            parse("top_n(service_cpm,10,up)").expect_err("order"),
            "top_n order must be `asc` or `des`, not `up`"
        );
        assert_eq!(parse("service_cpm )").expect_err("extra"), "unexpected `)` after the expression");
        assert_eq!(parse("service_cpm # 2").expect_err("lex"), "unexpected `#` at 12");
        assert!(parse("relabels(m,p='1,2',q='a')").expect_err("count").starts_with("relabels: 2 values"));
        assert!(parse("top_n(m,10,des,attr9='x')").expect_err("attr").contains("attr0 to attr5"));
    }

    #[test]
    fn nesting_is_bounded_whatever_the_shape() {
        let limit = MAX_DEPTH;
        // Parentheses: the expression itself is the first level.
        let parens = |depth: usize| format!("{}service_cpm{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&parens(limit - 1)).is_ok());
        assert_eq!(parse(&parens(limit)).expect_err("too deep"), too_deep());
        // Calls.
        let calls = |depth: usize| format!("{}service_cpm{}", "abs(".repeat(depth), ")".repeat(depth));
        assert!(parse(&calls(limit - 1)).is_ok());
        assert_eq!(parse(&calls(limit)).expect_err("too deep"), too_deep());
        // A chain of operators is a node per operator, however flat the text.
        let chain = |operators: usize| format!("1{}", " + 1".repeat(operators));
        assert!(parse(&chain(limit - 1)).is_ok());
        assert_eq!(parse(&chain(limit)).expect_err("too deep"), too_deep());
        assert_eq!(parse(&format!("1{}", " * 2".repeat(limit))).expect_err("too deep"), too_deep());
        // The sides of a comparison and a function's argument count too.
        assert_eq!(parse(&format!("round({}, 2)", chain(limit - 1))).expect_err("too deep"), too_deep());
        assert_eq!(parse(&format!("1 > {}", chain(limit - 1))).expect_err("too deep"), too_deep());
    }

    #[test]
    fn a_20000_deep_expression_is_an_error_not_a_crash() {
        for text in [
            format!("{}service_cpm{}", "(".repeat(20_000), ")".repeat(20_000)),
            format!("{}service_cpm{}", "avg(".repeat(20_000), ")".repeat(20_000)),
            format!("service_cpm{}", " / 2".repeat(20_000)),
            format!("{}1", "1 + (".repeat(20_000)),
            "(".repeat(20_000),
        ] {
            assert_eq!(parse(&text).expect_err("too deep"), too_deep());
        }
    }
}
